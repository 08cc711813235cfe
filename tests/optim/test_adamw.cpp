// AdamW: a two-step example computed by hand, Megatron's no-decay rule, parameter groups,
// thread-count independence, the bf16 master-weight path, state save / load and ZeRO-1 shards.
#include <catch2/catch.hpp>
#include <omp.h>

#include <cmath>
#include <cstring>
#include <filesystem>
#include <sstream>
#include <vector>

#include "cpu_ctx.hpp"
#include "kumiki/cpu.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/philox.hpp"
#include "kumiki/dist/zero.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/train/checkpoint.hpp"

using namespace kumiki;

using kumiki_test::ctx;  // tests/cpu_ctx.hpp
using optim::AdamW;
using optim::AdamWConfig;
using Catch::Matchers::Contains;

namespace {

ArenaLayout small_layout() {
  ArenaLayout L;
  L.add("layers.0.attn.q.weight", DType::f32, Shape{2, 2});  // matrix: decays
  L.add("layers.0.norm.weight", DType::f32, Shape{3});       // 1-D: no decay
  L.add("head.bias", DType::f32, Shape{1, 2});               // a bias by name: no decay
  return L;
}

void fill(Arena<Cpu>& a, float value) {
  for (std::size_t i = 0; i < a.layout().size(); ++i)
    for (float& x : a.get<float>(i)) x = value;
}

void fill_normal(Arena<Cpu>& a, std::uint64_t seed, float std) {
  for (std::size_t i = 0; i < a.layout().size(); ++i) {
    auto v = a.get<float>(i);
    philox_fill_normal(v.data(), static_cast<std::size_t>(v.numel()), {seed, i}, 0.0f, std);
  }
}

bool bitwise_equal(Arena<Cpu> const& a, Arena<Cpu> const& b) {
  return a.total_bytes() == b.total_bytes() && std::memcmp(a.data(), b.data(), a.total_bytes()) == 0;
}

// fp32 storage and fp32-rounded betas (0.9f = 0.89999998) put the moments ~2.4e-7 off the decimal values.
auto rel(double x) { return Approx(x).epsilon(1e-6); }

}  // namespace

TEST_CASE("AdamW: two steps computed by hand", "[optim]") {
  // lr 0.01, betas (0.9, 0.95), eps 1e-8, wd 0.1; p0 = 1, g1 = 0.5, g2 = -0.25 everywhere.
  ArenaLayout const L = small_layout();
  Arena<Cpu> p(L), g(L);
  fill(p, 1.0f);
  AdamW<Cpu> opt(L, AdamWConfig{0.9f, 0.95f, 1e-8f, 0.1f});
  CHECK(opt.hyper("layers.0.attn.q.weight").wd_mult == 1.0f);
  CHECK(opt.hyper("layers.0.norm.weight").wd_mult == 0.0f);
  CHECK(opt.hyper("head.bias").wd_mult == 0.0f);

  // Step 1: m = 0.1 * 0.5 = 0.05, v = 0.05 * 0.25 = 0.0125; m_hat = 0.05 / 0.1 = 0.5,
  // v_hat = 0.0125 / 0.05 = 0.25, sqrt 0.5: the Adam step is lr * 0.5 / (0.5 + 1e-8) = 0.01 (1 - 2e-8).
  // Decayed: p = 1 - 0.01 * 0.1 * 1 - 0.0099999998 = 0.9890000002; undecayed: 0.9900000002.
  fill(g, 0.5f);
  opt.step(ctx, p, g, 0.01f);
  CHECK(opt.step_count() == 1);
  CHECK(p.get<float>("layers.0.attn.q.weight")(1, 0) == rel(0.9890000002));
  CHECK(p.get<float>("layers.0.norm.weight")(2) == rel(0.9900000002));
  CHECK(p.get<float>("head.bias")(0, 1) == rel(0.9900000002));
  CHECK(opt.exp_avg().get<float>("layers.0.norm.weight")(0) == rel(0.05));
  CHECK(opt.exp_avg_sq().get<float>("layers.0.norm.weight")(0) == rel(0.0125));

  // Step 2: m = 0.9 * 0.05 - 0.1 * 0.25 = 0.02, v = 0.95 * 0.0125 + 0.05 * 0.0625 = 0.015;
  // m_hat = 0.02 / (1 - 0.81) = 2/19, v_hat = 0.015 / (1 - 0.9025) = 2/13.
  fill(g, -0.25f);
  opt.step(ctx, p, g, 0.01f);
  double const adam = 0.01 * (2.0 / 19.0) / (std::sqrt(2.0 / 13.0) + 1e-8);
  CHECK(opt.exp_avg().get<float>("layers.0.attn.q.weight")(0, 0) == rel(0.02));
  CHECK(opt.exp_avg_sq().get<float>("layers.0.attn.q.weight")(0, 0) == rel(0.015));
  CHECK(p.get<float>("layers.0.attn.q.weight")(0, 1) == rel(0.9890000002 * (1.0 - 0.001) - adam));
  CHECK(p.get<float>("layers.0.norm.weight")(1) == rel(0.9900000002 - adam));
  CHECK(p.get<float>("head.bias")(0, 0) == rel(0.9900000002 - adam));
}

