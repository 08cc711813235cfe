// kumiki/core/device.hpp: device tags. A backend is a type (Cpu, Cuda), never a macro.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

enum class DeviceKind : std::uint8_t { cpu, cuda };

constexpr std::string_view device_name(DeviceKind d) { return d == DeviceKind::cpu ? "cpu" : "cuda"; }

// The CPU tag lives in the instruction-set namespace of the translation unit (config.hpp), so every
// CPU specialization (`ops::Linear<Cpu>`, `optim::AdamW<Cpu>`, `Arena<Cpu>` ...) and every Eigen
// kernel it instantiates is a different symbol per -march: two translation units built for different
// instruction sets cannot have the linker keep one's vectorized (and differently rounded) code for the
// other's. Code is unaffected: `kumiki::Cpu` names the tag of the current translation unit.
inline namespace KUMIKI_CPU_ISA {
/// Host memory, CPU kernels (Eigen GEMMs, OpenMP loops).
struct Cpu {
  static constexpr DeviceKind kind = DeviceKind::cpu;
  static constexpr std::string_view name = "cpu";
};
}  // namespace KUMIKI_CPU_ISA

/// NVIDIA GPU memory, CUDA kernels (own kernels, cuBLASLt, NCCL). Specializations live in `.cuh`.
struct Cuda {
  static constexpr DeviceKind kind = DeviceKind::cuda;
  static constexpr std::string_view name = "cuda";
};

template <class D>
concept DeviceTag = requires {
  { D::kind } -> std::convertible_to<DeviceKind>;
};

KUMIKI_NAMESPACE_END
