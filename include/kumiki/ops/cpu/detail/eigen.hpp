// kumiki/ops/cpu/detail/eigen.hpp: Eigen/Core for the CPU kernels, without GCC's false AVX-512 warnings.
#pragma once

// GCC 12 reports -Wmaybe-uninitialized / -Wuninitialized inside its own AVX-512 intrinsic headers
// (the `__Y` placeholder of _mm512_undefined_ps) once Eigen's packet code is inlined into a kernel
// under -march=native: hundreds of lines per build, none in kumiki's or Eigen's logic. The warnings
// are located in those headers, so they are silenced for the headers Eigen pulls in here and nowhere
// else: kumiki's own code keeps every warning.
#if defined(__GNUC__) && !defined(__clang__) && (defined(__x86_64__) || defined(__i386__))
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
#pragma GCC diagnostic ignored "-Wuninitialized"
#include <immintrin.h>  // first inclusion here, so that the intrinsic headers lie inside the pragma
#include <Eigen/Core>
#pragma GCC diagnostic pop
#else
#include <Eigen/Core>
#endif
