// Fuzz target: a Megatron indexed dataset (.idx + .bin). The input is split in two: a 4-byte
// little-endian length L, then L bytes of .idx, then the .bin (L is clamped to what follows).
// Every sequence and document of an accepted dataset is read back.
#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <cstring>

#include "fuzz_util.hpp"
#include "kumiki/data/indexed_dataset.hpp"

using namespace kumiki;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  if (size < 4) return 0;
  std::uint32_t n = 0;
  std::memcpy(&n, data, 4);
  std::size_t const idx_size = std::min<std::size_t>(n, size - 4);
  auto const text = kumiki_fuzz::as_text(data + 4, size - 4);
  kumiki_fuzz::fs::path const prefix = kumiki_fuzz::scratch_dir() / "ds";
  kumiki_fuzz::write_file(data::idx_path(prefix), text.substr(0, idx_size));
  kumiki_fuzz::write_file(data::bin_path(prefix), text.substr(idx_size));
  kumiki_fuzz::accepts([&] {
    data::IndexedDataset const ds(prefix);
    std::int64_t total = 0;
    for (std::int64_t i = 0; i < ds.num_sequences(); ++i) {
      auto const b = ds.sequence_bytes(i);
      kumiki_fuzz::consume(b.data(), b.size());
      total += ds.sequence_length(i);
      // Token ids as the GPT dataset reads them; float files must refuse values no int32 holds.
      kumiki_fuzz::accepts([&] { (void)ds.sequence<std::int32_t>(i); });
      (void)ds.sequence<double>(i);
    }
    if (total != ds.total_tokens()) __builtin_trap();
    for (std::int64_t d = 0; d < ds.num_documents(); ++d) {
      auto const [first, last] = ds.document_sequences(d);
      if (first < 0 || first > last || last > ds.num_sequences()) __builtin_trap();
      kumiki_fuzz::accepts([&] { (void)ds.document<std::int64_t>(d); });
    }
  });
  return 0;
}
