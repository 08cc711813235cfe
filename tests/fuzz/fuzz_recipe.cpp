// libFuzzer target for recipes: any bytes given to parse_recipe (the TOML reader, the key reader, the
// schedule readers and their checks) give a Recipe or a kumiki::InputError; anything else (another
// exception, a crash, a sanitizer report) is a finding. Parsed documents must also survive the
// writer: what toml::write produces reads back and writes the same text again.
#include <cstddef>
#include <cstdint>
#include <cstdlib>
#include <string>
#include <string_view>

#include "kumiki/core/error.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/train/recipe.hpp"

extern "C" int LLVMFuzzerTestOneInput(std::uint8_t const* data, std::size_t size) {
  std::string_view const text(reinterpret_cast<char const*>(data), size);
  try {
    kumiki::train::Recipe const r = kumiki::train::parse_recipe(text, "fuzz.toml", ".", /*check_files=*/false);
    // The arithmetic a trainer does with it: the lr at every stage boundary and at the last step.
    volatile double sink = 0;
    for (std::size_t i = 0; i < r.stages.size(); ++i) {
      std::int64_t const s = r.stage_start(i);
      sink = sink + r.lr(s) + r.lr(s + r.stages[i].steps - 1);
    }
    sink = sink + r.lr(r.total_steps());
  } catch (kumiki::InputError const&) {
    // a rejected recipe: the expected outcome for most inputs
  }

  kumiki::toml::Table doc;
  try {
    doc = kumiki::toml::parse(text, "fuzz.toml");
  } catch (kumiki::InputError const&) {
    return 0;
  }
  // Outside any catch: a written document that does not read back is a finding.
  std::string const written = kumiki::toml::write(doc);
  std::string const again = kumiki::toml::write(kumiki::toml::parse(written, "written.toml"));
  if (again != written) std::abort();
  return 0;
}
