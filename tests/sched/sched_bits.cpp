// Prints every schedule's values as exact hex doubles. CTest builds this file twice, once with
// -march=native -ffp-contract=fast (fused multiply-adds wherever the compiler likes) and once for
// baseline x86-64 with -ffp-contract=off, and requires the two outputs to be identical: schedule
// arithmetic must not depend on the CPU a binary was built for (a resumed run continues bitwise).
#include <cstdio>

#include "kumiki/sched/anneal.hpp"
#include "kumiki/sched/megatron.hpp"
#include "kumiki/sched/weight_decay.hpp"

using namespace kumiki::sched;

namespace {
template <class S>
void print(char const* name, S const& s, std::int64_t steps) {
  for (std::int64_t n = 0; n <= steps; ++n) std::printf("%s %lld %a\n", name, static_cast<long long>(n), s.lr(n));
}
}  // namespace

int main() {
  // Odd values so that products are inexact and a fused multiply-add rounds differently.
  double const max_lr = 3.1e-4, min_lr = 2.7e-5, init_lr = 1.3e-6;
  std::int64_t const W = 37, D = 1013;
  print("linear", Linear{max_lr, min_lr, init_lr, W, D, {}}, D + 5);
  print("cosine", Cosine{max_lr, min_lr, init_lr, W, D, {}}, D + 5);
  print("inverse-square-root", InverseSqrt{max_lr, min_lr, init_lr, W, D, {}}, D + 5);
  for (auto const shape : {DecayShape::linear, DecayShape::cosine, DecayShape::exponential, DecayShape::minus_sqrt}) {
    Wsd const w{max_lr, min_lr, init_lr, W, D, 311, shape, {}};
    print("wsd", w, D + 5);
    print("anneal", Anneal{w.lr(500), min_lr, 500, 277, shape, {}}, 800);
  }
  for (auto const style : {WdIncrement::linear, WdIncrement::cosine}) {
    WeightDecaySchedule const wd{0.013, 0.1, 997, style, {}};
    for (std::int64_t n = 0; n <= 1000; ++n) std::printf("wd %lld %a\n", static_cast<long long>(n), wd.wd(n));
  }
  return 0;
}
