// kernels_test.cpp: kumiki's CUDA kernels other than attention (gradient norm, AdamW, master-weight halves,
// RMSNorm, residual + RMSNorm, LM-head loss, RoPE, SwiGLU, residual add, Philox fill) run on the host emulator
// (cuda_emu.hpp) and checked: against the library's CPU code bit for bit where the GPU promises it (AdamW,
// master halves, gradient scale, fills), else against a double-precision reference (relative L2 1e-5 fp32,
// 1e-2 bf16, as tests/cuda/ops/test_cuda_ops.cpp; the gradient norm within 1e-10, cases_optim.hpp's tol).
// Every case runs twice, the second time with blocks and threads reversed and greedy: the outputs must be
// bitwise equal. Outputs start as NaN (GuardedBuffer's 0xFF fill), so unwritten elements fail.
// The device code comes from gen/other_kernels.hpp (extract_kernels.py); each op's host launch code (the
// `template <> struct X<Cuda>` with <<<>>>) is replicated here, naming the function it follows.
//
// Usage: cuda_emu_kernels_test [substring]   (only the cases whose name holds it)
#include "other_kernels.hpp"

#include "kumiki/ops/cpu/embedding.hpp"
#include "kumiki/ops/cpu/fill.hpp"
#include "kumiki/ops/cpu/residual.hpp"
#include "kumiki/ops/cpu/residual_rmsnorm.hpp"
#include "kumiki/ops/cpu/rmsnorm.hpp"
#include "kumiki/ops/cpu/rope.hpp"
#include "kumiki/ops/cpu/swiglu.hpp"
#include "kumiki/optim/detail/adamw_kernel.hpp"

#include <cmath>
#include <cstdio>
#include <cstring>
#include <functional>
#include <random>
#include <string>
#include <vector>

using namespace kumiki;
using Bytes = std::vector<unsigned char>;

