// kumiki/dist/mpi.hpp: KUMIKI_MPI_CHECK and an RAII MPI session (init/finalize) for data parallelism.
#pragma once

#include <mpi.h>

#include <string>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"

KUMIKI_NAMESPACE_BEGIN

namespace detail {
inline std::string mpi_error_string(int code) {
  char buf[MPI_MAX_ERROR_STRING];
  int len = 0;
  if (MPI_Error_string(code, buf, &len) != MPI_SUCCESS) return "unknown MPI error " + std::to_string(code);
  return std::string(buf, static_cast<std::size_t>(len));
}
}  // namespace detail

KUMIKI_NAMESPACE_END

/// Throws kumiki::Error naming the MPI call, file:line and MPI's own error string.
#define KUMIKI_MPI_CHECK(call)                                                                 \
  do {                                                                                         \
    int const kumiki_status_ = (call);                                                         \
    if (kumiki_status_ != MPI_SUCCESS) [[unlikely]]                                            \
      ::kumiki::detail::fail("MPI call failed: " #call, __FILE__, __LINE__,                   \
                             ::kumiki::detail::mpi_error_string(kumiki_status_));              \
  } while (0)

KUMIKI_NAMESPACE_BEGIN

/// Initializes MPI (errors returned, not fatal) and finalizes it on destruction. One per process.
class MpiSession {
 public:
  MpiSession(int* argc, char*** argv) {
    int initialized = 0;
    KUMIKI_MPI_CHECK(MPI_Initialized(&initialized));
    if (!initialized) {
      KUMIKI_MPI_CHECK(MPI_Init(argc, argv));
      owns_ = true;
    }
    KUMIKI_MPI_CHECK(MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN));
    KUMIKI_MPI_CHECK(MPI_Comm_rank(MPI_COMM_WORLD, &rank_));
    KUMIKI_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &size_));
  }
  MpiSession(MpiSession const&) = delete;
  MpiSession& operator=(MpiSession const&) = delete;
  ~MpiSession() {
    if (owns_) MPI_Finalize();
  }
  int rank() const { return rank_; }
  int size() const { return size_; }

 private:
  bool owns_ = false;
  int rank_ = 0;
  int size_ = 1;
};

KUMIKI_NAMESPACE_END
