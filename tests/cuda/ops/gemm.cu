// The CUDA GEMM ops (Linear, LmHeadLoss) in the op harness: the existing cases and those of cases_gemm.hpp.
#include "kumiki/ops/cuda/linear.cuh"
#include "kumiki/ops/cuda/lm_head_loss.cuh"
#include "cuda_ops_impl.cuh"
#include "cases_gemm.hpp"

KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LinearCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LinearOddCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LinearLlmJpCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LinearRouterCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossOddCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossOneTokenCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossIgnoredCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossLlmJpVocabCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossHiddenCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::LmHeadLossDeferredCase);
