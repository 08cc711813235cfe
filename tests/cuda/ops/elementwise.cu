// The CUDA elementwise ops (Residual, SwiGlu, Rope, Embedding, Fill) in the op harness: the shared
// cases of tests/ops/backend_ops.hpp and the odd and LLM-jp-4 shapes of cases_elementwise.hpp.
#include "kumiki/ops/cuda/embedding.cuh"
#include "kumiki/ops/cuda/fill.cuh"
#include "kumiki/ops/cuda/residual.cuh"
#include "kumiki/ops/cuda/rope.cuh"
#include "kumiki/ops/cuda/swiglu.cuh"
#include "cuda_ops_impl.cuh"
#include "cases_elementwise.hpp"

KUMIKI_CUDA_CASE(kumiki_test::backend_ops::ResidualCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::SwiGluCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::RopeCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::EmbeddingCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::ResidualShapesCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::SwiGluShapesCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::RopeShapesCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::EmbeddingShapesCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::FillCase);
