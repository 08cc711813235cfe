// dist.nccl_world1: dist::NcclComm on one GPU as a world of one rank (ncclGetUniqueId, rank 0 of 1),
// every collective through NCCL for real: reduce_gradients (whole, and in buckets started during a
// backward), reduce_scatter_sum (whole, and with ZeRO-1's buckets reduced to their owner first) /
// all_gather over bounds {0, n}, broadcast and all_reduce_sum leave their values unchanged, gather
// copies the part into its place, barrier returns, a moved communicator still works, an aborted one
// does nothing, and bad bounds throw. Prints one JSON line of what it checked; exits 1 on a failure
// and 77 (CTest: skipped) with the reason when no GPU is visible. Several ranks need several GPUs;
// this is what one GPU can check.
#include <chrono>
#include <cstdio>
#include <cstring>
#include <exception>
#include <string>
#include <vector>

#include "kumiki/dist/nccl.cuh"

namespace {

using kumiki::Cpu;
using kumiki::Cuda;

int failures = 0;
std::string checks;  // the JSON object's members, "name": true|false

void expect(bool ok, char const* name) {
  checks += (checks.empty() ? "\"" : ", \"") + std::string(name) + "\": " + (ok ? "true" : "false");
  if (!ok) {
    ++failures;
    std::fprintf(stderr, "FAIL: %s\n", name);
  }
}

std::vector<float> to_host(void const* device, std::size_t n) {
  std::vector<float> h(n);
  kumiki::Copy<Cpu, Cuda>::bytes(h.data(), device, n * sizeof(float));
  return h;
}

bool same_bits(std::vector<float> const& a, std::vector<float> const& b) {
  return a.size() == b.size() && std::memcmp(a.data(), b.data(), a.size() * sizeof(float)) == 0;
}

}  // namespace

int main() {
  if (kumiki::cuda_device_count() == 0) {
    std::printf("SKIPPED: no CUDA GPU visible on this machine; dist.nccl_world1 needs one\n");
    return 77;
  }
  try {
    auto const start = std::chrono::steady_clock::now();
    kumiki::dist::NcclComm const alone;  // one process: no NCCL call
    expect(alone.rank() == 0 && alone.size() == 1 && alone.all_reduce_sum(2.5) == 2.5, "default_is_one_process");

    ncclUniqueId id{};
    KUMIKI_NCCL_CHECK(ncclGetUniqueId(&id));
    kumiki::dist::NcclComm comm(0, 1, id, 0, 60.0);
    expect(comm.rank() == 0 && comm.size() == 1 && comm.device() == 0, "rank_0_of_1");
    kumiki::ops::Ctx<Cuda> ctx;

    // Two tensors with padding between them (15 floats padded to 256 bytes), every float set, padding too.
    kumiki::ArenaLayout layout;
    layout.add("w", kumiki::DType::f32, {3, 5});
    layout.add("b", kumiki::DType::f32, {7});
    kumiki::Arena<Cuda> grads(layout);
    std::size_t const n = grads.total_bytes() / sizeof(float);
    std::vector<float> values(n);
    for (std::size_t i = 0; i < n; ++i) values[i] = 0.37f * static_cast<float>(i) - 3.1f;
    kumiki::Copy<Cuda, Cpu>::bytes(grads.data(), values.data(), n * sizeof(float));

    comm.reduce_gradients(ctx, grads);
    expect(same_bits(to_host(grads.data(), n), values), "reduce_gradients_unchanged");
    // Overlapped, as the trainer's last backward drives it: "b" finished first, then everything; with
    // 4-byte buckets each call starts one on the gradient stream.
    comm.set_bucket_bytes(4);
    comm.gradients_ready(ctx, grads, grads.layout().entries()[1].offset);
    comm.gradients_ready(ctx, grads, 0);
    comm.reduce_gradients(ctx, grads);
    expect(comm.overlapped_buckets() == 2, "overlapped_two_buckets");
    expect(same_bits(to_host(grads.data(), n), values), "overlapped_reduce_gradients_unchanged");

    auto* data = reinterpret_cast<float*>(grads.data());
    std::int64_t const bounds[] = {0, static_cast<std::int64_t>(n)};
    comm.reduce_scatter_sum(ctx, data, bounds);
    expect(same_bits(to_host(data, n), values), "reduce_scatter_sum_unchanged");
    // ZeRO-1 overlapped, as the trainer drives it: owners set, "b" reduced to its owner during the
    // backward, the rest by reduce_scatter_sum on the gradient stream.
    comm.set_owners(bounds);
    comm.gradients_ready(ctx, grads, grads.layout().entries()[1].offset);
    comm.reduce_scatter_sum(ctx, data, bounds);
    expect(comm.overlapped_buckets() == 1, "zero_overlapped_one_bucket");
    expect(same_bits(to_host(data, n), values), "zero_overlapped_reduce_scatter_unchanged");
    comm.set_owners({});
    comm.all_gather(ctx, data, bounds);
    expect(same_bits(to_host(data, n), values), "all_gather_unchanged");
    {  // the checkpoint's gather: rank 0's part from another buffer into its place
      kumiki::Buffer<Cuda> whole(n * sizeof(float));
      comm.gather(ctx, data, reinterpret_cast<float*>(whole.data()), bounds, 0);
      expect(same_bits(to_host(whole.data(), n), values), "gather_copies_the_part");
    }
    std::int64_t const weight_bounds[] = {0, static_cast<std::int64_t>(2 * n)};  // the same bytes as 2n bf16 weights
    comm.all_gather(ctx, reinterpret_cast<kumiki::bf16*>(data), weight_bounds);
    expect(same_bits(to_host(data, n), values), "all_gather_bf16_unchanged");
    comm.broadcast(ctx, data, static_cast<std::int64_t>(n), 0);
    expect(same_bits(to_host(data, n), values), "broadcast_unchanged");

    expect(comm.all_reduce_sum(2.5) == 2.5 && comm.all_reduce_sum(-1e300) == -1e300, "all_reduce_sum_unchanged");
    comm.barrier();
    expect(true, "barrier_returns");

    bool threw = false;
    try {
      std::int64_t const bad[] = {0, 4, 2};  // three bounds for one rank
      comm.all_gather(ctx, data, bad);
    } catch (kumiki::Error const&) {
      threw = true;
    }
    expect(threw, "bad_bounds_throw");

    kumiki::dist::NcclComm moved = std::move(comm);
    expect(comm.size() == 1 && moved.size() == 1 && moved.all_reduce_sum(1.25) == 1.25, "moved_communicator_works");
    moved.barrier();
    moved.abort();
    expect(moved.all_reduce_sum(3.0) == 3.0, "aborted_communicator_does_nothing");

    int version = 0;
    KUMIKI_NCCL_CHECK(ncclGetVersion(&version));
    cudaDeviceProp prop{};
    KUMIKI_CUDA_CHECK(cudaGetDeviceProperties(&prop, 0));
    double const seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
    std::printf("{\"test\": \"dist.nccl_world1\", \"nccl\": %d, \"gpu\": \"%s\", \"floats\": %zu, \"seconds\": %.3f, "
                "\"checks\": {%s}, \"failures\": %d}\n",
                version, prop.name, n, seconds, checks.c_str(), failures);
  } catch (std::exception const& e) {
    std::fprintf(stderr, "nccl_check: error: %s\n", e.what());
    return 1;
  }
  return failures == 0 ? 0 : 1;
}
