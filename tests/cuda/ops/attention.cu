// The Attention cases on the GPU (fp32 and mixed bf16): backend_ops.hpp's AttentionCase and the
// extra shapes of cases_attention.hpp (bf16 at head_dim 64 / 128 on tensor cores, and on CUDA cores).
#include "kumiki/ops/cuda/attention.cuh"
#include "cuda_ops_impl.cuh"
#include "cases_attention.hpp"

KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionCase<false>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionCase<true>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionSeqOneCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionMhaOddCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionMqa130Case);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionDocumentsCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionAllEodCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionSeqOneEodCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionLlmJp4SmallCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionLlmJp4LargeCase);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionGqa300Case<128, true, 0>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionGqa300Case<64, false, 0>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionGqa300Case<64, true, 1>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionGqa300Case<128, false, 2>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionCudaCoresCase<kumiki_test::backend_ops::AttentionMqa130Case>);
KUMIKI_CUDA_CASE(kumiki_test::backend_ops::AttentionCudaCoresCase<kumiki_test::backend_ops::AttentionLlmJp4LargeCase>);
KUMIKI_CUDA_CASE(
    kumiki_test::backend_ops::AttentionCudaCoresCase<kumiki_test::backend_ops::AttentionGqa300Case<128, true, 0>>);
KUMIKI_CUDA_CASE(
    kumiki_test::backend_ops::AttentionCudaCoresCase<kumiki_test::backend_ops::AttentionGqa300Case<64, false, 1>>);
