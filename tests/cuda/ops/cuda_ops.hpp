// The CUDA side of the op harness (tests/ops/backend_ops.hpp), as the host test sees it. Each
// tests/cuda/ops/<op>.cu compiles one op's cases for the GPU (nvcc, no Eigen) and instantiates
// run_cuda<Case> for them; test_cuda_ops.cpp (g++, with the CPU backend) compares every case with the
// CPU in double and runs it twice for bitwise reproducibility.
#pragma once

#include "../../ops/backend_ops.hpp"

namespace kumiki_test::cuda_ops {

/// The two policies every CUDA op is tested in: fp32 everywhere, and LLM-jp-4's mixed precision
/// (bf16 weights and activations; fp32 statistics, weight gradients and master weights).
enum class Dt { f32, bf16 };
using Mixed = kumiki::Precision<kumiki::bf16, kumiki::bf16, float, float, float>;
inline char const* dt_name(Dt d) { return d == Dt::f32 ? "fp32" : "bf16 (mixed)"; }

/// Runs `Case` on the GPU in policy `dt` with a fresh ops::Ctx<Cuda>; instantiated in the op's .cu.
template <class Case>
backend_ops::Outputs run_cuda(Dt dt);

/// Visible CUDA devices (0 without a driver or a GPU); defined in cuda_ops_main.cu.
int device_count();

}  // namespace kumiki_test::cuda_ops
