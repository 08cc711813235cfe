// Harness cases for the optimizer (tests/ops/backend_ops.hpp's Case form): AdamW over a small arena
// (parameter groups, Megatron's no-decay tensors, an empty tensor, many tiny tensors inside one GPU
// tile, LLM-jp-4 hidden widths, a ZeRO-1 range, the bf16 model copy) and GradNorm (sum of squares over
// the whole arena and a sub-range, scaling of the sub-range).
//
// The optimizer works on fp32 arenas whatever the policy P (AdamW<Cpu> and GradNorm<Cpu> take f32
// tensors only; a bf16 model keeps fp32 master weights and fp32 gradients): P = double on the CPU runs
// the same fp32 computation as P = float. So these cases are NOT compared with a double reference:
// the CUDA fp32 run is compared with the CPU fp32 run of the same P, and the AdamW cases ("Bitwise" in
// the type name, `bitwise = true`) must agree exactly, bit for bit (the same fp32 operations in the same
// order on both). GradNorm's sum of squares is added in a different order on each backend (equal within
// double rounding, hence its tol); its scaled gradients are bitwise equal.
#pragma once

#include <cstddef>
#include <cstdint>
#include <iterator>
#include <string>
#include <type_traits>
#include <vector>

#include "../../ops/backend_ops.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/shape.hpp"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/clip.hpp"
#include "kumiki/optim/master.hpp"

namespace kumiki_test::backend_ops {
namespace optim_cases {

/// Fills every f32 tensor of `a` with uniform(lo, hi) values from Philox stream `stream` (layout
/// order, padding left zero), staged through a host arena.
template <class B>
void fill_uniform(Arena<B>& a, std::uint64_t stream, double lo, double hi) {
  Arena<Cpu> host(a.layout());
  std::vector<double> const u = uniform(host.layout().numel(), stream, lo, hi);
  std::size_t k = 0;
  for (std::size_t i = 0; i < host.layout().size(); ++i)
    for (float& x : host.get<float>(i)) x = static_cast<float>(u[k++]);
  kumiki::copy(a, host);
}

/// Every element of every tensor of `a` (f32 or bf16), in layout order, padding skipped.
template <class B>
std::vector<double> arena_values(Arena<B> const& a) {
  Arena<Cpu> host(a.layout());
  kumiki::copy(host, a);
  std::vector<double> out;
  out.reserve(host.layout().numel());
  for (std::size_t i = 0; i < host.layout().size(); ++i) {
    if (host.layout()[i].dtype == DType::bf16)
      for (bf16 x : host.get<bf16>(i)) out.push_back(to_double(x));
    else
      for (float x : host.get<float>(i)) out.push_back(to_double(x));
  }
  return out;
}

/// A bf16 model layout (the fp32 master twin is optim::master_layout of it): 11211 elements.
inline ArenaLayout adamw_model_layout() {
  ArenaLayout L;
  L.add("embed.weight", DType::bf16, Shape{11, 13});              // group "embed": lr_mult 0.5
  L.add("layers.0.attn.qkv.weight", DType::bf16, Shape{37, 70});  // group "qkv": wd_mult 2; spans 3 GPU tiles
  L.add("layers.0.attn_norm.weight", DType::bf16, Shape{70});     // 1-D: no decay
  L.add("layers.0.empty.weight", DType::bf16, Shape{0, 4});       // no elements
  for (int k = 1; k <= 20; ++k)                                   // 20 tensors inside one 1024-element tile
    L.add("layers.0.small" + std::to_string(k) + ".weight", DType::bf16, Shape{1, k});
  L.add("layers.0.mlp.down.weight", DType::bf16, Shape{2, 2048});  // LLM-jp-4 1.3B hidden; set_hyper below
  L.add("head.bias", DType::bf16, Shape{1, 5});                    // a bias by name: no decay
  L.add("final_norm.weight", DType::bf16, Shape{4096});            // LLM-jp-4 7.7B hidden, 1-D
  L.add("scale", DType::bf16, Shape{1});                           // one element
  return L;
}

}  // namespace optim_cases

/// AdamW, three steps (lr 1e-2, 2e-2, 5e-3; weight decay 0.1 from the config, then 0.05, 0.2) with
/// groups (embed.*: lr x0.5; *qkv*: wd x2), the no-decay rule (1-D and .bias tensors), one set_hyper,
/// fresh uniform gradients each step. Sharded: the optimizer's range starts inside the qkv tensor and
/// ends inside final_norm (elements outside it stay as they were). When P's parameters are bf16, the
/// parameters are the fp32 master and each step also writes the bf16 model arena.
/// Compared bitwise: CUDA fp32 against CPU fp32 of the same P, never against a double reference.
template <bool Sharded>
struct OptimAdamWBitwiseCase {
  static constexpr char const* name = Sharded ? "AdamW 3 steps, groups, ZeRO-1 range (bitwise vs CPU fp32)"
                                              : "AdamW 3 steps, groups, no-decay tensors (bitwise vs CPU fp32)";
  static constexpr double tol = 0.0;
  static constexpr bool bitwise = true;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    constexpr bool mixed = std::is_same_v<param_of<P>, bf16>;
    ArenaLayout const model_layout = optim_cases::adamw_model_layout();
    ArenaLayout const L = optim::master_layout(model_layout);
    Arena<B> params(L), grads(L);
    Arena<B> model = mixed ? Arena<B>(model_layout) : Arena<B>();
    optim_cases::fill_uniform(params, 40, -1.0, 1.0);
    std::vector<optim::ParamGroup> const groups{
        {"embed", [](ArenaEntry const& e) { return e.name.starts_with("embed."); }, 0.5f, 1.0f},
        {"qkv", [](ArenaEntry const& e) { return e.name.find("qkv") != std::string::npos; }, 1.0f, 2.0f}};
    FlatRange const range = Sharded ? FlatRange{1000, L.numel() - 3000} : FlatRange{};
    optim::AdamW<B> opt(L, optim::AdamWConfig{}, groups, range);  // beta 0.9 / 0.95, eps 1e-8, wd 0.1
    opt.set_hyper("layers.0.mlp.down.weight", optim::TensorHyper{1.5f, 0.5f});
    float const lrs[3] = {1e-2f, 2e-2f, 5e-3f}, wds[3] = {0.1f, 0.05f, 0.2f};
    for (int s = 0; s < 3; ++s) {
      synchronize(ctx);  // the previous step has finished reading the gradients overwritten here
      optim_cases::fill_uniform(grads, 41 + static_cast<std::uint64_t>(s), -1.0, 1.0);
      if constexpr (mixed)
        opt.step(ctx, params, grads, lrs[s], wds[s], &model);
      else if (s == 0)
        opt.step(ctx, params, grads, lrs[s]);  // the configured weight decay, 0.1 = wds[0]
      else
        opt.step(ctx, params, grads, lrs[s], wds[s]);
    }
    synchronize(ctx);
    Outputs out{{"params", optim_cases::arena_values(params)},
                {"exp_avg", optim_cases::arena_values(opt.exp_avg())},
                {"exp_avg_sq", optim_cases::arena_values(opt.exp_avg_sq())},
                {"step_count", {static_cast<double>(opt.step_count())}}};
    if constexpr (mixed) out.push_back({"bf16 model", optim_cases::arena_values(model)});
    return out;
  }
};

