// mpi_zero_check: dist::MpiComm's ZeRO-1 collectives on the parts the trainer cuts, checked value by
// value on every rank. Run under a launcher: mpirun -np 2 mpi_zero_check (CTest: dist.mpi_zero).
//
// The model is a small bf16 weight arena with tensors of odd sizes (so the ranks' cuts fall inside
// tensors, at odd bf16 positions, and padding lies between tensors) and its fp32 twin (the gradients).
// The partition is the trainer's: dist::zero_partition of the fp32 arena, and for the bf16 weights
// dist::arena_bounds of the same element cuts. Each rank writes its own part only (the rest holds
// garbage), then:
//   - all_gather of the bf16 weights and of the fp32 twin: every element on every rank is its owner's;
//   - reduce_scatter_sum of the fp32 twin: this rank's part holds the sum over the ranks; the same
//     when a backward has handed buckets of it over first (set_owners, gradients_ready: reduced to
//     their owners as they come, the rest by reduce_scatter_sum);
//   - gather to rank 0 from each rank's place in its own arena (the checkpoint's in-place gather).
// Prints one line per check on rank 0 and exits 1 if any check failed on any rank.
#include <mpi.h>

#include <cstdint>
#include <cstdio>
#include <iterator>
#include <string>
#include <vector>

#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/dist/mpi.hpp"
#include "kumiki/dist/zero.hpp"
#include "kumiki/optim/adamw.hpp"

namespace k = kumiki;

namespace {

/// The value of flat element e as rank r writes it (exact in bf16 for small e: 8 significant bits).
float value(std::size_t e, int r) { return static_cast<float>(e % 200) + 0.5f * static_cast<float>(r + 1); }

/// f(tensor, element within it, flat element) for every element of `layout`.
template <class F>
void each_element(k::ArenaLayout const& layout, F&& f) {
  std::size_t flat = 0;
  for (std::size_t i = 0; i < layout.size(); ++i)
    for (std::size_t j = 0; j < layout[i].numel(); ++j) f(i, j, flat++);
}

/// The rank that owns flat element e.
int owner(k::dist::ZeroPartition const& p, std::size_t e) {
  int r = 0;
  while (e >= p.elements[static_cast<std::size_t>(r) + 1]) ++r;
  return r;
}

}  // namespace

