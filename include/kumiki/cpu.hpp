// kumiki/cpu.hpp: the CPU backend: every CPU specialization (ops, MoE router and dispatch, optimizer,
// gradient norm) and the host-only tools built on them (Drop-Upcycling of host arenas).
// kumiki/kumiki.hpp includes it; a program that includes only some generic headers includes this one
// (or the single ops/cpu/*.hpp it needs) to run them on the CPU.
// The CPU code uses Eigen (GEMMs, row maps) and OpenMP; no generic header includes either.
#pragma once

#include "kumiki/moe/cpu/dispatch.hpp"
#include "kumiki/moe/cpu/router.hpp"
#include "kumiki/moe/upcycle.hpp"
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
#include "kumiki/optim/cpu/master.hpp"
