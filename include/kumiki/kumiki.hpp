// kumiki/kumiki.hpp: umbrella header for everything that builds with a plain C++ compiler and the
// dependencies of kumiki::kumiki (Eigen, OpenMP, Threads, nlohmann-json): the generic headers and the
// CPU backend. Headers that need more are included on their own: data/sentencepiece.hpp
// (libsentencepiece), dist/mpi.hpp (MPI); data/preprocess.hpp reads .gz input when zlib is present.
// CUDA translation units include kumiki/cuda.cuh instead (generic headers and the CUDA backend only).
#pragma once

#include "kumiki/cpu.hpp"
#include "kumiki/generic.hpp"
