# cmake -P script: builds examples/embed (my_trainer, a trainer of its own through the API, and
# my_kumiki, the kumiki command line over its own configuration) as an outside project against kumiki,
# MODE=install (the installed package, found with find_package where CUDA is hidden; both programs are
# built and run) or MODE=subdirectory (beside kumiki's sources; my_trainer built unoptimized, started).
#   -DMODE=install|subdirectory -DBUILD_DIR=<kumiki build> -DSOURCE_DIR=<kumiki sources> -DWORK_DIR=<scratch>
#   [-DPYTHON=<python> -DTEST_SCRIPT=<my_kumiki_test.py> -DKUMIKI=<kumiki binary>]
file(REMOVE_RECURSE ${WORK_DIR})
file(MAKE_DIRECTORY ${WORK_DIR})

function(run)
  execute_process(COMMAND ${ARGN} RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  message("${out}")
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "command failed (${rc}): ${ARGN}\n${out}\n${err}")
  endif()
endfunction()

# CUDA hidden: no nvcc on PATH and find_package(CUDAToolkit) disabled, as on a CPU-only machine.
string(REGEX REPLACE "[^:]*cuda[^:]*:?" "" path_without_cuda "$ENV{PATH}")
set(env ${CMAKE_COMMAND} -E env --unset=CUDACXX --unset=CUDA_PATH --unset=CUDAToolkit_ROOT "PATH=${path_without_cuda}")
set(hide_cuda -DCMAKE_DISABLE_FIND_PACKAGE_CUDAToolkit=ON -DKUMIKI_CUDA=OFF)

if(MODE STREQUAL "install")
  set(prefix ${WORK_DIR}/prefix)
  run(${CMAKE_COMMAND} --install ${BUILD_DIR} --prefix ${prefix})
  # No installed CMake file names a path of the machine kumiki was built on.
  file(GLOB cmake_files ${prefix}/share/cmake/kumiki/*.cmake)
  foreach(f IN LISTS cmake_files)
    file(READ ${f} text)
    foreach(p /usr/local/cuda ${BUILD_DIR} ${SOURCE_DIR} libnccl)
      string(FIND "${text}" "${p}" at)
      if(NOT at EQUAL -1)
        message(FATAL_ERROR "installed file ${f} names '${p}'")
      endif()
    endforeach()
  endforeach()
  # The documentation and the example are installed.
  foreach(f doc/kumiki/README.md doc/kumiki/api.md doc/kumiki/recipes.md doc/kumiki/examples/embed/my_kumiki.cpp)
    if(NOT EXISTS ${prefix}/share/${f})
      message(FATAL_ERROR "install did not produce share/${f}")
    endif()
  endforeach()
  # The example as a user has it: the installed copy, built against the installed package.
  set(source ${prefix}/share/doc/kumiki/examples/embed)
  # Release at -O1: the programs run a few steps here, and CI's time is better spent elsewhere than -O3.
  run(${env} ${CMAKE_COMMAND} -S ${source} -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=Release
      -DCMAKE_CXX_FLAGS_RELEASE=-O1 -DCMAKE_PREFIX_PATH=${prefix} ${hide_cuda})
  # Asking for the cuda component there fails, naming it.
  file(WRITE ${WORK_DIR}/wants_cuda/CMakeLists.txt
       "cmake_minimum_required(VERSION 3.25)\nproject(wants_cuda LANGUAGES CXX)\nfind_package(kumiki CONFIG REQUIRED COMPONENTS cuda)\n")
  execute_process(COMMAND ${env} ${CMAKE_COMMAND} -S ${WORK_DIR}/wants_cuda -B ${WORK_DIR}/wants_cuda/build
                          -DCMAKE_PREFIX_PATH=${prefix} ${hide_cuda}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  if(rc EQUAL 0 OR NOT "${out}${err}" MATCHES "kumiki_cuda_FOUND|cuda")
    message(FATAL_ERROR "find_package(kumiki COMPONENTS cuda) without CUDA did not fail naming the component:\n${out}${err}")
  endif()
  message("find_package(kumiki COMPONENTS cuda) without CUDA fails, naming the component")
else()
  # Unoptimized: this build checks the subproject route; the installed one is the one that runs.
  run(${env} ${CMAKE_COMMAND} -S ${SOURCE_DIR}/examples/embed -B ${WORK_DIR}/build -DCMAKE_BUILD_TYPE=
      -DKUMIKI_SOURCE_DIR=${SOURCE_DIR} ${hide_cuda})
endif()
if(MODE STREQUAL "install")
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build --parallel 2)
  run(${WORK_DIR}/build/my_kumiki --version)
  run(${WORK_DIR}/build/my_kumiki info)
  run(${WORK_DIR}/build/my_trainer ${WORK_DIR}/my_trainer)
else()
  # The API program only (my_kumiki is the same headers through kumiki::cli; the install route builds it).
  run(${CMAKE_COMMAND} --build ${WORK_DIR}/build --target my_trainer)
  execute_process(COMMAND ${WORK_DIR}/build/my_trainer RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 2 OR NOT err MATCHES "usage: my_trainer WORK_DIR")
    message(FATAL_ERROR "my_trainer without arguments: exit ${rc}, '${err}' (expected the usage line, exit 2)")
  endif()
endif()
if(TEST_SCRIPT)
  run(${PYTHON} ${TEST_SCRIPT} ${WORK_DIR}/build/my_kumiki ${KUMIKI} ${WORK_DIR}/test)
endif()
