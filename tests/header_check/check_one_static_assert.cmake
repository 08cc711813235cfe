cmake_minimum_required(VERSION 3.25)
# Compiles SOURCE with CXX (FLAGS: a ;-list) -fsyntax-only once per probe:
#   - KUMIKI_PROBE=0, KUMIKI_PROBE_BACKEND=Cpu: the control, which must compile without an error;
#   - KUMIKI_PROBE=1..N (N = PROBES), KUMIKI_PROBE_BACKEND=Cuda: each must fail with exactly one
#     error, a static assertion whose message contains EXPECT.
function(compile probe backend)
  execute_process(COMMAND ${CXX} ${FLAGS} -fsyntax-only -DKUMIKI_PROBE=${probe} -DKUMIKI_PROBE_BACKEND=${backend}
                          ${SOURCE}
                  RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
  set(rc "${rc}" PARENT_SCOPE)
  set(text "${out}${err}" PARENT_SCOPE)
endfunction()

compile(0 Cpu)
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "the control (every probe on the Cpu backend) does not compile:\n${text}")
endif()
foreach(probe RANGE 1 ${PROBES})
  compile(${probe} Cuda)
  string(REGEX MATCHALL "[^\n]*: error: [^\n]*" errors "${text}")
  list(LENGTH errors n)
  if(rc EQUAL 0 OR NOT n EQUAL 1)
    message(FATAL_ERROR "probe ${probe} on Cuda: ${n} errors (exit ${rc}), expected exactly one:\n${text}")
  endif()
  if(NOT errors MATCHES "static assertion failed: [^\n]*${EXPECT}")
    message(FATAL_ERROR "probe ${probe} on Cuda: the one error is not the static_assert naming '${EXPECT}':\n${text}")
  endif()
  string(REGEX REPLACE "^.*static assertion failed: " "" message "${errors}")
  message(STATUS "probe ${probe} on Cuda: one error: ${message}")
endforeach()
