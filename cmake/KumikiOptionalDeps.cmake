# Optional dependencies for kumiki's own programs and tests. Each becomes an INTERFACE target
# kumiki_dep_<name> (empty when the package is missing) and a KUMIKI_HAS_<NAME> variable.
find_package(PkgConfig QUIET)

find_package(MPI QUIET COMPONENTS CXX)
set(KUMIKI_HAS_MPI ${MPI_CXX_FOUND})

find_package(CLI11 QUIET)
set(KUMIKI_HAS_CLI11 ${CLI11_FOUND})

set(KUMIKI_HAS_SENTENCEPIECE OFF)
if(PkgConfig_FOUND)
  pkg_check_modules(SENTENCEPIECE QUIET IMPORTED_TARGET sentencepiece)
  if(SENTENCEPIECE_FOUND)
    set(KUMIKI_HAS_SENTENCEPIECE ON)
  endif()
endif()

find_package(ZLIB QUIET)
set(KUMIKI_HAS_ZLIB ${ZLIB_FOUND})

find_package(Python3 QUIET COMPONENTS Interpreter)
# Debian's python3-torch lives in the system interpreter; prefer it over a pyenv shim on PATH.
if(EXISTS /usr/bin/python3)
  set(KUMIKI_PYTHON /usr/bin/python3 CACHE FILEPATH "Python with torch and numpy for parity tests")
else()
  set(KUMIKI_PYTHON ${Python3_EXECUTABLE} CACHE FILEPATH "Python with torch and numpy for parity tests")
endif()

# kumiki_all_deps: everything a kumiki header may need, for programs and header checks.
add_library(kumiki_all_deps INTERFACE)
target_link_libraries(kumiki_all_deps INTERFACE kumiki::kumiki)
if(KUMIKI_HAS_MPI)
  target_link_libraries(kumiki_all_deps INTERFACE MPI::MPI_CXX)
endif()
if(KUMIKI_HAS_SENTENCEPIECE)
  target_link_libraries(kumiki_all_deps INTERFACE PkgConfig::SENTENCEPIECE)
endif()
if(KUMIKI_HAS_ZLIB)
  target_link_libraries(kumiki_all_deps INTERFACE ZLIB::ZLIB)
endif()

# Warnings for kumiki's own programs, tests and benchmarks (C++ only): a clean build prints none, and
# CI (scripts/test with CI set) turns them into errors. Third-party headers come in as system headers;
# GCC's false AVX-512 warnings are silenced where Eigen is included (ops/cpu/detail/eigen.hpp).
option(KUMIKI_WERROR "Treat warnings in kumiki's own programs and tests as errors" OFF)
target_compile_options(kumiki_all_deps INTERFACE "$<$<COMPILE_LANGUAGE:CXX>:-Wall;-Wextra>")
if(KUMIKI_WERROR)
  target_compile_options(kumiki_all_deps INTERFACE "$<$<COMPILE_LANGUAGE:CXX>:-Werror>")
endif()

# kumiki's own programs, tests and benchmarks are tuned for the build machine (AVX-512 / FMA where
# present). The installed INTERFACE target carries no such flag: users choose their own.
option(KUMIKI_NATIVE "Compile kumiki's programs, tests and benchmarks with -march=native" ON)
if(KUMIKI_NATIVE)
  target_compile_options(kumiki_all_deps INTERFACE $<$<COMPILE_LANGUAGE:CXX>:-march=native>)
endif()

# CUDA programs, tests and benchmarks: host-compiler warnings (and nvcc's own) as for C++, errors with
# KUMIKI_WERROR; libraries linked only when used (NCCL is not needed where no collective is called).
function(kumiki_cuda_strict target)
  target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Xcompiler=-Wall,-Wextra>)
  if(KUMIKI_WERROR)
    target_compile_options(${target} PRIVATE $<$<COMPILE_LANGUAGE:CUDA>:-Werror=all-warnings -Xcompiler=-Werror>)
  endif()
  target_link_options(${target} PRIVATE -Wl,--as-needed)
endfunction()
