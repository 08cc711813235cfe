// Fuzz target: a Hugging Face config.json, read (io::read_hf_config) and matched against the
// compiled-in model configurations (io::match_hf_config), as `kumiki import-hf` does.
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "kumiki/io/hf.hpp"

using namespace kumiki;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  kumiki_fuzz::fs::path const path = kumiki_fuzz::scratch_dir() / "config.json";
  kumiki_fuzz::write_file(path, kumiki_fuzz::as_text(data, size));
  kumiki_fuzz::accepts([&] {
    io::HfConfig const c = io::read_hf_config(path);
    // What the reader promises to the matcher and to import: a whole number of heads of hidden / heads.
    if (c.hidden_size <= 0 || c.num_attention_heads <= 0 || c.hidden_size % c.num_attention_heads != 0) __builtin_trap();
    if (c.num_local_experts != 0 && (c.num_experts_per_tok < 1 || c.num_experts_per_tok > c.num_local_experts))
      __builtin_trap();
    std::string const name = io::match_hf_config(c, path.string());
    (void)io::model_config(name);
  });
  return 0;
}
