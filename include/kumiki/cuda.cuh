// kumiki/cuda.cuh: umbrella header for the CUDA specializations (compile with nvcc).
#pragma once

#include "kumiki/kumiki.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