namespace {

int g_failures = 0;
char const* g_filter = nullptr;

void fail(std::string const& what) {
  std::printf("  FAIL: %s\n", what.c_str());
  ++g_failures;
}

double to_d(float v) { return v; }
double to_d(double v) { return v; }
double to_d(bf16 v) { return v.to_float(); }
template <class T>
T from_f(float v) {
  if constexpr (std::is_same_v<T, bf16>)
    return bf16(v);
  else
    return static_cast<T>(v);
}
template <class T>
constexpr double tol_of() {
  return std::is_same_v<T, bf16> ? 1e-2 : 1e-5;
}
template <class T>
char const* name_of() {
  return std::is_same_v<T, bf16> ? "bf16" : "f32";
}

template <class T>
Bytes bytes_of(T const* p, std::size_t n) {
  Bytes b(n * sizeof(T));
  if (n) std::memcpy(b.data(), p, b.size());
  return b;
}
template <class T>
std::vector<double> doubles(T const* p, std::size_t n) {
  std::vector<double> v(n);
  for (std::size_t i = 0; i < n; ++i) v[i] = to_d(p[i]);
  return v;
}

/// Relative L2 error; any NaN / inf in `got` gives +inf.
double rel_l2(std::vector<double> const& got, std::vector<double> const& ref) {
  if (got.size() != ref.size()) return INFINITY;
  double num = 0.0, den = 0.0;
  for (std::size_t i = 0; i < got.size(); ++i) {
    if (!std::isfinite(got[i])) return INFINITY;
    num += (got[i] - ref[i]) * (got[i] - ref[i]);
    den += ref[i] * ref[i];
  }
  return den > 0.0 ? std::sqrt(num / den) : std::sqrt(num);
}

void check_err(char const* what, double err, double tol) {
  std::printf("  %-26s rel L2 %.3g (tol %.0e)%s\n", what, err, tol, err <= tol ? "" : "  <-- FAIL");
  if (!(err <= tol)) ++g_failures;
}
void check_bits(char const* what, Bytes const& got, Bytes const& ref) {
  bool const same = got == ref;
  std::printf("  %-26s %s\n", what, same ? "bitwise equal to the CPU" : "DIFFERS from the CPU  <-- FAIL");
  if (!same) ++g_failures;
}

/// Runs `body(check)` twice: first in the default order with checks, then reversed and greedy; the
/// byte images it returns must be equal.
void run_case(std::string const& name, std::function<std::vector<Bytes>(bool)> const& body) {
  if (g_filter && name.find(g_filter) == std::string::npos) return;
  std::printf("%s\n", name.c_str());
  emu::g_default_options = {};
  std::vector<Bytes> const a = body(true);
  emu::g_default_options = {emu::Order::reverse, 1, std::getenv("NO_GREEDY") == nullptr};
  std::vector<Bytes> const b = body(false);
  emu::g_default_options = {};
  bool const same = a == b;
  std::printf("  %-26s %s\n", "second run (reversed)", same ? "bitwise equal" : "DIFFERS  <-- FAIL");
  if (!same) ++g_failures;
}

std::vector<float> uniform(std::size_t n, unsigned seed, float lo = -1.0f, float hi = 1.0f) {
  std::mt19937 rng(seed);
  std::uniform_real_distribution<float> d(lo, hi);
  std::vector<float> v(n);
  for (auto& x : v) x = d(rng);
  return v;
}

// -------------------------------------------------------------------------------------------------------
// Gradient norm: GradNorm<Cuda>::sum_squares and ::scale (optim/cuda/grad_norm.cuh).
void grad_norm_case(std::string const& name, std::vector<std::uint64_t> const& sizes, float coeff) {
  namespace cd = optim::cuda_detail;
  run_case(name, [&](bool check) {
    std::vector<emu::GuardedBuffer<float>> segs;
    std::vector<std::vector<float>> vals;
    long double exact = 0.0L;
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      vals.push_back(uniform(sizes[s], 100 + static_cast<unsigned>(s), -2.0f, 2.0f));
      segs.emplace_back(sizes[s]);
      std::memcpy(segs.back().data(), vals.back().data(), sizes[s] * sizeof(float));
      for (float x : vals.back()) exact += static_cast<long double>(x) * static_cast<long double>(x);
    }
    // plan_segments without the arena: one segment per tensor part.
    auto plan_for = [&](std::uint64_t chunk) {
      cd::GradPlan plan;
      for (std::size_t s = 0; s < sizes.size(); ++s) {
        plan.segments.push_back(cd::GradSegment{segs[s].data(), sizes[s], plan.blocks});
        plan.blocks += (sizes[s] + chunk - 1) / chunk;
      }
      return plan;
    };
    constexpr int threads = cd::grad_norm_threads;
    // GradNorm<Cuda>::sum_squares
    cd::GradPlan const plan = plan_for(cd::grad_norm_chunk);
    emu::GuardedBuffer<double> partials(plan.blocks + 1);
    cd::for_each_batch(plan, [&](cd::GradSegmentBatch const& batch, std::uint64_t base) {
      emu::launch(cd::grad_sum_squares_kernel<threads>, dim3(static_cast<unsigned>(batch.blocks)), dim3(threads), 0,
                  batch, partials.data() + base);
    });
    emu::launch(cd::grad_sum_partials_kernel<threads>, dim3(1), dim3(threads), 0, partials.data(), plan.blocks,
                partials.data() + plan.blocks);
    double const got = partials[plan.blocks];
    // GradNorm<Cuda>::scale
    cd::GradPlan const splan = plan_for(cd::grad_scale_chunk);
    cd::for_each_batch(splan, [&](cd::GradSegmentBatch const& batch, std::uint64_t) {
      emu::launch(cd::grad_scale_kernel<threads>, dim3(static_cast<unsigned>(batch.blocks)), dim3(threads), 0, batch,
                  coeff);
    });
    std::vector<Bytes> out{bytes_of(&got, 1)};
    Bytes scaled, ref;
    for (std::size_t s = 0; s < sizes.size(); ++s) {
      Bytes const b = bytes_of(segs[s].data(), sizes[s]);
      scaled.insert(scaled.end(), b.begin(), b.end());
      std::vector<float> r = vals[s];
      for (float& x : r) x *= coeff;  // GradNorm<Cpu>::scale
      Bytes const rb = bytes_of(r.data(), r.size());
      ref.insert(ref.end(), rb.begin(), rb.end());
    }
    out.push_back(scaled);
    if (check) {
      std::printf("  %zu segments, %llu + %llu blocks, %zu launch(es)\n", sizes.size(),
                  static_cast<unsigned long long>(plan.blocks), static_cast<unsigned long long>(splan.blocks),
                  (sizes.size() + cd::grad_segments_per_launch - 1) / cd::grad_segments_per_launch);
      double const err = static_cast<double>(std::fabs((static_cast<long double>(got) - exact) / exact));
      check_err("sum of squares (rel)", err, 1e-10);
      check_bits("scaled gradients", scaled, ref);
    }
    return out;
  });
}

