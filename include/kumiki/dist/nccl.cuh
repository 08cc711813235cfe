// kumiki/dist/nccl.cuh: KUMIKI_NCCL_CHECK, naming the NCCL call, file:line and NCCL's error string.
#pragma once

#include <nccl.h>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

#define KUMIKI_NCCL_CHECK(call)                                                          \
  do {                                                                                   \
    ncclResult_t const kumiki_status_ = (call);                                          \
    if (kumiki_status_ != ncclSuccess) [[unlikely]]                                      \
      ::kumiki::detail::fail("NCCL call failed: " #call, __FILE__, __LINE__,            \
                             ncclGetErrorString(kumiki_status_));                        \
  } while (0)
