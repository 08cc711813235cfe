// kumiki/core/precision.hpp: the precision policy of a model: one element type per kind of buffer
// (parameters, activations, statistics, gradients, master weights) instead of one scalar for all.
#pragma once

#include <concepts>
#include <type_traits>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"

KUMIKI_NAMESPACE_BEGIN

/// The element types of a model's buffers:
///   - Param:  the weights the forward reads (the parameter arena);
///   - Act:    activations, saved for the backward, and their gradients (the activation arena);
///   - Stat:   row statistics kept beside activations: RMSNorm 1/rms, attention and LM-head logsumexp,
///             the router's logits, probabilities and routing weights, the RoPE tables;
///   - Grad:   weight gradients (the gradient arena, what a communicator reduces);
///   - Master: the weights the optimizer updates (the parameter arena itself when equal to Param).
/// The CPU trains in `Precision<float>` (and `Precision<double>` in the gradient checks). A GPU
/// mixed-precision run is e.g. `Precision<bf16, bf16, float, float, float>`: bf16 weights and
/// activations, fp32 statistics, fp32 gradients and fp32 master weights (Megatron-LM's bf16 recipe with
/// --accumulate-allreduce-grads-in-fp32).
template <class Param, class Act = Param, class Stat = Act, class Grad = Param, class Master = Grad>
struct Precision {
  using param = Param;
  using act = Act;
  using stat = Stat;
  using grad = Grad;
  using master = Master;
  /// One type for everything (no casts anywhere: the optimizer updates the parameter arena in place).
  static constexpr bool uniform = std::is_same_v<Param, Act> && std::is_same_v<Param, Stat> &&
                                  std::is_same_v<Param, Grad> && std::is_same_v<Param, Master>;
};

/// A precision policy: anything naming the five types as Precision does.
template <class P>
concept PrecisionPolicy = requires {
  typename P::param;
  typename P::act;
  typename P::stat;
  typename P::grad;
  typename P::master;
  { P::uniform } -> std::convertible_to<bool>;
};

namespace detail {
template <class X>
struct as_precision {
  using type = Precision<X>;
};
template <PrecisionPolicy P>
struct as_precision<P> {
  using type = P;
};
}  // namespace detail

/// A model's third template argument may be a policy or one scalar type: `float` means
/// `Precision<float>` (every buffer float), so `Transformer<Cfg, Cpu, double>` reads as before.
template <class X>
using precision_t = typename detail::as_precision<X>::type;

/// The types of a policy or scalar X, as the op concepts name them.
template <class X>
using param_of = typename precision_t<X>::param;
template <class X>
using act_of = typename precision_t<X>::act;
template <class X>
using stat_of = typename precision_t<X>::stat;
template <class X>
using grad_of = typename precision_t<X>::grad;

/// Whether `Backend`'s ops compute in policy P. The CPU's ops are templates on one scalar type, so
/// the CPU takes uniform float or double policies; a backend specializes this for what it supports.
template <class Backend, class P>
inline constexpr bool supports_precision_v = true;
template <class P>
inline constexpr bool supports_precision_v<Cpu, P> =
    P::uniform && (std::is_same_v<typename P::param, float> || std::is_same_v<typename P::param, double>);

KUMIKI_NAMESPACE_END
