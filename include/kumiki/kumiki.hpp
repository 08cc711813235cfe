// kumiki/kumiki.hpp: umbrella header for everything that builds with a plain C++ compiler and the
// dependencies of kumiki::kumiki (Eigen, OpenMP, Threads, nlohmann-json). Headers that need more are
// included on their own: data/sentencepiece.hpp (libsentencepiece), dist/mpi.hpp (MPI);
// data/preprocess.hpp reads .gz input when zlib is present.
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
#include "kumiki/core/shape.hpp"
#include "kumiki/core/tensor.hpp"
#include "kumiki/core/toml.hpp"
#include "kumiki/core/toml_reader.hpp"

// models, ops, nn: the transformer, dense or MoE (CPU specializations)
#include "kumiki/models/configs.hpp"
#include "kumiki/models/transformer_config.hpp"
#include "kumiki/nn/transformer.hpp"

// Mixture of experts
#include "kumiki/moe/moe_layer.hpp"
#include "kumiki/moe/upcycle.hpp"

// optimizer and learning-rate schedules
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"
#include "kumiki/sched/schedule.hpp"
#include "kumiki/sched/toml.hpp"

// data: Megatron indexed datasets, GPT samples, blending, byte-level tokenizer
#include "kumiki/data/blended_dataset.hpp"
#include "kumiki/data/gpt_dataset.hpp"
#include "kumiki/data/indexed_dataset.hpp"
#include "kumiki/data/sampler.hpp"
#include "kumiki/data/tokenizer.hpp"

// io: safetensors, Hugging Face Llama / Mixtral
#include "kumiki/io/convert.hpp"
#include "kumiki/io/hf.hpp"
#include "kumiki/io/safetensors.hpp"

// train: recipes, the trainer, logs and checkpoint directories
#include "kumiki/train/checkpoint_dir.hpp"
#include "kumiki/train/log.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"
