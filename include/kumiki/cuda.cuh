// kumiki/cuda.cuh: umbrella header for CUDA translation units (compile with nvcc): the CUDA backend
// (device memory and copies, error checks, the op context, every op of the dense model, AdamW and
// the gradient norm) and the generic layers a device program is
// made of: element types and arenas, model configs, the model, block and MoE layer, the optimizer and
// gradient-norm interfaces, the communicator interface.
//
// It includes no CPU specialization, so a .cu file compiles no Eigen and no OpenMP code and emits no
// copy of a CPU function (checked by CTest: cuda.no_cpu_code). The host-side layers (data pipelines,
// safetensors and Hugging Face io, recipes, the trainer and checkpoints) are generic too; a .cu file
// that needs them includes them by name (or kumiki/generic.hpp for all), and pays their compile time.
#pragma once

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/core/tensor.hpp"
#include "kumiki/dist/comm.hpp"
#include "kumiki/models/configs.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/moe/moe_layer.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/attention.cuh"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/cuda/elementwise.cuh"
#include "kumiki/ops/cuda/embedding.cuh"
#include "kumiki/ops/cuda/fill.cuh"
#include "kumiki/ops/cuda/linear.cuh"
#include "kumiki/ops/cuda/lm_head_loss.cuh"
#include "kumiki/ops/cuda/residual.cuh"
#include "kumiki/ops/cuda/residual_rmsnorm.cuh"
#include "kumiki/ops/cuda/rmsnorm.cuh"
#include "kumiki/ops/cuda/rope.cuh"
#include "kumiki/ops/cuda/swiglu.cuh"
#include "kumiki/ops/residual_rmsnorm.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"
#include "kumiki/optim/cuda/adamw.cuh"
#include "kumiki/optim/cuda/grad_norm.cuh"
#include "kumiki/optim/cuda/master.cuh"
#include "kumiki/optim/master.hpp"
