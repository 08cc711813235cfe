// kumiki/config.hpp: the one place for compiler and host/device macros, the version and the namespace.
#pragma once

#include <cstddef>
#include <cstdint>

#define KUMIKI_VERSION_MAJOR 0
#define KUMIKI_VERSION_MINOR 1
#define KUMIKI_VERSION_PATCH 0

// Functions that must run on the host and, when compiled by nvcc, on the device.
#if defined(__CUDACC__)
#define KUMIKI_HOST_DEVICE __host__ __device__
#define KUMIKI_DEVICE __device__
#else
#define KUMIKI_HOST_DEVICE
#define KUMIKI_DEVICE
#endif

#if defined(_MSC_VER)
#define KUMIKI_FORCEINLINE __forceinline
#else
#define KUMIKI_FORCEINLINE inline __attribute__((always_inline))
#endif

// Loop unrolling hint accepted by g++, clang and nvcc. nvcc's device pass takes `unroll`; its host pass
// hands the code to g++, which rejects `unroll` (-Wunknown-pragmas) while nvcc's front end rejects
// `GCC unroll`, so that pass gets no hint.
#if defined(__CUDA_ARCH__) || (defined(__clang__) && !defined(__CUDACC__))
#define KUMIKI_UNROLL _Pragma("unroll")
#elif defined(__CUDACC__)
#define KUMIKI_UNROLL
#elif defined(__GNUC__)
#define KUMIKI_UNROLL _Pragma("GCC unroll 8")
#else
#define KUMIKI_UNROLL
#endif

// The instruction set this translation unit's CPU code is compiled for. The `Cpu` device tag
// (core/device.hpp) and the kernels with explicit SIMD paths sit in `inline namespace KUMIKI_CPU_ISA`,
// so two translation units built for different instruction sets get different symbols for every CPU
// specialization and the Eigen code it instantiates: the linker never swaps one kernel for another.
#if defined(__AVX512F__)
#define KUMIKI_CPU_ISA isa_avx512
#elif defined(__AVX2__)
#define KUMIKI_CPU_ISA isa_avx2
#elif defined(__SSE4_2__)
#define KUMIKI_CPU_ISA isa_sse42
#else
#define KUMIKI_CPU_ISA isa_baseline
#endif

// A versioned inline namespace keeps two kumiki versions in one program from violating the ODR.
#define KUMIKI_NAMESPACE_BEGIN \
  namespace kumiki {           \
  inline namespace v0_1 {
#define KUMIKI_NAMESPACE_END \
  }                          \
  }

KUMIKI_NAMESPACE_BEGIN

inline constexpr int version_major = KUMIKI_VERSION_MAJOR;
inline constexpr int version_minor = KUMIKI_VERSION_MINOR;
inline constexpr int version_patch = KUMIKI_VERSION_PATCH;
inline constexpr char const version_string[] = "0.1.0";

/// Every host allocation and every arena slot is aligned to this many bytes (cache line, AVX-512).
inline constexpr std::size_t host_alignment = 64;

/// Dependent false for `static_assert` in primary templates that must be specialized per backend.
template <class...>
inline constexpr bool always_false = false;

KUMIKI_NAMESPACE_END
