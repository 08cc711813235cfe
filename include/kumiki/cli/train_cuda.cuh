// kumiki/cli/train_cuda.cuh: the CUDA half of `kumiki train` (cli/train.hpp): the visible GPU and
// `--device cuda` training, in bf16 with the fp32 master weights kept as halves (optim/master.hpp),
// for the configurations of `CudaConfigs`. A program built with CUDA compiles it in one .cu file and
// registers it before main runs:
//   static bool const registered = kumiki::cli::register_cuda_training<MyConfigs, MyCudaConfigs>();
// (examples/kumiki/cmd_train_cuda.cu). Only dense configurations: the MoE layers have no CUDA ops yet.
// Launched on several GPUs (mpirun / srun, or torchrun-style variables) the ranks train data-parallel
// over NCCL (dist::NcclComm).
#pragma once

#include <cstdio>
#include <optional>
#include <string>
#include <utility>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/cuda.cuh"
#include "kumiki/cli/train_options.hpp"
#include "kumiki/dist/nccl.cuh"
#include "kumiki/train/trainer.hpp"

#if __has_include(<mpi.h>)  // the program links kumiki::mpi: GPU ranks under mpirun / srun too
#include "kumiki/dist/nccl_mpi.cuh"
#define KUMIKI_CLI_CUDA_MPI 1
#else
#define KUMIKI_CLI_CUDA_MPI 0
#endif

KUMIKI_NAMESPACE_BEGIN
namespace cli {
namespace detail::cmd_train {

/// The GPU the run would use (device 0, or what CUDA_VISIBLE_DEVICES leaves first), or why none is usable.
/// It creates no CUDA context: each rank of a multi-GPU launch probes before it picks its own GPU, and a
/// context on device 0 would cost every rank's memory there (or fail, where GPUs are exclusive).
inline std::optional<GpuInfo> probe_cuda(std::string& why) {
  int count = 0;
  cudaError_t const e = cudaGetDeviceCount(&count);
  if (e != cudaSuccess || count == 0) {
    why = e != cudaSuccess ? std::string(cudaGetErrorName(e)) + ": " + cudaGetErrorString(e) : "no device found";
    (void)cudaGetLastError();  // clear the error for whatever runs next
    return std::nullopt;
  }
  cudaDeviceProp prop{};
  KUMIKI_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
  GpuInfo g;
  g.name = prop.name;
  g.memory_bytes = static_cast<double>(prop.totalGlobalMem);
  return g;
}

/// The GPU run's communicator, made before the model (it picks the rank's GPU): the ranks of
/// MPI_COMM_WORLD under an MPI launcher (MPI started by cli/train.hpp; each rank takes the GPU of its
/// rank on its node), those of a torchrun-style launch (RANK, WORLD_SIZE, LOCAL_RANK, MASTER_ADDR,
/// MASTER_PORT: NCCL's id over the TCP rendezvous), else one process; as cli/train.hpp's run() counts
/// them (an MPI world of one rank inside a torchrun-style launch takes the launch's ranks). Gradients go
/// in buckets of --grad-bucket-mb, the last micro-batch's overlapped with its backward.
inline dist::NcclComm gpu_communicator(TrainArgs const& a) {
  dist::NcclComm comm;
  int mpi_size = 1;
#if KUMIKI_CLI_CUDA_MPI
  if (dist::launched_by_mpi()) KUMIKI_MPI_CHECK(MPI_Comm_size(MPI_COMM_WORLD, &mpi_size));
  if (mpi_size > 1) comm = dist::nccl_over_mpi(MPI_COMM_WORLD, a.comm_timeout);
#endif
  if (mpi_size == 1 && dist::launched_by_env() && dist::read_env_launch().world_size > 1) {
    comm = dist::NcclComm::from_env(a.comm_timeout);
  }
  comm.set_bucket_bytes(bucket_bytes(a));
  return comm;
}

/// Trains `a`'s recipe (read and checked by cli/train.hpp) on the GPU: its model must be one of
/// `CudaConfigs` and dense.
template <class Configs, class CudaConfigs>
int train_cuda(TrainArgs const& a, train::Recipe recipe) {
  KUMIKI_REQUIRE(CudaConfigs::contains(recipe.model), "--device cuda: model '", recipe.model,
                 "' is not built for the GPU in this program (it trains ", CudaConfigs::names_text(),
                 " there); use --device cpu");
  // MFU against Hopper's dense bf16 peak unless the recipe names its own.
  if (recipe.peak_flops == 0) recipe.peak_flops = train::h200_sxm().peak_flops;
  dist::NcclComm comm = gpu_communicator(a);
  train::TrainerOptions const opt = trainer_options<Configs>(a, recipe, comm.rank());
  using Mixed = Precision<bf16, bf16, float, float, float>;
  auto const outcome = CudaConfigs::dispatch(recipe.model, [&](auto tag) {
    constexpr auto cfg = decltype(tag)::config;
    static_assert(!cfg.is_moe(), "kumiki: the CUDA trainer takes dense configurations only (no CUDA MoE ops yet)");
    train::Trainer<cfg, Cuda, dist::NcclComm, Mixed> trainer(recipe, a.out, opt, std::move(comm));
    return trainer.run();
  });
  return exit_code(outcome);
}

}  // namespace detail::cmd_train

/// Makes `kumiki train --device cuda` train the dense configurations `CudaConfigs` (a subset of the
/// program's `Configs`) on the GPU; returns true (for a static initializer).
template <class Configs, class CudaConfigs>
bool register_cuda_training() {
  auto& hooks = detail::cmd_train::cuda_training();
  hooks.probe = &detail::cmd_train::probe_cuda;
  hooks.train = &detail::cmd_train::train_cuda<Configs, CudaConfigs>;
  return true;
}

}  // namespace cli
KUMIKI_NAMESPACE_END