TEST_CASE("AdamW: parameter groups scale lr and weight decay per tensor", "[optim]") {
  ArenaLayout L;
  L.add("embed.weight", DType::f32, Shape{5, 3});
  L.add("mlp.weight", DType::f32, Shape{3, 4});
  L.add("final_norm.weight", DType::f32, Shape{4});
  std::vector<optim::ParamGroup> groups{
      {"embedding", [](ArenaEntry const& e) { return e.name.starts_with("embed"); }, 0.5f, 2.0f},
      {"norms", [](ArenaEntry const& e) { return e.name.find("norm") != std::string::npos; }, 3.0f, 1.0f},
  };
  AdamW<Cpu> grouped(L, {}, groups);
  CHECK(grouped.hyper("embed.weight").lr_mult == 0.5f);
  CHECK(grouped.hyper("embed.weight").wd_mult == 2.0f);
  CHECK(grouped.hyper("mlp.weight").lr_mult == 1.0f);
  CHECK(grouped.hyper("final_norm.weight").lr_mult == 3.0f);
  CHECK(grouped.hyper("final_norm.weight").wd_mult == 0.0f);  // 1-D: Megatron's rule still applies

  // A tensor in a group with (lr x0.5, wd x2) moves exactly like the same tensor in an ungrouped
  // optimizer run at half the lr and twice the weight decay.
  Arena<Cpu> p1(L), p2(L), g(L);
  fill_normal(p1, 1, 1.0f);
  std::memcpy(p2.data(), p1.data(), p1.total_bytes());
  fill_normal(g, 2, 0.1f);
  AdamW<Cpu> plain(L, {});
  grouped.step(ctx, p1, g, 1e-2f, 0.1f);
  plain.step(ctx, p2, g, 0.5e-2f, 0.2f);
  auto a = p1.get<float>("embed.weight");
  auto b = p2.get<float>("embed.weight");
  for (std::int64_t k = 0; k < a.numel(); ++k) CHECK(a.data()[k] == Approx(b.data()[k]).epsilon(1e-6));
  // set_hyper overrides one tensor, bypassing the no-decay rule.
  grouped.set_hyper("final_norm.weight", {1.0f, 1.0f});
  CHECK(grouped.hyper("final_norm.weight").wd_mult == 1.0f);
}

