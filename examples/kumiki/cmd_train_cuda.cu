// `kumiki train --device cuda`: the CUDA half of the command (kumiki/cli/train_cuda.cuh), built with nvcc
// when the CUDA toolkit is found, for the dense configurations a GPU trains. Each configuration here
// costs about a minute of compiling; the MoE ones have no CUDA ops yet.
#include "kumiki/cli/train_cuda.cuh"
#include "kumiki/models/configs.hpp"

namespace {
namespace m = kumiki::models;
using CudaConfigs = m::ConfigList<m::llmjp4_1_3b, m::llmjp4_8b, m::demo>;
[[maybe_unused]] bool const registered = kumiki::cli::register_cuda_training<m::BuiltinConfigs, CudaConfigs>();
}  // namespace
