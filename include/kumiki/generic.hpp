// kumiki/generic.hpp: every backend-independent header: element types, arenas, configs, the model,
// block and MoE layer written over op primary templates, optimizer interfaces, data, io, recipes and
// the trainer. It includes no CPU or CUDA specialization, no Eigen and no OpenMP; a backend umbrella
// adds those: kumiki/cpu.hpp (through kumiki/kumiki.hpp) or kumiki/cuda.cuh.
#pragma once

#include "kumiki/config.hpp"

// core: element types, views, memory, RNG, errors, files
#include "kumiki/core/arena.hpp"
#include "kumiki/core/atomic_file.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/crc32c.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/mmap.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/core/tensor.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/core/toml_reader.hpp"

// models, ops, nn: the transformer, dense or MoE; the op contexts and primary templates
#include "kumiki/models/configs.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/nn/activation_layout.hpp"
#include "kumiki/nn/generator.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/residual_rmsnorm.hpp"

// Mixture of experts
#include "kumiki/moe/moe_layer.hpp"

// optimizer, gradient norm, learning-rate schedules, data-parallel communicator interface
#include "kumiki/dist/comm.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"
#include "kumiki/optim/master.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/toml.hpp"

// data: Megatron indexed datasets, GPT samples, blending, byte-level tokenizer
#include "kumiki/data/batch.hpp"
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/data/indexed_dataset.hpp"
#include "kumiki/data/sampler.hpp"
#include "kumiki/data/tokenizer.hpp"

// eval: few-shot task files and lm-evaluation-harness's metrics, the task scorer
#include "kumiki/eval/scorer.hpp"
#include "kumiki/eval/tasks.hpp"

// io: safetensors, Hugging Face Llama / Mixtral
#include "kumiki/io/convert.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/io/safetensors.hpp"

// train: recipes, the trainer, logs and checkpoint directories
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/checkpoint_dir.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/train/log.hpp"
#include "kumiki/train/plan.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/soup.hpp"
#include "kumiki/train/spikes.hpp"
#include "kumiki/train/trainer.hpp"