TEST_CASE("AdamW: the fused pass does not depend on the thread count", "[optim]") {
  ArenaLayout L;
  for (int i = 0; i < 9; ++i) {  // odd sizes
    std::string name = std::to_string(i);
    name.insert(0, 1, 't');
    L.add(name, DType::f32, Shape{1 + 37 * i, 3 + i});
  }
  L.add("norm", DType::f32, Shape{1000});
  Arena<Cpu> p1(L), p2(L), g(L);
  fill_normal(p1, 3, 0.02f);
  std::memcpy(p2.data(), p1.data(), p1.total_bytes());
  AdamW<Cpu> o1(L), o2(L);
  int const saved = omp_get_max_threads();
  for (int s = 0; s < 3; ++s) {
    fill_normal(g, 10 + static_cast<std::uint64_t>(s), 1e-3f);
    omp_set_num_threads(1);
    o1.step(ctx, p1, g, 3e-4f);
    omp_set_num_threads(3);
    o2.step(ctx, p2, g, 3e-4f);
  }
  omp_set_num_threads(saved);
  CHECK(bitwise_equal(p1, p2));
  CHECK(bitwise_equal(o1.exp_avg(), o2.exp_avg()));
  CHECK(bitwise_equal(o1.exp_avg_sq(), o2.exp_avg_sq()));
  // Every element moved (none skipped by the per-thread split).
  Arena<Cpu> p0(L);
  fill_normal(p0, 3, 0.02f);
  for (std::size_t i = 0; i < L.size(); ++i) {
    auto a = p0.get<float>(i);
    auto b = p1.get<float>(i);
    for (std::int64_t k = 0; k < a.numel(); ++k) REQUIRE(a.data()[k] != b.data()[k]);
  }
}

TEST_CASE("AdamW: bf16 model with fp32 master weights", "[optim]") {
  ArenaLayout model;
  model.add("w", DType::bf16, Shape{17, 9});
  model.add("norm.weight", DType::bf16, Shape{9});
  ArenaLayout const master_layout = optim::master_layout(model);
  CHECK(master_layout.entry("w").dtype == DType::f32);
  CHECK(master_layout.entry("w").shape == Shape{17, 9});

  Arena<Cpu> bf(model), master(master_layout), grads(master_layout), reference(master_layout);
  {  // start from bf16 values, as a model loaded from a bf16 checkpoint would
    Arena<Cpu> tmp(master_layout);
    fill_normal(tmp, 5, 0.5f);
    optim::cast_to_model(tmp, bf);
  }
  optim::copy_to_master(bf, master);
  for (std::size_t i = 0; i < model.size(); ++i) {  // widening is exact
    auto b = bf.get<bf16>(i);
    auto m = master.get<float>(i);
    for (std::int64_t k = 0; k < b.numel(); ++k) REQUIRE(m.data()[k] == b.data()[k].to_float());
  }
  std::memcpy(reference.data(), master.data(), master.total_bytes());

  AdamW<Cpu> opt(master_layout), ref_opt(master_layout);
  for (int s = 0; s < 4; ++s) {
    fill_normal(grads, 20 + static_cast<std::uint64_t>(s), 0.01f);
    opt.step(ctx, master, grads, 1e-2f, 0.1f, &bf);
    ref_opt.step(ctx, reference, grads, 1e-2f);
  }
  // The master follows the plain fp32 update exactly; the model holds its RNE bf16 rounding.
  CHECK(bitwise_equal(master, reference));
  std::size_t moved = 0;
  for (std::size_t i = 0; i < model.size(); ++i) {
    auto b = bf.get<bf16>(i);
    auto m = master.get<float>(i);
    for (std::int64_t k = 0; k < b.numel(); ++k) {
      // Independent round-to-nearest-even: the nearer of the two bf16 neighbours, the even one on a tie.
      std::uint32_t u;
      float const x = m.data()[k];
      std::memcpy(&u, &x, 4);
      std::uint32_t const down = u & 0xffff0000u, up = down + 0x10000u;
      std::uint32_t const rest = u & 0xffffu;
      std::uint32_t const pick = rest < 0x8000u ? down : rest > 0x8000u ? up : ((down >> 16) & 1u) ? up : down;
      REQUIRE(b.data()[k].bits == static_cast<std::uint16_t>(pick >> 16));
      if (rest != 0) ++moved;
    }
  }
  CHECK(moved > 0);  // the master carries bits the bf16 model cannot hold
  // cast_to_model produces the same bf16 values as the fused path.
  Arena<Cpu> bf2(model);
  optim::cast_to_model(master, bf2);
  CHECK(bitwise_equal(bf, bf2));
}

