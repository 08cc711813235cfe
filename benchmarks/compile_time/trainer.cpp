// Compile-time probe (scripts/compile-time): kumiki's trainer for the demo model. Built and timed by
// the script once per header below, that header included as KUMIKI_PROBE_HEADER; never run.
// headers: kumiki/kumiki.hpp kumiki/trainer.hpp
#include KUMIKI_PROBE_HEADER

int main(int argc, char** argv) {
  namespace k = kumiki;
  if (argc != 3) return 2;
  k::train::Trainer<k::models::demo> trainer(k::train::load_recipe(argv[1]), argv[2]);
  return trainer.run() == k::train::RunOutcome::completed ? 0 : 1;
}
