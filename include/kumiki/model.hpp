// kumiki/model.hpp: the model alone, on the CPU: the configurations, nn::Transformer and nn::Generator,
// the CPU specializations of their ops (MoE router and dispatch included), AdamW, the gradient norm and
// the learning-rate schedules. No data, io, eval or train layer: a translation unit that builds, steps
// or decodes a model pays for nothing else (compile time: docs/api.md). kumiki/trainer.hpp adds the
// trainer; kumiki/kumiki.hpp is everything.
#pragma once

#include "kumiki/models/configs.hpp"
#include "kumiki/nn/generator.hpp"
#include "kumiki/nn/transformer.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"
#include "kumiki/sched/schedule.hpp"

#include "kumiki/moe/cpu/dispatch.hpp"
#include "kumiki/moe/cpu/router.hpp"
#include "kumiki/ops/cpu/attention.hpp"
#include "kumiki/ops/cpu/cached_attention.hpp"
#include "kumiki/ops/cpu/embedding.hpp"
#include "kumiki/ops/cpu/fill.hpp"
#include "kumiki/ops/cpu/linear.hpp"
#include "kumiki/ops/cpu/lm_head_loss.hpp"
#include "kumiki/ops/cpu/residual.hpp"
#include "kumiki/ops/cpu/residual_rmsnorm.hpp"
#include "kumiki/ops/cpu/rmsnorm.hpp"
#include "kumiki/ops/cpu/rope.hpp"
#include "kumiki/ops/cpu/swiglu.hpp"
#include "kumiki/optim/cpu/adamw.hpp"
#include "kumiki/optim/cpu/grad_norm.hpp"