TEST_CASE("AdamW: state saves and loads (the checkpoint format), and resuming continues bit for bit", "[optim]") {
  // One state format: the moments as exp_avg.* / exp_avg_sq.* tensors and the step count in a
  // checkpoint (train/checkpoint.hpp). Its error cases (a bad step_count, a missing or mis-shaped
  // moment, a corrupt file) are tests/train/test_checkpoint_input.cpp's.
  ArenaLayout const L = small_layout();
  Arena<Cpu> p(L), g(L);
  fill_normal(p, 7, 1.0f);
  AdamW<Cpu> a(L);
  for (int s = 0; s < 3; ++s) {
    fill_normal(g, 30 + static_cast<std::uint64_t>(s), 0.1f);
    a.step(ctx, p, g, 1e-3f);
  }
  std::filesystem::path const root = std::filesystem::temp_directory_path() / "kumiki-test-adamw-state";
  std::filesystem::remove_all(root);
  train::TrainState state;
  state.step = 3;
  std::filesystem::path const dir = train::save_checkpoint(root, p, a, state, "model = \"tiny_test\"\n");
  AdamW<Cpu> b(L);
  Arena<Cpu> p2(L);
  train::load_checkpoint(dir, p2, b);
  CHECK(b.step_count() == 3);
  CHECK(bitwise_equal(p, p2));
  CHECK(bitwise_equal(a.exp_avg(), b.exp_avg()));
  CHECK(bitwise_equal(a.exp_avg_sq(), b.exp_avg_sq()));
  fill_normal(g, 99, 0.1f);
  a.step(ctx, p, g, 1e-3f);
  b.step(ctx, p2, g, 1e-3f);
  CHECK(bitwise_equal(p, p2));

  ArenaLayout other;
  other.add("layers.0.attn.q.weight", DType::f32, Shape{2, 3});
  other.add("layers.0.norm.weight", DType::f32, Shape{3});
  other.add("head.bias", DType::f32, Shape{1, 2});
  AdamW<Cpu> c(other);
  Arena<Cpu> p3(other);
  CHECK_THROWS_AS(train::load_checkpoint(dir, p3, c), kumiki::InputError);
  std::filesystem::remove_all(root);
}

namespace {
/// Tensors of odd sizes, so that a ZeRO-1 partition cuts them (a granule is 64 elements), and padding.
ArenaLayout odd_layout(DType dtype) {
  ArenaLayout L;
  L.add("embed.weight", dtype, Shape{37, 9});
  L.add("layers.0.norm.weight", dtype, Shape{9});
  L.add("layers.0.mlp.weight", dtype, Shape{41, 5});
  L.add("head.bias", dtype, Shape{3});
  return L;
}
}  // namespace

