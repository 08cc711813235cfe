// Fuzz target: a checkpoint's manifest.json, verified against a real checkpoint directory
// (train::verify_checkpoint) holding model.bin and state.json, with a file outside it that a
// hostile manifest could try to reach ("../outside.bin").
#include <cstddef>
#include <cstdint>
#include <string>

#include "fuzz_util.hpp"
#include "kumiki/train/checkpoint_dir.hpp"

using namespace kumiki;
namespace fs = std::filesystem;

namespace {

fs::path const& checkpoint_dir() {
  static fs::path const dir = [] {
    fs::path const root = kumiki_fuzz::scratch_dir() / "checkpoints";
    train::CheckpointWriter w(root, 1);
    kumiki_fuzz::write_file(w.path("model.bin"), "kumiki fuzz weights\n");
    kumiki_fuzz::write_file(w.path("state.json"), "{\"step\": 1}\n");
    fs::path d = w.commit();
    kumiki_fuzz::write_file(root / "outside.bin", "outside the checkpoint\n");
    return d;
  }();
  return dir;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  fs::path const& dir = checkpoint_dir();
  kumiki_fuzz::write_file(dir / train::checkpoint_manifest, kumiki_fuzz::as_text(data, size));
  kumiki_fuzz::accepts([&] {
    train::CheckpointManifest const m = train::verify_checkpoint(dir);
    // Verified files are files of this directory, and nothing else.
    for (auto const& [name, entry] : m.files) {
      if (fs::path(name).has_parent_path() || name == ".." || name == ".") __builtin_trap();
      if (fs::canonical(dir / name).parent_path() != fs::canonical(dir)) __builtin_trap();
      (void)entry;
    }
  });
  return 0;
}