// -------------------------------------------------------------------------------------------------------
// AdamW: AdamW<Cuda>::launch (optim/cuda/adamw.cuh) over a flat range of padded arenas; reference: the CPU's
// element update optim::detail::adamw_update (optim/detail/adamw_kernel.hpp) per tensor piece.
template <optim::cuda_detail::MasterStore Store>
void adamw_case(std::string const& name, std::vector<std::uint64_t> const& sizes, std::uint64_t rb, std::uint64_t re,
                int steps) {
  namespace cd = optim::cuda_detail;
  using cd::MasterStore;
  run_case(name, [&](bool check) {
    std::size_t const nt = sizes.size();
    auto align = [](std::uint64_t x, std::uint64_t a) { return (x + a - 1) / a * a; };
    // Offsets (elements) in each arena: 256-byte aligned tensors, as an Arena lays them out.
    std::vector<std::uint64_t> first(nt + 1, 0), po(nt), go(nt), bo(nt);
    std::vector<std::int64_t> mbase(nt), lbase(nt);
    std::uint64_t pn = 0, gn = 64, bn = 0, mn = 0, ln = 0;  // the gradients start 256 bytes later
    for (std::size_t i = 0; i < nt; ++i) {
      first[i + 1] = first[i] + sizes[i];
      po[i] = pn, pn = align(pn + sizes[i], 64);
      go[i] = gn, gn = align(gn + sizes[i], 64);
      bo[i] = bn, bn = align(bn + sizes[i], 128);
      // shard_layout of the range: the tensor's piece [plo, phi) only; base + k is element k of the tensor.
      std::uint64_t const plo = std::clamp(rb, first[i], first[i + 1]) - first[i];
      std::uint64_t const phi = std::clamp(re, first[i], first[i + 1]) - first[i];
      mbase[i] = static_cast<std::int64_t>(mn) - static_cast<std::int64_t>(plo);
      lbase[i] = static_cast<std::int64_t>(ln) - static_cast<std::int64_t>(plo);
      if (phi > plo) mn = align(mn + phi - plo, 64), ln = align(ln + phi - plo, 128);
    }
    emu::GuardedBuffer<float> p(pn + 1), g(gn + 1), m(mn + 1), v(mn + 1);
    emu::GuardedBuffer<bf16> b(bn + 1);
    emu::GuardedBuffer<std::uint16_t> lo(ln + 1);
    std::vector<float> rp(pn + 1), rm(mn + 1, 0.0f), rv(mn + 1, 0.0f);
    std::vector<bf16> rbf(bn + 1);
    std::vector<std::uint16_t> rlo(ln + 1);
    {
      std::vector<float> const init = uniform(pn + 1, 7, -0.5f, 0.5f);
      for (std::uint64_t k = 0; k < pn + 1; ++k) p[k] = rp[k] = init[k];
      for (std::uint64_t k = 0; k < mn + 1; ++k) m[k] = v[k] = 0.0f;  // the constructor's cudaMemset
      std::vector<float> const bi = uniform(bn + 1, 8, -0.5f, 0.5f);
      for (std::uint64_t k = 0; k < bn + 1; ++k) b[k] = rbf[k] = bf16(bi[k]);
      std::mt19937 rng(9);
      for (std::uint64_t k = 0; k < ln + 1; ++k) lo[k] = rlo[k] = static_cast<std::uint16_t>(rng());
    }
    float const beta1 = 0.9f, beta2 = 0.95f, eps = 1e-8f, lr = 3e-3f, wd = 0.1f;
    std::vector<float> lr_mult(nt), wd_mult(nt);
    for (std::size_t i = 0; i < nt; ++i) lr_mult[i] = i % 3 == 1 ? 0.5f : 1.0f, wd_mult[i] = i % 2 ? 0.0f : 1.0f;
    emu::GuardedBuffer<cd::AdamWSlot> slots(nt + 1);
    for (int step = 1; step <= steps; ++step) {
      std::vector<float> const gv = uniform(gn + 1, 20 + static_cast<unsigned>(step), -1.0f, 1.0f);
      for (std::uint64_t k = 0; k < gn + 1; ++k) g[k] = gv[k];
      // AdamW<Cuda>::launch: the scalars in double, the table, the grid.
      double const bc1 = 1.0 - std::pow(static_cast<double>(beta1), static_cast<double>(step));
      double const bc2 = 1.0 - std::pow(static_cast<double>(beta2), static_cast<double>(step));
      cd::AdamWCommon common;
      common.beta1 = beta1, common.beta2 = beta2;
      common.one_minus_beta1 = static_cast<float>(1.0 - static_cast<double>(beta1));
      common.one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(beta2));
      common.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
      common.eps = eps;
      for (std::size_t i = 0; i < nt; ++i) {
        double const lr_t = static_cast<double>(lr) * static_cast<double>(lr_mult[i]);
        double const wd_t = static_cast<double>(wd) * static_cast<double>(wd_mult[i]);
        cd::AdamWSlot& s = slots[i];
        s.first = first[i];
        s.p = Store != MasterStore::halves ? po[i] : 0;
        s.g = go[i];
        s.m = static_cast<std::uint64_t>(mbase[i]);
        s.b = Store != MasterStore::f32 ? bo[i] : 0;
        s.l = Store == MasterStore::halves ? static_cast<std::uint64_t>(lbase[i]) : 0;
        s.decay = static_cast<float>(1.0 - lr_t * wd_t);
        s.neg_step_size = static_cast<float>(-(lr_t / bc1));
        // The CPU reference for this tensor's piece.
        std::uint64_t const plo = std::clamp(rb, first[i], first[i + 1]) - first[i];
        std::uint64_t const phi = std::clamp(re, first[i], first[i + 1]) - first[i];
        if (phi <= plo) continue;
        optim::detail::AdamWScalars const sc{common.beta1, common.beta2, common.one_minus_beta1, common.one_minus_beta2,
                                             common.bc2_sqrt, common.eps, s.decay, s.neg_step_size};
        std::uint64_t const n = phi - plo, mo = static_cast<std::uint64_t>(mbase[i]) + plo;
        if constexpr (Store == MasterStore::halves) {
          std::vector<float> pp(n);
          for (std::uint64_t k = 0; k < n; ++k)
            pp[k] = optim::join_master(rbf[bo[i] + plo + k].bits, rlo[static_cast<std::uint64_t>(lbase[i]) + plo + k]);
          optim::detail::adamw_update(pp.data(), gv.data() + go[i] + plo, rm.data() + mo, rv.data() + mo, nullptr, n, sc);
          for (std::uint64_t k = 0; k < n; ++k) {
            optim::MasterHalves const h = optim::split_master(pp[k]);
            rbf[bo[i] + plo + k] = bf16::from_bits(h.hi);
            rlo[static_cast<std::uint64_t>(lbase[i]) + plo + k] = h.lo;
          }
        } else {
          optim::detail::adamw_update(rp.data() + po[i] + plo, gv.data() + go[i] + plo, rm.data() + mo, rv.data() + mo,
                                      Store == MasterStore::f32_and_bf16 ? rbf.data() + bo[i] + plo : nullptr, n, sc);
        }
      }
      slots[nt] = cd::AdamWSlot{first[nt], 0, 0, 0, 0, 0, 0.0f, 0.0f};
      std::uint64_t const count = re - rb;
      if (count == 0) continue;
      std::uint64_t const tiles = (count + cd::adamw_tile - 1) / cd::adamw_tile;
      unsigned const grid = static_cast<unsigned>(std::min(tiles, cd::adamw_max_blocks));
      emu::launch(cd::adamw_kernel<Store>, dim3(grid), dim3(cd::adamw_threads), 0,
                  Store != MasterStore::halves ? p.data() : nullptr, static_cast<float const*>(g.data()), m.data(),
                  v.data(), Store != MasterStore::f32 ? b.data() : nullptr,
                  Store == MasterStore::halves ? lo.data() : nullptr, static_cast<cd::AdamWSlot const*>(slots.data()),
                  static_cast<std::uint32_t>(nt), rb, re, common);
    }
    std::vector<Bytes> out{bytes_of(m.data(), mn), bytes_of(v.data(), mn)};
    // Only the moments' shard elements are defined: compare those (the padding stays NaN on both sides...
    // on the reference side it is 0; compare per piece).
    Bytes gm, gv2, refm, refv;
    for (std::size_t i = 0; i < nt; ++i) {
      std::uint64_t const plo = std::clamp(rb, first[i], first[i + 1]) - first[i];
      std::uint64_t const phi = std::clamp(re, first[i], first[i + 1]) - first[i];
      if (phi <= plo) continue;
      std::uint64_t const mo = static_cast<std::uint64_t>(mbase[i]) + plo, n = phi - plo;
      auto app = [](Bytes& d, Bytes const& s) { d.insert(d.end(), s.begin(), s.end()); };
      app(gm, bytes_of(m.data() + mo, n)), app(refm, bytes_of(rm.data() + mo, n));
      app(gv2, bytes_of(v.data() + mo, n)), app(refv, bytes_of(rv.data() + mo, n));
    }
    if (Store != MasterStore::halves) out.push_back(bytes_of(p.data(), pn));
    if (Store != MasterStore::f32) out.push_back(bytes_of(b.data(), bn));
    if (Store == MasterStore::halves) out.push_back(bytes_of(lo.data(), ln));
    if (check) {
      std::printf("  %zu tensors, %llu elements, range [%llu, %llu), %d steps\n", nt,
                  static_cast<unsigned long long>(first[nt]), static_cast<unsigned long long>(rb),
                  static_cast<unsigned long long>(re), steps);
      check_bits("exp_avg (range)", gm, refm);
      check_bits("exp_avg_sq (range)", gv2, refv);
      // Whole arenas (parameters outside the range, and the padding, untouched).
      if (Store != MasterStore::halves) check_bits("fp32 params", bytes_of(p.data(), pn), bytes_of(rp.data(), pn));
      if (Store != MasterStore::f32) check_bits("bf16 params", bytes_of(b.data(), bn), bytes_of(rbf.data(), bn));
      if (Store == MasterStore::halves) check_bits("low halves", bytes_of(lo.data(), ln), bytes_of(rlo.data(), ln));
    }
    return out;
  });
}