TEST_CASE("AdamW: ZeRO-1 shards keep only their moments and update like the whole optimizer", "[optim][zero]") {
  ArenaLayout const L = odd_layout(DType::f32);
  std::size_t const n = L.numel();
  for (int d : {1, 2, 3, 5}) {
    CAPTURE(d);
    Arena<Cpu> whole_p(L), g(L);
    fill_normal(whole_p, 5, 1.0f);
    dist::ZeroPartition const part = dist::zero_partition(whole_p.layout(), d);
    // The partition covers every element and every float once, in order, cut at granules.
    REQUIRE(part.ranks() == d);
    CHECK(part.elements.front() == 0);
    CHECK(part.elements.back() == n);
    CHECK(part.floats.front() == 0);
    CHECK(part.floats.back() == static_cast<std::int64_t>(whole_p.total_bytes() / sizeof(float)));
    for (int r = 0; r < d; ++r) {
      CHECK(part.elements[static_cast<std::size_t>(r)] <= part.elements[static_cast<std::size_t>(r) + 1]);
      if (r + 1 < d) CHECK(part.elements[static_cast<std::size_t>(r) + 1] % dist::ZeroPartition::granule == 0);
    }
    // d shard optimizers over copies of the same parameters, each updating its part, equal the whole one.
    AdamW<Cpu> whole(L);
    std::vector<AdamW<Cpu>> shards;
    std::vector<Arena<Cpu>> ps;
    for (int r = 0; r < d; ++r) {
      shards.emplace_back(L, AdamWConfig{}, std::vector<optim::ParamGroup>{}, part.range(r));
      ps.emplace_back(L);
      copy(ps.back(), whole_p);
    }
    for (int s = 0; s < 3; ++s) {
      fill_normal(g, 40 + static_cast<std::uint64_t>(s), 0.1f);
      whole.step(ctx, whole_p, g, 1e-2f);
      for (int r = 0; r < d; ++r) shards[static_cast<std::size_t>(r)].step(ctx, ps[static_cast<std::size_t>(r)], g, 1e-2f);
    }
    // Each rank's part of its parameters is the whole optimizer's, bit for bit (the all-gather's input).
    Arena<Cpu> gathered(L), m(L), v(L);
    auto const* src = reinterpret_cast<float const*>(whole_p.data());
    for (int r = 0; r < d; ++r) {
      auto const* mine = reinterpret_cast<float const*>(ps[static_cast<std::size_t>(r)].data());
      auto const lo = static_cast<std::size_t>(part.floats[static_cast<std::size_t>(r)]);
      auto const hi = static_cast<std::size_t>(part.floats[static_cast<std::size_t>(r) + 1]);
      CHECK(std::memcmp(mine + lo, src + lo, (hi - lo) * sizeof(float)) == 0);
      std::memcpy(reinterpret_cast<float*>(gathered.data()) + lo, mine + lo, (hi - lo) * sizeof(float));
      optim::shard_to_whole(shards[static_cast<std::size_t>(r)].exp_avg(), part.range(r), m);
      optim::shard_to_whole(shards[static_cast<std::size_t>(r)].exp_avg_sq(), part.range(r), v);
    }
    CHECK(bitwise_equal(gathered, whole_p));
    CHECK(bitwise_equal(m, whole.exp_avg()));
    CHECK(bitwise_equal(v, whole.exp_avg_sq()));
    // Each shard holds about 1/d of the moments (a cut tensor's piece is its own entry, padded).
    std::size_t held = 0;
    for (auto const& o : shards) held += o.exp_avg().layout().numel();
    CHECK(held == n);
    if (d == 1) CHECK(shards[0].exp_avg().layout() == L);
    if (d > 1) CHECK(shards[0].exp_avg().layout().numel() <= n / static_cast<std::size_t>(d) + dist::ZeroPartition::granule);
    // A checkpoint of the whole state read back by each rank for its part (load_checkpoint_part):
    // the weights whole, the moments equal to that rank's shard, bit for bit.
    std::filesystem::path const root = std::filesystem::temp_directory_path() / "kumiki-test-adamw-part";
    std::filesystem::remove_all(root);
    train::TrainState state;
    state.step = 3;
    std::filesystem::path const dir = train::save_checkpoint(root, whole_p, m, v, 3, state, "model = \"tiny_test\"\n");
    for (int r = 0; r < d; ++r) {
      AdamW<Cpu> fresh(L, AdamWConfig{}, {}, part.range(r));
      Arena<Cpu> p2(L);
      std::int64_t steps = 0;
      train::load_checkpoint_part(dir, p2, part.range(r), fresh.exp_avg(), fresh.exp_avg_sq(), steps);
      CHECK(steps == 3);
      CHECK(bitwise_equal(p2, whole_p));
      CHECK(bitwise_equal(fresh.exp_avg(), shards[static_cast<std::size_t>(r)].exp_avg()));
      CHECK(bitwise_equal(fresh.exp_avg_sq(), shards[static_cast<std::size_t>(r)].exp_avg_sq()));
    }
    std::filesystem::remove_all(root);
    // whole_to_shard gives a fresh shard the whole moments' part: it continues like the original.
    for (int r = 0; r < d; ++r) {
      AdamW<Cpu> fresh(L, AdamWConfig{}, {}, part.range(r));
      optim::whole_to_shard(m, part.range(r), fresh.exp_avg());
      optim::whole_to_shard(v, part.range(r), fresh.exp_avg_sq());
      fresh.set_step_count(3);
      Arena<Cpu> a(L), b(L);
      copy(a, ps[static_cast<std::size_t>(r)]);
      copy(b, ps[static_cast<std::size_t>(r)]);
      fill_normal(g, 77, 0.1f);
      fresh.step(ctx, a, g, 1e-2f);
      shards[static_cast<std::size_t>(r)].step(ctx, b, g, 1e-2f);
      CHECK(bitwise_equal(a, b));
    }
  }
}

