// Fuzz target: one safetensors file, parsed from memory (io::SafetensorsView), every accepted tensor
// read through each accessor.
#include <cstddef>
#include <cstdint>
#include <span>
#include <vector>

#include "fuzz_util.hpp"
#include "kumiki/io/safetensors.hpp"

using namespace kumiki;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::span<std::byte const> const file(reinterpret_cast<std::byte const*>(data), size);
  kumiki_fuzz::accepts([&] {
    io::SafetensorsView const v(file, "fuzz.safetensors");
    for (auto const& [k, val] : v.metadata()) kumiki_fuzz::consume(val.data(), val.size());
    for (io::SafetensorsEntry const& e : v.entries()) {
      // Accepted means every view lies inside the file and is as large as dtype x shape says.
      auto const b = v.bytes(e.name);
      AnyView const view = v.view(e);
      if (b.data() < file.data() || b.data() + b.size() > file.data() + file.size()) __builtin_trap();
      if (view.bytes() != b.size() || static_cast<std::uint64_t>(view.shape.numel()) * dtype_size(e.dtype) != b.size())
        __builtin_trap();
      kumiki_fuzz::consume(b.data(), b.size());
      if (io::is_floating(e.dtype)) {
        std::vector<float> out(static_cast<std::size_t>(e.shape.numel()));
        v.copy_to(e.name, AnyView{out.data(), DType::f32, e.shape, DeviceKind::cpu});
        kumiki_fuzz::consume(out.data(), out.size() * sizeof(float));
      }
      // Typed views refuse misaligned data with an InputError.
      kumiki_fuzz::accepts([&] { (void)v.get<float>(e.name); });
    }
  });
  return 0;
}
