// kumiki/ops/context.hpp: the backend context every op takes first, and the op contract.
#pragma once

#include <cstddef>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/precision.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

/// What an op needs from its backend besides its arguments. Every op's functions take a
/// `Ctx<Backend>&` first, so a backend can hand its ops a stream, library handles and scratch
/// without globals:
///   - Cpu: nothing (empty); CPU ops use OpenMP threads and host temporaries of their own.
///   - Cuda (ops/cuda/context.cuh): the stream every kernel and copy is queued on, the cuBLASLt
///     handle with its workspace, and a device scratch arena for ops that need temporaries.
/// A model owns one context (`Transformer::context()`); tests and benchmarks make their own.
///
/// The op contract (docs/architecture.md):
///   1. a primary template `ops::Name<Backend>` whose body is a static_assert naming the missing
///      specialization, so an unsupported backend fails at compile time with a readable message;
///   2. the signature, stated once by a concept `ops::NameOp<Op, Backend, X>` in the op's generic
///      header, X a precision policy (core/precision.hpp) or one scalar type: activations are
///      act_of<X>, weights param_of<X>, weight gradients grad_of<X>, row statistics stat_of<X>; every
///      specialization is static_asserted against it for the policies it supports;
///   3. memory the op does not own (outputs, saved activations, device scratch) comes from the caller.
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
struct Ctx {
  static_assert(always_false<Backend>, "kumiki: no op context for this backend; include kumiki/cpu.hpp (Cpu) or "
                                       "kumiki/cuda.cuh (Cuda)");
};

/// The CPU needs no context.
template <>
struct Ctx<Cpu> {};

/// Host data (a micro-batch's token ids) handed to the work queued next on a backend:
/// `put(ctx, channel, src, bytes)` returns where that work reads the bytes, valid until the next put on
/// the same channel (a small integer; tokens and targets take one each). The host may overwrite `src`
/// as soon as put returns. Cpu: the host pointer itself. Cuda (ops/cuda/context.cuh): an asynchronous
/// copy through pinned memory, queued on the stream, so uploading never stalls the device.
/// \tparam Backend device tag (`Cpu`, `Cuda`)
template <class Backend>
class Upload {
  static_assert(always_false<Backend>, "kumiki: no Upload for this backend; include kumiki/cuda.cuh for Cuda");
};

template <>
class Upload<Cpu> {
 public:
  static void const* put(Ctx<Cpu>& /*ctx*/, int /*channel*/, void const* src, std::size_t /*bytes*/) { return src; }
};

/// Whether this translation unit can run `Backend`'s ops: always for Cpu; for Cuda once
/// ops/cuda/context.cuh (kumiki/cuda.cuh, compiled by nvcc) is included, which sets it. The model
/// checks it before anything else (nn::Transformer's specialization for an unavailable backend), so a
/// Cuda model in a host file fails with one static_assert that says what to include, not a cascade.
template <class Backend>
inline constexpr bool backend_available = false;
template <>
inline constexpr bool backend_available<Cpu> = true;

}  // namespace ops
KUMIKI_NAMESPACE_END