TEST_CASE("ZeRO-1: the bf16 weights of a bf16 model are cut where the fp32 gradients are", "[optim][zero]") {
  // The weights' arena (bf16) has its own offsets; arena_bounds puts each cut at the same element.
  ArenaLayout W = odd_layout(DType::bf16);
  W.add("layers.1.empty", DType::bf16, Shape{0, 3});
  W.add("layers.1.norm.weight", DType::bf16, Shape{5});
  ArenaLayout const G = optim::master_layout(W);
  for (int d : {1, 2, 3, 5, 16}) {
    CAPTURE(d);
    dist::ZeroPartition const part = dist::zero_partition(G, d);
    std::vector<std::int64_t> const wb = dist::arena_bounds(W, part.elements);
    REQUIRE(wb.size() == static_cast<std::size_t>(d) + 1);
    CHECK(wb.front() == 0);
    CHECK(wb.back() == static_cast<std::int64_t>(W.total_bytes() / sizeof(bf16)));
    CHECK(dist::arena_bounds(G, part.elements) == part.floats);
    // Every element lies in its owner's part in both arenas; the parts never overlap.
    std::size_t flat = 0;
    for (std::size_t i = 0; i < W.size(); ++i)
      for (std::size_t j = 0; j < W[i].numel(); ++j, ++flat) {
        std::size_t r = 0;
        while (flat >= part.elements[r + 1]) ++r;
        auto const pw = static_cast<std::int64_t>(W[i].offset / sizeof(bf16) + j);
        auto const pg = static_cast<std::int64_t>(G[i].offset / sizeof(float) + j);
        REQUIRE(wb[r] <= pw);
        REQUIRE(pw < wb[r + 1]);
        REQUIRE(part.floats[r] <= pg);
        REQUIRE(pg < part.floats[r + 1]);
      }
  }
  CHECK_THROWS_WITH(dist::arena_bounds(W, std::vector<std::size_t>{0, W.numel() + 1}), Contains("past the arena"));
  ArenaLayout mixed = W;
  mixed.add("f", DType::f32, Shape{2});
  CHECK_THROWS_WITH(dist::arena_bounds(mixed, std::vector<std::size_t>{0, 1}), Contains("one element size"));
}

TEST_CASE("AdamW: bad inputs are errors", "[optim]") {
  ArenaLayout bf;
  bf.add("w", DType::bf16, Shape{4});
  CHECK_THROWS_WITH(AdamW<Cpu>(bf), Contains("master_layout"));
  ArenaLayout const L = small_layout();
  ArenaLayout L2;
  L2.add("x", DType::f32, Shape{4});
  AdamW<Cpu> opt(L);
  Arena<Cpu> p(L), g_wrong(L2);
  CHECK_THROWS_WITH(opt.step(ctx, p, g_wrong, 1e-3f), Contains("gradient arena"));
  CHECK(opt.step_count() == 0);
  CHECK_THROWS_WITH(AdamW<Cpu>(L, AdamWConfig{1.0f, 0.95f, 1e-8f, 0.1f}), Contains("betas"));
}