// -------------------------------------------------------------------------------------------------------
// Master halves: MasterSplit<Cuda>::split / ::join (optim/cuda/master.cuh) against the host functions.
void master_case(std::int64_t n) {
  namespace cd = optim::cuda_detail;
  run_case("master split / join, n = " + std::to_string(n), [&](bool check) {
    std::vector<float> x = uniform(static_cast<std::size_t>(n), 31, -3.0f, 3.0f);
    float const specials[] = {0.0f, -0.0f, INFINITY, -INFINITY, 1e-40f, -3e-39f, 3.4e38f, 1.0f + 0x1p-20f, NAN};
    for (std::size_t k = 0; k < std::size(specials) && k < x.size(); ++k) x[k * 7 % x.size()] = specials[k];
    emu::GuardedBuffer<float> xs(n), xj(n);
    emu::GuardedBuffer<bf16> hi(n), hi2(n);
    emu::GuardedBuffer<std::uint16_t> lo(n);
    std::memcpy(xs.data(), x.data(), x.size() * sizeof(float));
    constexpr int threads = cd::master_threads;
    emu::launch(cd::split_master_kernel<threads>, dim3(cd::master_grid(n)), dim3(threads), 0,
                static_cast<float const*>(xs.data()), hi.data(), lo.data(), n);
    emu::launch(cd::split_master_kernel<threads>, dim3(cd::master_grid(n)), dim3(threads), 0,
                static_cast<float const*>(xs.data()), hi2.data(), static_cast<std::uint16_t*>(nullptr), n);
    emu::launch(cd::join_master_kernel<threads>, dim3(cd::master_grid(n)), dim3(threads), 0,
                static_cast<bf16 const*>(hi.data()), static_cast<std::uint16_t const*>(lo.data()), xj.data(), n);
    std::vector<Bytes> out{bytes_of(hi.data(), n), bytes_of(lo.data(), n), bytes_of(hi2.data(), n), bytes_of(xj.data(), n)};
    if (check) {
      std::vector<bf16> rh(n);
      std::vector<std::uint16_t> rl(n);
      std::vector<float> rj(n);
      for (std::int64_t k = 0; k < n; ++k) {
        optim::MasterHalves const h = optim::split_master(x[k]);
        rh[k] = bf16::from_bits(h.hi), rl[k] = h.lo, rj[k] = optim::join_master(h.hi, h.lo);
      }
      check_bits("hi", out[0], bytes_of(rh.data(), n));
      check_bits("lo", out[1], bytes_of(rl.data(), n));
      check_bits("hi (lo = null)", out[2], bytes_of(rh.data(), n));
      check_bits("joined", out[3], bytes_of(rj.data(), n));
    }
    return out;
  });
}

}  // namespace