/// AdamW on fp32 master weights kept as halves (optim/master.hpp), the GPU trainer's 16 bytes a
/// parameter: three steps as OptimAdamWBitwiseCase's (groups, no-decay tensors, a ZeRO-1 range), the
/// masters starting as uniform values with special ones in "scale" and the first elements of
/// "final_norm" (exact ties of the bf16 rounding, the largest finite float, subnormals, -0). The GPU
/// keeps the low halves of the range only, as a ZeRO-1 rank does: MasterSplit<Cuda> writes every high
/// half (lo == nullptr) and the range's low halves piece by piece, AdamW<Cuda>::step_halves updates
/// them, and the range is joined back at the end (the masters outside it stay as they started). The
/// CPU, which keeps no halves, joins every master, steps the fp32 masters in place and splits them
/// again, each step. Both policies run the same fp32 computation (the case ignores P). Compared bit for
/// bit: the masters, the bf16 weights, the moments.
struct OptimAdamWHalvesBitwiseCase {
  static constexpr char const* name = "AdamW on master halves, 3 steps, ZeRO-1 range (bitwise vs CPU join/step/split)";
  static constexpr double tol = 0.0;
  static constexpr bool bitwise = true;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ArenaLayout const model_layout = optim_cases::adamw_model_layout();
    ArenaLayout const L = optim::master_layout(model_layout);
    FlatRange const range{700, L.numel() - 2000};
    // lo: every element's low half (the CPU's round trip); lo_part: the range's (the GPU's, a ZeRO-1 shard).
    Arena<B> hi(model_layout), lo(model_layout), lo_part(optim::shard_layout(model_layout, range)), grads(L), master(L);
    {
      Arena<Cpu> m(L);
      optim_cases::fill_uniform(m, 60, -1.0, 1.0);
      float const special[] = {1.0f + 0x1p-8f,  -(1.0f + 3 * 0x1p-8f), 0x1.fffffep127f, 1e-40f, -0.0f, 0.5f + 0x1p-9f};
      float* fn = m.get<float>("final_norm.weight").data();
      for (std::size_t k = 0; k < std::size(special); ++k) fn[k] = special[k];
      m.get<float>("scale").data()[0] = 0x1p-9f + 0x1p-17f;  // a tie in another binade
      kumiki::copy(master, m);
    }
    // f(master, bf16 weights, low halves, n) for every tensor (whole), or for each piece of the range.
    auto each = [&](auto&& f) {
      for (std::size_t i = 0; i < L.size(); ++i)
        f(master.template get<float>(i).data(), hi.template get<bf16>(i).data(),
          reinterpret_cast<std::uint16_t*>(lo.template get<bf16>(i).data()), static_cast<std::int64_t>(L[i].numel()));
    };
    auto pieces = [&](auto&& f) {
      optim::detail::for_each_shard_piece(
          model_layout, lo_part.layout(), range, [&](std::size_t i, std::size_t w, std::size_t s, std::size_t bytes) {
            std::size_t const k = (w - model_layout[i].offset) / sizeof(bf16);
            f(master.template get<float>(i).data() + k, hi.template get<bf16>(i).data() + k,
              reinterpret_cast<std::uint16_t*>(lo_part.data() + s), static_cast<std::int64_t>(bytes / sizeof(bf16)));
          });
    };
    std::vector<optim::ParamGroup> const groups{
        {"embed", [](ArenaEntry const& e) { return e.name.starts_with("embed."); }, 0.5f, 1.0f}};
    optim::AdamW<B> opt(L, optim::AdamWConfig{}, groups, range);
    float const lrs[3] = {1e-2f, 2e-2f, 5e-3f}, wds[3] = {0.1f, 0.05f, 0.2f};
    if constexpr (std::is_same_v<B, Cpu>) {
      each([&](float* x, bf16* h, std::uint16_t* l, std::int64_t n) { optim::MasterSplit<B>::split(ctx, x, h, l, n); });
    } else {
      each([&](float* x, bf16* h, std::uint16_t*, std::int64_t n) { optim::MasterSplit<B>::split(ctx, x, h, nullptr, n); });
      pieces([&](float* x, bf16* h, std::uint16_t* l, std::int64_t n) { optim::MasterSplit<B>::split(ctx, x, h, l, n); });
    }
    for (int s = 0; s < 3; ++s) {
      synchronize(ctx);
      optim_cases::fill_uniform(grads, 61 + static_cast<std::uint64_t>(s), -1.0, 1.0);
      if constexpr (std::is_same_v<B, Cpu>) {
        each([&](float* x, bf16* h, std::uint16_t* l, std::int64_t n) { optim::MasterSplit<B>::join(ctx, h, l, x, n); });
        opt.step(ctx, master, grads, lrs[s], wds[s]);
        each([&](float* x, bf16* h, std::uint16_t* l, std::int64_t n) { optim::MasterSplit<B>::split(ctx, x, h, l, n); });
      } else {
        opt.step_halves(ctx, hi, lo_part, grads, lrs[s], wds[s]);
      }
    }
    if constexpr (std::is_same_v<B, Cpu>)
      each([&](float* x, bf16* h, std::uint16_t* l, std::int64_t n) { optim::MasterSplit<B>::join(ctx, h, l, x, n); });
    else
      pieces([&](float* x, bf16* h, std::uint16_t* l, std::int64_t n) { optim::MasterSplit<B>::join(ctx, h, l, x, n); });
    synchronize(ctx);
    return {{"master (joined)", optim_cases::arena_values(master)},
            {"bf16 weights", optim_cases::arena_values(hi)},
            {"exp_avg", optim_cases::arena_values(opt.exp_avg())},
            {"exp_avg_sq", optim_cases::arena_values(opt.exp_avg_sq())}};
  }
};

