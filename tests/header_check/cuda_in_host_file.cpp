// A Cuda model, generator or trainer in a file the host compiler builds (header_check.cuda_in_host_file):
// declaring one (KUMIKI_PROBE 1, 2, 3) must fail with one error, the static_assert saying what to
// include. The control, KUMIKI_PROBE=0 with KUMIKI_PROBE_BACKEND=Cpu, declares all three: it must compile.
#if KUMIKI_PROBE == 0 || KUMIKI_PROBE == 3
#include "kumiki/trainer.hpp"
#else
#include "kumiki/model.hpp"
#endif

namespace k = kumiki;
using Backend = k::KUMIKI_PROBE_BACKEND;

int main() {
#if KUMIKI_PROBE == 1 || KUMIKI_PROBE == 0
  k::nn::Transformer<k::models::tiny_test, Backend> model;
  (void)model;
#endif
#if KUMIKI_PROBE == 2 || KUMIKI_PROBE == 0
  k::nn::Transformer<k::models::tiny_test, Backend> lm;
  k::nn::Generator generator(lm, 1, 16);
  (void)generator;
#endif
#if KUMIKI_PROBE == 3 || KUMIKI_PROBE == 0
  k::train::Trainer<k::models::tiny_test, Backend> trainer(k::train::Recipe{}, "out");
  (void)trainer;
#endif
  return 0;
}
