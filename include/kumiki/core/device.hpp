// kumiki/core/device.hpp: device tags. A backend is a type (Cpu, Cuda), never a macro.
#pragma once

#include <concepts>
#include <cstdint>
#include <string_view>

#include "kumiki/config.hpp"

KUMIKI_NAMESPACE_BEGIN

enum class DeviceKind : std::uint8_t { cpu, cuda };

constexpr std::string_view device_name(DeviceKind d) { return d == DeviceKind::cpu ? "cpu" : "cuda"; }

/// Host memory, CPU kernels (Eigen GEMMs, OpenMP loops).
struct Cpu {
  static constexpr DeviceKind kind = DeviceKind::cpu;
  static constexpr std::string_view name = "cpu";
};

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
