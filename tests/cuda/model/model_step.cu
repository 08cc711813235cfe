// The GPU half of the whole-model step test (model_step.hpp).
#include <cuda_runtime.h>

#include "kumiki/cuda.cuh"
#include "model_step.hpp"

namespace kumiki_test::cuda_model {
namespace {
namespace k = kumiki;

template <class P>
StepOut run(std::vector<std::vector<float>> const& weights, std::vector<std::int32_t> const& tokens,
            std::vector<std::int32_t> const& targets, std::int64_t batch, std::int64_t seq, int variant) {
  using Model = k::nn::Transformer<k::models::tiny_test, k::Cuda, P>;
  using T = typename Model::param_type;
  Model m;
  k::Arena<k::Cpu> host(m.params().layout());
  KUMIKI_CHECK(weights.size() == host.layout().size(), "weights for ", weights.size(), " tensors, the model has ",
               host.layout().size());
  for (std::size_t i = 0; i < weights.size(); ++i) {
    T* dst = host.get<T>(i).data();
    KUMIKI_CHECK(weights[i].size() == host.layout()[i].numel(), "tensor ", i, ": wrong size");
    for (std::size_t j = 0; j < weights[i].size(); ++j) dst[j] = T(weights[i][j]);
  }
  k::copy(m.params(), host);
  std::size_t const bytes = tokens.size() * sizeof(std::int32_t);
  k::Buffer<k::Cuda> tok(bytes), tgt(bytes);
  k::Copy<k::Cuda, k::Cpu>::bytes(tok.data(), tokens.data(), bytes);
  k::Copy<k::Cuda, k::Cpu>::bytes(tgt.data(), targets.data(), bytes);
  m.zero_grad();
  k::nn::StepOptions opt;
  opt.light_recompute = opt.defer_loss = variant == 1;
  opt.recompute = variant == 2;
  std::vector<k::nn::LossResult> r{m.forward_backward(reinterpret_cast<std::int32_t const*>(tok.data()),
                                                      reinterpret_cast<std::int32_t const*>(tgt.data()), batch, seq, opt)};
  KUMIKI_CHECK(r[0].pending == (variant == 1), "a deferred loss is pending on the GPU, and only then");
  m.settle_losses(r);
  k::Arena<k::Cpu> g(m.grads().layout());
  k::copy(g, m.grads());
  StepOut out;
  out.loss = r[0].loss;
  for (std::size_t i = 0; i < g.layout().size(); ++i) {
    auto const v = g.get<float>(i);
    out.grads.emplace_back(v.data(), v.data() + g.layout()[i].numel());
  }
  return out;
}

}  // namespace

StepOut gpu_step(bool bf16, std::vector<std::vector<float>> const& weights, std::vector<std::int32_t> const& tokens,
                 std::vector<std::int32_t> const& targets, std::int64_t batch, std::int64_t seq, int variant) {
  using Mixed = k::Precision<k::bf16, k::bf16, float, float, float>;
  return bf16 ? run<Mixed>(weights, tokens, targets, batch, seq, variant)
              : run<float>(weights, tokens, targets, batch, seq, variant);
}

int device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}

}  // namespace kumiki_test::cuda_model