/// GradNorm on an fp32 gradient arena of 38 tensors (more than one GPU launch's 32 segments; one of
/// 33 x 2048 elements, more than one 2^16-element GPU chunk and several 2^14 CPU blocks): sum of squares
/// over the whole arena and over a sub-range starting and ending inside tensors, then the sub-range
/// scaled by 0.37. Compared CUDA fp32 against CPU fp32 of the same P (not a double reference): the sums
/// agree within double rounding (added in a different order: tol), "scaled grads" bit for bit.
struct OptimGradNormCase {
  static constexpr char const* name = "GradNorm sum_squares (whole, sub-range) and scale (sub-range), fp32 vs CPU fp32";
  static constexpr double tol = 1e-10;  // ~n eps for a different order of n = 68740 fp64 additions
  static constexpr bool bitwise = false;
  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    ArenaLayout L;
    for (int k = 1; k <= 20; ++k) L.add("layers." + std::to_string(k) + ".norm.weight", DType::f32, Shape{k});
    L.add("embed.weight", DType::f32, Shape{33, 2048});
    for (int k = 21; k <= 36; ++k) L.add("layers." + std::to_string(k) + ".norm.weight", DType::f32, Shape{k});
    L.add("head.weight", DType::f32, Shape{7, 70});  // 68740 elements in all
    Arena<B> grads(L);
    optim_cases::fill_uniform(grads, 50, -2.0, 2.0);
    FlatRange const sub{150, L.numel() - 200};  // from inside layers.17 to inside head.weight
    synchronize(ctx);
    double const whole = optim::GradNorm<B>::sum_squares(ctx, grads, FlatRange{});
    double const part = optim::GradNorm<B>::sum_squares(ctx, grads, sub);
    optim::GradNorm<B>::scale(ctx, grads, sub, 0.37f);
    synchronize(ctx);
    return {{"sum_squares whole, sub-range", {whole, part}}, {"scaled grads", optim_cases::arena_values(grads)}};
  }
};

}  // namespace kumiki_test::backend_ops
