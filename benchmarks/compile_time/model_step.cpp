// Compile-time probe (scripts/compile-time): one training step of the demo model. Built and timed by
// the script once per header below, that header included as KUMIKI_PROBE_HEADER; never run.
// headers: kumiki/kumiki.hpp kumiki/model.hpp
#include <cstdint>
#include <vector>

#include KUMIKI_PROBE_HEADER

int main() {
  namespace k = kumiki;
  k::nn::Transformer<k::models::demo, k::Cpu, float> model;
  model.init(1);
  k::optim::AdamW<k::Cpu> adam(model.params().layout());
  std::vector<std::int32_t> tokens(64, 1), targets(64, 2);
  model.zero_grad();
  k::nn::LossResult const r = model.forward_backward(tokens.data(), targets.data(), 1, 64, k::nn::StepOptions{});
  k::optim::clip_grad_norm(model.context(), model.grads(), 1.0);
  adam.step(model.context(), model.params(), model.grads(), 1e-3f);
  return r.loss > 0 ? 0 : 1;
}
