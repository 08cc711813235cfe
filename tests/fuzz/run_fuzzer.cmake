# Runs one fuzz target for CTest (tests/fuzz/CMakeLists.txt):
#   cmake -DFUZZER=<exe> -DMODE=replay|fuzz -DCORPUS=<committed corpus dir> -DWORK=<scratch dir>
#         [-DDICT=<dictionary>] [-DSECONDS=4] -P run_fuzzer.cmake
# replay: every committed corpus file is executed once (the regression inputs included).
# fuzz:   SECONDS of coverage-guided fuzzing starting from the committed corpus; new inputs go to
#         WORK/corpus, never into the committed corpus; a crash is written to WORK/crash-*.
if(NOT SECONDS)
  set(SECONDS 4)
endif()
set(inputs)
if(IS_DIRECTORY "${CORPUS}")
  file(GLOB inputs LIST_DIRECTORIES false "${CORPUS}/*")
  list(SORT inputs)
endif()

if(MODE STREQUAL "replay")
  if(NOT inputs)
    message(STATUS "no committed corpus in ${CORPUS}: nothing to replay")
    return()
  endif()
  execute_process(COMMAND "${FUZZER}" ${inputs} RESULT_VARIABLE rc)
else()
  file(REMOVE_RECURSE "${WORK}")
  file(MAKE_DIRECTORY "${WORK}/corpus")
  set(args -max_total_time=${SECONDS} -timeout=10 -rss_limit_mb=2048 -print_final_stats=1 "-artifact_prefix=${WORK}/")
  if(DICT)
    list(APPEND args "-dict=${DICT}")
  endif()
  set(dirs "${WORK}/corpus")
  if(IS_DIRECTORY "${CORPUS}")
    list(APPEND dirs "${CORPUS}")
  endif()
  execute_process(COMMAND "${FUZZER}" ${args} ${dirs} RESULT_VARIABLE rc)
endif()
if(NOT rc EQUAL 0)
  message(FATAL_ERROR "${FUZZER} (${MODE}) failed: ${rc}. A reproducer is in ${WORK}/ (fuzz) or among the "
                      "corpus files above (replay); see docs/fuzzing.md")
endif()
