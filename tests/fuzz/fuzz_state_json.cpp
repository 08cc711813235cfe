// Fuzz target: a training checkpoint's state.json (train::parse_train_state), as load_checkpoint
// and the trainer's resume read it.
#include <cstddef>
#include <cstdint>

#include "fuzz_util.hpp"
#include "kumiki/train/checkpoint.hpp"

using namespace kumiki;

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  kumiki_fuzz::accepts([&] {
    train::TrainState const s = train::parse_train_state(kumiki_fuzz::as_text(data, size), "state.json");
    // What the trainer relies on when it resumes from the state.
    if (s.step < 0 || s.tokens < 0 || s.stage_index < 0 || s.stage_step < 0 || s.nonfinite_run < 0 || s.skipped_total < 0)
      __builtin_trap();
    if (s.stage_step > s.step || s.nonfinite_run > s.step || s.skipped_total > s.step) __builtin_trap();
    if (s.datasets.size() != s.consumed_per_dataset.size()) __builtin_trap();
    // A state that was read writes back to the same state.
    train::TrainState const again = train::train_state_from_json(train::to_json(s), "state.json (rewritten)");
    if (again.step != s.step || again.stage != s.stage || again.datasets != s.datasets ||
        again.consumed_per_dataset != s.consumed_per_dataset || again.init_seed != s.init_seed ||
        again.data_seed != s.data_seed)
      __builtin_trap();
  });
  return 0;
}
