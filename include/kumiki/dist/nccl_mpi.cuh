// kumiki/dist/nccl_mpi.cuh: an NcclComm over the ranks of an MPI communicator (mpirun / srun --mpi
// launches): rank 0's NCCL unique id goes out by MPI_Bcast, and each rank takes the GPU of its rank
// on its node. Separate from nccl.cuh so that a torchrun-style program needs no MPI.
#pragma once

#include <mpi.h>

#include <nccl.h>

#include "kumiki/config.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/dist/mpi.hpp"
#include "kumiki/dist/nccl.cuh"

KUMIKI_NAMESPACE_BEGIN
namespace dist {

/// The NcclComm spanning the ranks of `comm` (MPI_COMM_WORLD under a launcher), rank for rank. The
/// device is the rank's place among the ranks of its node (MPI_Comm_split_type with
/// MPI_COMM_TYPE_SHARED), so a node's ranks take GPUs 0, 1, ... in rank order. Collective over `comm`.
///
/// First a barrier with the timeout (MpiComm's, MPI_Abort after `timeout_s`): a rank that never
/// arrives ends the job instead of hanging it. The split and the id's broadcast that follow are
/// blocking MPI calls, made once every rank is known to be there; NcclComm's own creation waits at
/// most `timeout_s` too.
inline NcclComm nccl_over_mpi(MPI_Comm comm, double timeout_s = 600.0) {
  MpiComm const mpi(comm, timeout_s);
  mpi.barrier();
  MPI_Comm node = MPI_COMM_NULL;
  KUMIKI_MPI_CHECK(MPI_Comm_split_type(comm, MPI_COMM_TYPE_SHARED, mpi.rank(), MPI_INFO_NULL, &node));
  int local_rank = 0;
  int const got = MPI_Comm_rank(node, &local_rank);
  MPI_Comm_free(&node);
  KUMIKI_MPI_CHECK(got);
  NcclComm::select_device(mpi.rank(), mpi.size(), local_rank);  // before NCCL touches CUDA on rank 0
  ncclUniqueId id{};
  if (mpi.rank() == 0) KUMIKI_NCCL_CHECK(ncclGetUniqueId(&id));
  KUMIKI_MPI_CHECK(MPI_Bcast(&id, static_cast<int>(sizeof id), MPI_BYTE, 0, comm));
  return NcclComm(mpi.rank(), mpi.size(), id, local_rank, timeout_s);
}

}  // namespace dist
KUMIKI_NAMESPACE_END
