// Fuzz target: a sharded model directory, model.safetensors.index.json being the input, beside two
// small valid shards (a, b in the first, c in the second) and one file that is not a shard.
#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "fuzz_util.hpp"
#include "kumiki/io/safetensors.hpp"

using namespace kumiki;

namespace {

kumiki_fuzz::fs::path const& model_dir() {
  static kumiki_fuzz::fs::path const dir = [] {
    kumiki_fuzz::fs::path d = kumiki_fuzz::scratch_dir() / "model";
    kumiki_fuzz::fs::create_directories(d);
    float a[2] = {1.0f, -2.0f};
    bf16 b[3] = {bf16(0.5f), bf16(1.5f), bf16(-3.0f)};
    std::int32_t c[1] = {7};
    io::write_safetensors(d / "model-00001-of-00002.safetensors",
                          {{"a", AnyView{a, DType::f32, {2}, DeviceKind::cpu}}, {"b", AnyView{b, DType::bf16, {3}, DeviceKind::cpu}}},
                          {{"format", "pt"}});
    io::write_safetensors(d / "model-00002-of-00002.safetensors", {{"c", AnyView{c, DType::i32, {1}, DeviceKind::cpu}}},
                          {{"format", "pt"}});
    kumiki_fuzz::write_file(d / "config.json", "{\"model_type\": \"llama\"}");
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  kumiki_fuzz::fs::path const& dir = model_dir();
  kumiki_fuzz::write_file(dir / "model.safetensors.index.json", kumiki_fuzz::as_text(data, size));
  kumiki_fuzz::accepts([&] {
    io::SafetensorsModel const m(dir);
    // Accepted: every tensor is found in exactly the file that holds it, and reads.
    if (m.size() == 0 || m.size() > 3) __builtin_trap();
    for (std::string const& name : m.names()) {
      io::SafetensorsEntry const& e = m.entry(name);
      if (io::is_floating(e.dtype)) {
        std::vector<float> out(static_cast<std::size_t>(e.shape.numel()));
        m.copy_to(name, AnyView{out.data(), DType::f32, e.shape, DeviceKind::cpu});
        kumiki_fuzz::consume(out.data(), out.size() * sizeof(float));
      }
      kumiki_fuzz::consume(m.view(name).data, m.view(name).bytes());
    }
    (void)m.metadata();
    (void)m.total_bytes();
  });
  return 0;
}
