// kumiki/trainer.hpp: the model (kumiki/model.hpp) and kumiki's trainer with what it reads and writes:
// recipes, data, checkpoints, logs, Hugging Face interop (train::Trainer<Cfg>, train::export_hf). No
// eval layer and no command line (compile time: docs/api.md).
#pragma once

#include "kumiki/model.hpp"
#include "kumiki/train/checkpoint.hpp"
#include "kumiki/train/hf_interop.hpp"
#include "kumiki/train/recipe.hpp"
#include "kumiki/train/trainer.hpp"
