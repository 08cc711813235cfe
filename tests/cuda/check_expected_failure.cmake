cmake_minimum_required(VERSION 3.25)
# Compiles SOURCE with NVCC (FLAGS: a ;-list) and requires the compile to FAIL, with every error
# nvcc reports being either
#   - a static_assert of a primary template whose backend specialization is missing
#     ("kumiki: no <Op> ... for this backend"), or
#   - a follow-on error of such an (empty) primary template: its message names a kumiki template
#     instantiated for Cuda ('class "kumiki::...::AdamW<kumiki::...::Cuda>" has no member "step"'), or it
#     is one of the errors of constructing an empty class from arguments ("too many initializer values",
#     "no suitable user-defined conversion", "no instance of constructor") while instantiating for Cuda.
# Any other error (a type error in generic code, Eigen, OpenMP, a syntax error) fails the test, and so
# does a successful compile (then the ops exist: make this a plain compile test). EXPECT (a ;-list)
# names ops whose static_assert must appear.
execute_process(COMMAND ${NVCC} ${FLAGS} -c ${SOURCE} -o ${OUT}
                RESULT_VARIABLE rc OUTPUT_VARIABLE out ERROR_VARIABLE err)
set(text "${out}\n${err}")
# nvcc prints an error as "file(line): error: message", the source line, a caret, then
# "detected during instantiation of ..." lines: join each error's lines into one block.
string(REGEX REPLACE "\n\n" "@@BLOCK@@" blocks_text "${text}")
if(rc EQUAL 0)
  message(FATAL_ERROR "${SOURCE} compiled: the CUDA specializations exist now; make this a plain compile test")
endif()
string(REPLACE ";" "," blocks_text "${blocks_text}")
string(REPLACE "\n" " " blocks_text "${blocks_text}")
string(REPLACE "@@BLOCK@@" ";" lines "${blocks_text}")
set(asserts 0)
set(followups 0)
set(bad "")
set(seen_ops "")
foreach(line IN LISTS lines)
  if(NOT line MATCHES "error")
    continue()
  endif()
  if(line MATCHES "Error limit reached|errors detected in the compilation|^nvcc error *: *'cudafe")
    continue()
  endif()
  if(line MATCHES "static assertion failed with \"kumiki: no ([A-Za-z ]+) for this backend")
    math(EXPR asserts "${asserts} + 1")
    list(APPEND seen_ops "${CMAKE_MATCH_1}")
  elseif(line MATCHES "error: [^\"]*\"kumiki::[A-Za-z_0-9:]*<kumiki::[A-Za-z_0-9:]*Cuda>\"")
    math(EXPR followups "${followups} + 1")
  elseif(line MATCHES "error: (too many initializer values|no suitable user-defined conversion|no instance of constructor)"
         AND line MATCHES "Backend=kumiki::[A-Za-z_0-9:]*Cuda")
    math(EXPR followups "${followups} + 1")
  else()
    string(APPEND bad "  ${line}\n")
  endif()
endforeach()
if(NOT bad STREQUAL "")
  message(FATAL_ERROR "errors that are not missing CUDA specializations:\n${bad}\nfull output:\n${text}")
endif()
list(REMOVE_DUPLICATES seen_ops)
foreach(op IN LISTS EXPECT)
  if(NOT "${op}" IN_LIST seen_ops)
    message(FATAL_ERROR "no static_assert for the missing '${op}'; seen: ${seen_ops}\nfull output:\n${text}")
  endif()
endforeach()
list(LENGTH seen_ops n_ops)
message(STATUS "expected failure: ${asserts} missing-specialization static_asserts over ${n_ops} templates "
               "(${seen_ops}), ${followups} follow-on errors, no other error")
