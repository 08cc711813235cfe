// The optimizer's harness cases on the GPU: AdamW<Cuda> and GradNorm<Cuda> (tests/cuda/ops/cases_optim.hpp).
#include "kumiki/optim/cuda/adamw.cuh"
#include "kumiki/optim/cuda/grad_norm.cuh"
#include "kumiki/optim/cuda/master.cuh"
#include "cuda_ops_impl.cuh"
#include "cases_optim.hpp"

KUMIKI_CUDA_CASE(kumiki_test::backend_ops::OptimAdamWBitwiseCase<false>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::OptimAdamWBitwiseCase<true>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::OptimAdamWHalvesBitwiseCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::OptimGradNormCase);
