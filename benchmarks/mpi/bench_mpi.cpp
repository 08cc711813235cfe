// bench_mpi: the bandwidth of dist::MpiComm's collectives on host fp32 buffers, as the trainer calls
// them (non-blocking MPI polled under the communication timeout). Run under a launcher:
//   mpirun -np 2 build/release/bench/bench_mpi [--max-mib 256] > mpi.jsonl
// One JSON line per (collective, size) on rank 0's stdout, progress on stderr. Each size is timed
// `iters` times after a warm-up, every rank starting together (barrier); a time is the slowest rank's.
// Bandwidths follow nccl-tests: algbw = bytes / time; busbw = algbw x 2 (n - 1) / n for all-reduce and
// algbw x (n - 1) / n for reduce-scatter and all-gather (bytes: the whole buffer), the rate each link
// carries, comparable across rank counts.
#include <mpi.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <vector>

#include "kumiki/dist/mpi.hpp"

namespace k = kumiki;

int main(int argc, char** argv) {
  k::MpiSession session(&argc, &argv);
  k::dist::MpiComm comm(MPI_COMM_WORLD, 120.0);
  std::int64_t max_mib = 256;
  for (int i = 1; i + 1 < argc; i += 2)
    if (std::string(argv[i]) == "--max-mib") max_mib = std::atoll(argv[i + 1]);
  int const n = comm.size();
  std::vector<float> buf(static_cast<std::size_t>(max_mib) << 18);
  for (std::size_t i = 0; i < buf.size(); ++i) buf[i] = static_cast<float>(i % 7) * 0.25f;

  struct Op {
    char const* name;
    double bus_factor;
    void (*run)(k::dist::MpiComm&, float*, std::int64_t);
  };
  Op const ops[] = {
      {"all_reduce", 2.0 * (n - 1) / n, [](k::dist::MpiComm& c, float* d, std::int64_t e) { c.all_reduce_sum(d, e); }},
      {"reduce_scatter", 1.0 * (n - 1) / n,
       [](k::dist::MpiComm& c, float* d, std::int64_t e) { c.reduce_scatter_sum(d, c.even_bounds(e)); }},
      {"all_gather", 1.0 * (n - 1) / n,
       [](k::dist::MpiComm& c, float* d, std::int64_t e) { c.all_gather(d, c.even_bounds(e)); }},
  };
  for (Op const& op : ops) {
    for (std::int64_t bytes = 4096; bytes <= (max_mib << 20); bytes *= 4) {
      std::int64_t const elems = bytes / 4;
      int const iters = bytes <= (std::int64_t{1} << 20) ? 50 : bytes <= (std::int64_t{16} << 20) ? 10 : 4;
      op.run(comm, buf.data(), elems);  // warm-up
      std::vector<double> times;
      for (int it = 0; it < iters; ++it) {
        comm.barrier();
        double const t0 = MPI_Wtime();
        op.run(comm, buf.data(), elems);
        double mine = MPI_Wtime() - t0, slowest = 0;
        MPI_Allreduce(&mine, &slowest, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD);
        times.push_back(slowest);
      }
      std::sort(times.begin(), times.end());
      double const t = times[times.size() / 2];
      if (comm.rank() == 0) {
        double const algbw = static_cast<double>(bytes) / t / 1e9;
        std::printf("{\"op\":\"%s\",\"ranks\":%d,\"bytes\":%lld,\"iters\":%d,\"median_s\":%.6e,\"algbw_GBps\":%.4f,"
                    "\"busbw_GBps\":%.4f}\n",
                    op.name, n, static_cast<long long>(bytes), iters, t, algbw, algbw * op.bus_factor);
        std::fflush(stdout);
        std::fprintf(stderr, "bench_mpi: %s %lld bytes: %.3f ms, busbw %.2f GB/s\n", op.name,
                     static_cast<long long>(bytes), t * 1e3, algbw * op.bus_factor);
      }
    }
  }
  return 0;
}
