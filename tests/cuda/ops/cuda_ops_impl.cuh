// run_cuda's definition, for the tests/cuda/ops/<op>.cu files only (nvcc): include the op's CUDA
// header and the cases, then KUMIKI_CUDA_CASE(Case) for each case that runs on the GPU.
#pragma once

#include "cuda_ops.hpp"
#include "kumiki/cuda.cuh"

namespace kumiki_test::cuda_ops {

template <class Case>
backend_ops::Outputs run_cuda(Dt dt) {
  kumiki::ops::Ctx<kumiki::Cuda> ctx;
  return dt == Dt::f32 ? Case::template run<kumiki::Cuda, float>(ctx) : Case::template run<kumiki::Cuda, Mixed>(ctx);
}

}  // namespace kumiki_test::cuda_ops

/// Instantiates run_cuda for one case (at namespace scope in a .cu file).
#define KUMIKI_CUDA_CASE(...) \
  template ::kumiki_test::backend_ops::Outputs kumiki_test::cuda_ops::run_cuda<__VA_ARGS__>(kumiki_test::cuda_ops::Dt)
