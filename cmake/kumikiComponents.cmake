# kumiki's optional components, each an INTERFACE target defined where its dependencies are found on
# the machine that uses kumiki (never where kumiki was installed from), so that no installed file names
# a library path and a CPU-only machine uses the package without CUDA:
#   kumiki::cli            CLI11: the command line as a library (kumiki/cli/, a `main` of one's own),
#                          with sentencepiece and zlib where found
#   kumiki::mpi            MPI: data parallelism on CPUs (kumiki/dist/mpi.hpp)
#   kumiki::sentencepiece  the SentencePiece library: link it where kumiki/data/sentencepiece.hpp is used
#                          and sentencepiece_processor.h is present (the header uses it then)
#   kumiki::zlib           zlib: the same for kumiki/data/preprocess.hpp and zlib.h (gzip input)
#   kumiki::cuda           the CUDA toolkit, cuBLAS/cuBLASLt and NCCL (kumiki/cuda.cuh; .cu files)
# Each sets kumiki_<component>_FOUND; find_package(kumiki COMPONENTS ...) requires the ones named.
# Included by kumikiConfig.cmake and by kumiki's own CMakeLists.txt (there, after kumiki::cuda is made
# by the build itself, so the cuda part is skipped).

function(_kumiki_component name)  # _kumiki_component(NAME LINK...)
  if(NOT TARGET kumiki::${name})
    add_library(kumiki::${name} INTERFACE IMPORTED GLOBAL)
    set_target_properties(kumiki::${name} PROPERTIES INTERFACE_LINK_LIBRARIES "kumiki::kumiki;${ARGN}")
  endif()
  set(kumiki_${name}_FOUND TRUE PARENT_SCOPE)
endfunction()

foreach(c cli mpi sentencepiece zlib cuda)
  set(kumiki_${c}_FOUND FALSE)
endforeach()

find_package(MPI QUIET COMPONENTS CXX)
if(MPI_CXX_FOUND)
  _kumiki_component(mpi MPI::MPI_CXX)
endif()

find_package(PkgConfig QUIET)
if(PkgConfig_FOUND)
  pkg_check_modules(KUMIKI_SENTENCEPIECE QUIET IMPORTED_TARGET GLOBAL sentencepiece)
  if(KUMIKI_SENTENCEPIECE_FOUND)
    _kumiki_component(sentencepiece PkgConfig::KUMIKI_SENTENCEPIECE)
  endif()
endif()

find_package(ZLIB QUIET)
if(ZLIB_FOUND)
  _kumiki_component(zlib ZLIB::ZLIB)
endif()

# The command line reads SentencePiece models and gzip input where this machine has them (the headers
# use them when theirs are present: data/sentencepiece.hpp, data/preprocess.hpp).
find_package(CLI11 QUIET)
if(CLI11_FOUND)
  set(_kumiki_cli_links CLI11::CLI11)
  foreach(c sentencepiece zlib)
    if(kumiki_${c}_FOUND)
      list(APPEND _kumiki_cli_links kumiki::${c})
    endif()
  endforeach()
  _kumiki_component(cli ${_kumiki_cli_links})
endif()

if(TARGET kumiki::cuda)
  set(kumiki_cuda_FOUND TRUE)
else()
  find_package(CUDAToolkit QUIET)
  if(CUDAToolkit_FOUND)
    find_library(KUMIKI_NCCL_LIBRARY nccl HINTS ${CUDAToolkit_LIBRARY_DIR})
    find_path(KUMIKI_NCCL_INCLUDE nccl.h HINTS ${CUDAToolkit_INCLUDE_DIRS})
    if(KUMIKI_NCCL_LIBRARY AND KUMIKI_NCCL_INCLUDE)
      _kumiki_component(cuda CUDA::cudart CUDA::cublas CUDA::cublasLt ${KUMIKI_NCCL_LIBRARY})
      set_target_properties(kumiki::cuda PROPERTIES
        INTERFACE_INCLUDE_DIRECTORIES "${KUMIKI_NCCL_INCLUDE}"
        # CMake 3.25 does not know CUDA 13's language levels, so nvcc is asked for C++20 directly.
        INTERFACE_COMPILE_OPTIONS "$<$<COMPILE_LANGUAGE:CUDA>:-std=c++20;--expt-relaxed-constexpr>")
    endif()
  endif()
endif()