#include "kernels_test_ops.inc"

int main(int argc, char** argv) {
  if (argc > 1) g_filter = argv[1];
  // Gradient norm: one element; a whole 2^16 chunk; two chunks and a partial one; 38 tensors (two launches,
  // as the GPU test's arena).
  grad_norm_case("grad_norm: 1 element", {1}, 0.37f);
  grad_norm_case("grad_norm: 65536 + 131849 + 4097 + 255", {65536, 2 * 65536 + 777, 4097, 255}, 0.37f);
  {
    std::vector<std::uint64_t> s;
    for (int k = 1; k <= 20; ++k) s.push_back(static_cast<std::uint64_t>(k));
    s.push_back(33 * 2048);
    for (int k = 21; k <= 36; ++k) s.push_back(static_cast<std::uint64_t>(k));
    s.push_back(490);
    grad_norm_case("grad_norm: 38 segments (2 launches)", s, 0.25f);
  }
  using optim::cuda_detail::MasterStore;
  std::vector<std::uint64_t> const tensors{1, 1000, 1024, 3, 2500, 0, 777, 4096};
  std::uint64_t const total = 1 + 1000 + 1024 + 3 + 2500 + 0 + 777 + 4096;
  adamw_case<MasterStore::f32>("adamw f32: 8 tensors (one empty), whole range", tensors, 0, total, 3);
  adamw_case<MasterStore::f32>("adamw f32: ZeRO-1 range inside tensors", tensors, 500, total - 1000, 2);
  adamw_case<MasterStore::f32_and_bf16>("adamw f32 + bf16 copy, sub-range", tensors, 1001, 5000, 2);
  adamw_case<MasterStore::halves>("adamw master halves, whole range", tensors, 0, total, 3);
  adamw_case<MasterStore::halves>("adamw master halves, sub-range", tensors, 700, 7001, 2);
  adamw_case<MasterStore::f32>("adamw f32: one element", {1}, 0, 1, 2);
  master_case(1);
  master_case(1000);
  master_case(70001);
  run_ops();
  std::printf("%s: %d failure(s); fiber stack high water %zu of %zu bytes\n", g_failures ? "FAILED" : "passed",
              g_failures, emu::stack_high_water(), emu::stack_size());
  return g_failures ? 1 : 0;
}
