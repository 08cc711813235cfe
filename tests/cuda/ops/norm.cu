// The CUDA RmsNorm and ResidualRmsNorm in the op harness: the shared cases of tests/ops/backend_ops.hpp
// and the odd and LLM-jp-4 shapes of cases_norm.hpp.
#include "kumiki/ops/cuda/rmsnorm.cuh"
#include "kumiki/ops/cuda/residual_rmsnorm.cuh"
#include "cuda_ops_impl.cuh"
#include "cases_norm.hpp"

KUMIKI_CUDA_CASE(kumiki_test::backend_ops::RmsNormCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::ResidualRmsNormCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::RmsNormShapesCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::ResidualRmsNormShapesCase);