int main(int argc, char** argv) {
  k::MpiSession session(&argc, &argv);
  k::dist::MpiComm comm(MPI_COMM_WORLD, 60.0);
  k::ops::Ctx<k::Cpu> ctx;
  int const me = comm.rank(), ranks = comm.size();

  k::ArenaLayout weights;
  int const sizes[][2] = {{3, 67}, {129, 1}, {5, 41}, {1, 2}, {0, 7}, {33, 19}, {301, 1}};
  for (std::size_t t = 0; t < std::size(sizes); ++t)
    weights.add("t" + std::to_string(t), k::DType::bf16, k::Shape{sizes[t][0], sizes[t][1]});
  k::ArenaLayout const floats_layout = k::optim::master_layout(weights);
  k::Arena<k::Cpu> w(weights), g(floats_layout);
  k::dist::ZeroPartition const part = k::dist::zero_partition(g.layout(), ranks);
  std::vector<std::int64_t> const wb = k::dist::arena_bounds(w.layout(), part.elements);

  int failures = 0;
  auto check = [&](bool ok, char const* what) {
    int bad = ok ? 0 : 1, any = 0;
    MPI_Allreduce(&bad, &any, 1, MPI_INT, MPI_SUM, MPI_COMM_WORLD);
    if (me == 0) std::printf("%s %s (%d of %d ranks failed)\n", any == 0 ? "PASS" : "FAIL", what, any, ranks);
    failures += any != 0;
  };

  // Garbage everywhere (padding included), then this rank's elements.
  auto fill_garbage = [&](k::Arena<k::Cpu>& a) {
    auto* bytes = reinterpret_cast<unsigned char*>(a.data());
    for (std::size_t b = 0; b < a.total_bytes(); ++b) bytes[b] = static_cast<unsigned char>(0xA5 ^ me);
  };
  fill_garbage(w);
  fill_garbage(g);
  bool cuts_inside = false;  // some cut falls inside a tensor, at an odd bf16 position
  for (int r = 1; r < ranks; ++r) cuts_inside = cuts_inside || wb[static_cast<std::size_t>(r)] % 2 != 0;
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
    if (owner(part, e) != me) return;
    w.get<k::bf16>(i).data()[j] = k::bf16(value(e, me));
    g.get<float>(i).data()[j] = value(e, me);
  });
  // The bf16 positions of the cuts hold the same elements as the float ones.
  bool same_cut = wb.front() == 0 && wb.back() == static_cast<std::int64_t>(w.total_bytes() / sizeof(k::bf16));
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
    auto const pos_w = static_cast<std::int64_t>(weights[i].offset / sizeof(k::bf16) + j);
    auto const pos_g = static_cast<std::int64_t>(floats_layout[i].offset / sizeof(float) + j);
    auto const r = static_cast<std::size_t>(owner(part, e));
    same_cut = same_cut && wb[r] <= pos_w && pos_w < wb[r + 1] && part.floats[r] <= pos_g && pos_g < part.floats[r + 1];
  });
  check(same_cut, "arena_bounds: every element's bf16 and fp32 positions lie in its owner's part");
  check(ranks == 1 || cuts_inside, "the layout puts a cut at an odd bf16 position (inside a tensor)");

  comm.all_gather(ctx, reinterpret_cast<k::bf16*>(w.data()), wb);
  comm.all_gather(ctx, reinterpret_cast<float*>(g.data()), part.floats);
  bool gathered_w = true, gathered_g = true;
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
    gathered_w = gathered_w && w.get<k::bf16>(i).data()[j].bits == k::bf16(value(e, owner(part, e))).bits;
    gathered_g = gathered_g && g.get<float>(i).data()[j] == value(e, owner(part, e));
  });
  check(gathered_w, "all_gather of bf16 weights: every element is its owner's");
  check(gathered_g, "all_gather of fp32: every element is its owner's");

  // Every element now holds its owner's value on every rank: the sum is ranks x that, in the own part.
  comm.reduce_scatter_sum(ctx, reinterpret_cast<float*>(g.data()), part.floats);
  bool summed = true;
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
    if (owner(part, e) == me)
      summed = summed && g.get<float>(i).data()[j] == static_cast<float>(ranks) * value(e, me);
  });
  check(summed, "reduce_scatter_sum: this rank's part holds the sum over the ranks");

  // Overlapped: every rank writes its values everywhere, then reports the arena finished from the end
  // down in 7 steps (buckets of 1 KiB: some start early, the rest at the reduce-scatter).
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) { g.get<float>(i).data()[j] = value(e, me); });
  comm.set_owners(part.floats);
  comm.set_bucket_bytes(1024);
  for (int k = 6; k >= 0; --k) comm.gradients_ready(ctx, g, g.total_bytes() / sizeof(float) * static_cast<std::size_t>(k) / 7 * sizeof(float));
  comm.reduce_scatter_sum(ctx, reinterpret_cast<float*>(g.data()), part.floats);
  float rank_sum = 0;
  for (int r = 0; r < ranks; ++r) rank_sum += 0.5f * static_cast<float>(r + 1);
  bool owned = comm.overlapped_buckets() > 0 || ranks == 1;
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
    if (owner(part, e) == me)
      owned = owned && g.get<float>(i).data()[j] == static_cast<float>(ranks) * static_cast<float>(e % 200) + rank_sum;
  });
  check(owned, "buckets reduced to their owners during a backward, the rest by reduce_scatter_sum: the sums");

  // The checkpoint's gather: each rank's part from its place in its own arena, into rank 0's in place.
  each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
    if (owner(part, e) == me) g.get<float>(i).data()[j] = value(e, me) + 1000.0f;
  });
  auto* const whole = reinterpret_cast<float*>(g.data());
  comm.gather(ctx, whole + part.floats[static_cast<std::size_t>(me)], me == 0 ? whole : nullptr, part.floats, 0);
  bool at_root = true;
  if (me == 0)
    each_element(weights, [&](std::size_t i, std::size_t j, std::size_t e) {
      at_root = at_root && g.get<float>(i).data()[j] == value(e, owner(part, e)) + 1000.0f;
    });
  check(at_root, "gather in place to rank 0: every element is its owner's");
  return failures == 0 ? 0 : 1;
}
