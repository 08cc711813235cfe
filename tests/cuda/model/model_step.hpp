// The GPU side of the whole-model step test (test_model_step.cpp), as the host test sees it: one
// forward + backward of tiny_test on the GPU (model_step.cu, nvcc, no Eigen).
#pragma once

#include <cstdint>
#include <vector>

namespace kumiki_test::cuda_model {

struct StepOut {
  double loss = 0;
  std::vector<std::vector<float>> grads;  ///< one vector per parameter tensor, in layout order
};

/// Loads fp32 `weights` (one vector per parameter tensor, layout order) into Transformer<tiny_test,
/// Cuda, P>, P fp32 or (bf16) Precision<bf16, bf16, float, float, float> (each weight rounded to
/// bf16 to nearest even), and runs forward_backward on (tokens, targets) of shape (batch, seq).
/// `variant`: 0 as the trainer's defaults; 1 light recomputation with the loss deferred and settled
/// (nn::StepOptions::light_recompute, defer_loss); 2 full recomputation. All three must give the same bits.
StepOut gpu_step(bool bf16, std::vector<std::vector<float>> const& weights, std::vector<std::int32_t> const& tokens,
                 std::vector<std::int32_t> const& targets, std::int64_t batch, std::int64_t seq, int variant = 0);

/// Visible CUDA devices (0 without a driver or a GPU).
int device_count();

}  // namespace kumiki_test::cuda_model
