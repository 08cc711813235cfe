// More op-harness cases (tests/ops/backend_ops.hpp) for the elementwise ops Residual, SwiGlu, Rope,
// Embedding and Fill: sizes that are not multiples of any vector width (1, 7, 4097 ...), one row, one
// position, activation pointers one element off their allocation's alignment (the scalar paths of the
// CUDA kernels), row strides wider than the rows, and LLM-jp-4's shapes (hidden 2048 / 4096, FFN
// 7168 / 14336, head_dim 128 with the fused q | k | v row, RoPE base 500000 at positions up to 4095).
//
// FillCase's outputs are exact: every backend computes fma(std, N_j, mean) in float (Fill<Cpu> with
// std::fma, in double too: its arithmetic is float), so "normal ..." in fp32 equals the CPU's values bit
// for bit and in bf16 their round-to-nearest-even; "constant ..." (0.375, -1.5, zeros) is exact in every
// type. Compare them for equality, and skip the harness's "float differs from double" check for them.
#pragma once

#include <cstdint>
#include <initializer_list>
#include <string>
#include <utility>
#include <vector>

#include "../../ops/backend_ops.hpp"
#include "kumiki/ops/fill.hpp"

namespace kumiki_test::backend_ops {

namespace elementwise_cases {

/// The host copy of a buffer used from element `offset` on.
inline std::vector<double> from(std::vector<double> v, std::int64_t offset) {
  v.erase(v.begin(), v.begin() + offset);
  return v;
}

inline std::string dims(std::initializer_list<std::pair<char const*, std::int64_t>> d) {
  std::string s = " [";
  for (auto const& [k, v] : d) {  // appends only: GCC 12 warns falsely (-Wrestrict) on "x" + string&&
    if (s.size() > 2) s += ' ';
    s.append(k).append("=").append(std::to_string(v));
  }
  s += ']';
  return s;
}

inline std::size_t sz(std::int64_t n) { return static_cast<std::size_t>(n); }

}  // namespace elementwise_cases

/// Residual forward (out = a + b), accumulate (d_acc += d) and forward in place (out = a) over odd
/// lengths, LLM-jp-4 rows (3 x 2048, 2 x 4096) and pointers one element past 16-byte alignment.
struct ResidualShapesCase {
  static constexpr char const* name = "Residual odd and LLM-jp-4 sizes, in place, misaligned";
  static constexpr double tol = 1e-6;
  struct Shape {
    std::int64_t n, offset;
  };
  static constexpr Shape shapes[] = {{1, 0}, {7, 0}, {9, 0}, {4097, 0}, {3 * 2048, 0}, {2 * 4096, 0}, {1001, 1}, {8, 1}};

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    namespace ec = elementwise_cases;
    Outputs r;
    std::uint64_t stream = 200;
    for (Shape const& s : shapes) {
      std::size_t const len = ec::sz(s.n + s.offset);
      std::int64_t const o = s.offset;
      Dev<B, T> a(uniform(len, stream)), b(uniform(len, stream + 1)), out = Dev<B, T>::output(len);
      Dev<B, T> acc(uniform(len, stream + 2)), in_place(uniform(len, stream + 3));
      stream += 10;
      ops::Residual<B>::forward(ctx, a.data() + o, b.data() + o, out.data() + o, s.n);
      ops::Residual<B>::accumulate(ctx, acc.data() + o, b.data() + o, s.n);
      ops::Residual<B>::forward(ctx, in_place.data() + o, b.data() + o, in_place.data() + o, s.n);
      synchronize(ctx);
      std::string const at = ec::dims({{"n", s.n}, {"offset", o}});
      r.emplace_back("out" + at, ec::from(out.host(), o));
      r.emplace_back("d_acc + d" + at, ec::from(acc.host(), o));
      r.emplace_back("a + b in place" + at, ec::from(in_place.host(), o));
    }
    return r;
  }
};

/// SwiGlu forward + backward: fused gate | up rows (ld_in = 2f, the model's layout) and separate
/// buffers with padded strides (every stride wider than f), odd f, one row, LLM-jp-4's FFN widths,
/// misaligned pointers, and gates up to +-90 (exp(-g) overflows float: sigmoid saturates to 0 / 1).
/// Outputs with row gaps start from given values (the gaps must stay as they are); others as NaN.
struct SwiGluShapesCase {
  static constexpr char const* name = "SwiGlu odd and LLM-jp-4 widths, strides, saturation";
  static constexpr double tol = 2e-6;
  struct Shape {
    std::int64_t n, f;
    bool fused;         // gate | up (and d_gate | d_up) side by side in one buffer
    std::int64_t pad;   // extra elements per row of every strided buffer
    std::int64_t offset;
    double range;       // gate and up uniform in (-range, range)
  };
  static constexpr Shape shapes[] = {{1, 1, true, 0, 0, 3.0},      {3, 7, true, 0, 0, 3.0},    {2, 13, false, 3, 0, 3.0},
                                     {4, 40, false, 8, 0, 3.0},    {5, 64, true, 0, 1, 3.0},   {3, 24, true, 0, 0, 90.0},
                                     {2, 7168, true, 0, 0, 3.0},   {1, 14336, true, 0, 0, 3.0}, {2, 7168, false, 5, 1, 3.0}};

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    namespace ec = elementwise_cases;
    Outputs r;
    std::uint64_t stream = 300;
    for (Shape const& s : shapes) {
      std::int64_t const o = s.offset, f = s.f, n = s.n;
      std::int64_t const ld_in = (s.fused ? 2 * f : f) + s.pad, ld_h = f + s.pad, ld_d = ld_in;
      std::size_t const in_len = ec::sz(n * ld_in + o), h_len = ec::sz(n * ld_h + o);
      auto out_buf = [&](std::size_t len, std::uint64_t st) {
        return s.pad == 0 ? Dev<B, T>::output(len) : Dev<B, T>(uniform(len, st));
      };
      Dev<B, T> gate(uniform(in_len, stream, -s.range, s.range)), up(uniform(in_len, stream + 1, -s.range, s.range));
      Dev<B, T> d_h(uniform(h_len, stream + 2)), h = out_buf(h_len, stream + 3);
      Dev<B, T> d_gate = out_buf(in_len, stream + 4), d_up = out_buf(in_len, stream + 5);
      stream += 10;
      T const* g = gate.data() + o;
      T const* u = s.fused ? g + f : up.data() + o;
      T* dg = d_gate.data() + o;
      T* du = s.fused ? dg + f : d_up.data() + o;
      ops::SwiGlu<B>::forward(ctx, g, u, ld_in, h.data() + o, ld_h, n, f);
      ops::SwiGlu<B>::backward(ctx, d_h.data() + o, ld_h, g, u, ld_in, dg, du, ld_d, n, f);
      synchronize(ctx);
      std::string const at = ec::dims({{"n", n}, {"f", f}, {"fused", s.fused}, {"pad", s.pad}, {"offset", o}});
      r.emplace_back("h" + at, ec::from(h.host(), o));
      r.emplace_back(s.fused ? "d_gate | d_up" + at : "d_gate" + at, ec::from(d_gate.host(), o));
      if (!s.fused) r.emplace_back("d_up" + at, ec::from(d_up.host(), o));
    }
    return r;
  }
};

/// Rope tables, apply and inverse: q and k of LLM-jp-4's fused qkv rows (1.3B: 16 query heads and 8 KV
/// heads of 128 in rows of 4096; 7.7B: 32 and 8 in rows of 6144; base 500000), all 4096 positions of
/// the tables with one head applied at each, odd half widths (head_dim 2, 6, 10, and 7: its last
/// element stays), one position, and a misaligned x. x rows are wider than the heads (ld), so every
/// x starts from given values.
struct RopeShapesCase {
  static constexpr char const* name = "Rope LLM-jp-4 qkv rows, 4096 positions, odd head_dim";
  static constexpr double tol = 2e-6;
  struct Shape {
    std::int64_t batch, seq, heads, head_dim, ld, first;  // x = row + first (q at 0, k after the q heads)
    std::int64_t offset;
    double base;
  };
  static constexpr Shape shapes[] = {
      {1, 3, 16, 128, 4096, 0, 0, 500000.0}, {1, 3, 8, 128, 4096, 2048, 0, 500000.0},
      {1, 2, 32, 128, 6144, 0, 0, 500000.0}, {1, 2, 8, 128, 6144, 4096, 0, 500000.0},
      {1, 4096, 1, 128, 128, 0, 0, 500000.0}, {3, 1, 1, 6, 7, 0, 0, 10000.0},
      {2, 5, 3, 10, 31, 0, 0, 10000.0},       {1, 1, 1, 2, 2, 0, 0, 10000.0},
      {2, 3, 2, 7, 15, 1, 0, 10000.0},
      {1, 4, 2, 16, 32, 0, 1, 10000.0}};

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    namespace ec = elementwise_cases;
    Outputs r;
    std::uint64_t stream = 400;
    for (Shape const& s : shapes) {
      std::int64_t const half = s.head_dim / 2, o = s.offset + s.first;
      std::size_t const len = ec::sz(s.batch * s.seq * s.ld + s.offset);
      Dev<B, S> cos_t = Dev<B, S>::output(ec::sz(s.seq * half)), sin_t = Dev<B, S>::output(ec::sz(s.seq * half));
      Dev<B, T> x(uniform(len, stream)), d(uniform(len, stream + 1));
      stream += 10;
      ops::Rope<B>::tables(ctx, cos_t.data(), sin_t.data(), s.seq, s.head_dim, s.base);
      ops::Rope<B>::apply(ctx, x.data() + o, s.batch, s.seq, s.heads, s.head_dim, s.ld, cos_t.data(), sin_t.data(), false);
      ops::Rope<B>::apply(ctx, d.data() + o, s.batch, s.seq, s.heads, s.head_dim, s.ld, cos_t.data(), sin_t.data(), true);
      synchronize(ctx);
      std::string const at = ec::dims({{"B", s.batch}, {"T", s.seq}, {"heads", s.heads}, {"hd", s.head_dim},
                                       {"ld", s.ld}, {"first", s.first}, {"offset", s.offset}});
      if (s.seq > 1) {  // position 0 alone: cos 1 and sin 0 in every type, no comparison of two computations
        r.emplace_back("cos" + at, cos_t.host());
        r.emplace_back("sin" + at, sin_t.host());
      }
      r.emplace_back("rotated" + at, ec::from(x.host(), s.offset));
      r.emplace_back("inverse" + at, ec::from(d.host(), s.offset));
    }
    return r;
  }
};

/// Embedding forward + backward (added to given d_table values): one token, odd widths, LLM-jp-4's
/// hidden sizes, repeated tokens whose sorted runs cross the CUDA backward's 64-entry chunks (a token
/// 1 in 3 positions; one token everywhere; runs of every length), the first and last table rows, and
/// tables / activations one element past their alignment.
struct EmbeddingShapesCase {
  static constexpr char const* name = "Embedding odd and LLM-jp-4 widths, long runs of one token";
  static constexpr double tol = 1e-6;
  enum class Ids { spread, one_in_three, all_same, runs };
  struct Shape {
    std::int64_t rows, c, n;
    Ids ids;
    std::int64_t offset;  // elements the table, out and d_out pointers sit past their buffers' start
  };
  static constexpr Shape shapes[] = {{5, 1, 1, Ids::spread, 0},        {13, 7, 9, Ids::spread, 0},
                                     {37, 2048, 150, Ids::one_in_three, 0}, {9, 4096, 3, Ids::spread, 0},
                                     {11, 130, 200, Ids::all_same, 0},  {23, 33, 300, Ids::runs, 0},
                                     {37, 2048, 70, Ids::one_in_three, 1}, {6, 9, 5, Ids::spread, 1}};

  static std::vector<std::int32_t> ids(Shape const& s) {
    std::vector<std::int32_t> t(elementwise_cases::sz(s.n));
    auto const rows = static_cast<std::int32_t>(s.rows);
    for (std::int32_t i = 0; i < static_cast<std::int32_t>(s.n); ++i) {
      std::int32_t v = 0;
      switch (s.ids) {
        case Ids::spread: v = (i * 7 + 3) % rows; break;
        case Ids::one_in_three: v = i % 3 == 0 ? 3 : (i * 7) % rows; break;
        case Ids::all_same: v = rows - 1; break;
        case Ids::runs: v = static_cast<std::int32_t>((static_cast<std::int64_t>(i) * i) % rows); break;
      }
      t[static_cast<std::size_t>(i)] = v;
    }
    if (s.n > 1) t[0] = 0, t.back() = rows - 1;  // the table's first and last rows
    return t;
  }

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    namespace ec = elementwise_cases;
    Outputs r;
    std::uint64_t stream = 500;
    for (Shape const& s : shapes) {
      std::int64_t const o = s.offset;
      DevInt<B, std::int32_t> tok(ids(s));
      Dev<B, W> table(uniform(ec::sz(s.rows * s.c + o), stream));
      Dev<B, T> d_out(uniform(ec::sz(s.n * s.c + o), stream + 1)), out = Dev<B, T>::output(ec::sz(s.n * s.c + o));
      Dev<B, G> d_table(uniform(ec::sz(s.rows * s.c), stream + 2));
      stream += 10;
      ops::Embedding<B>::forward(ctx, tok.data(), table.data() + o, out.data() + o, s.n, s.c, s.rows);
      ops::Embedding<B>::backward(ctx, tok.data(), d_out.data() + o, d_table.data(), s.n, s.c);
      synchronize(ctx);
      std::string const at = ec::dims({{"rows", s.rows}, {"c", s.c}, {"n", s.n}, {"ids", static_cast<std::int64_t>(s.ids)},
                                       {"offset", o}});
      r.emplace_back("out" + at, ec::from(out.host(), o));
      r.emplace_back("d_table (accumulated)" + at, d_table.host());
    }
    return r;
  }
};

/// Fill: Philox normals at odd lengths (the last element alone in its Philox block), one element, a
/// seed and stream with high 32-bit halves set, means and deviations whose product and sum both round
/// (a fused and an unfused mean + std * N differ in some elements); a constant exact in bf16; zero_bytes over a prefix of
/// a constant-filled buffer (an odd number of elements) and over 0 bytes. Exact outputs (see the file
/// comment): the lead's harness compares them for equality, not with a tolerance.
struct FillCase {
  static constexpr char const* name = "Fill normal, constant, zero_bytes (exact)";
  static constexpr double tol = 0.0;
  static constexpr bool bitwise = true;  // against the CPU in the same policy, bit for bit
  struct Normal {
    std::int64_t n;
    std::uint64_t seed, stream;
    double mean, sigma;
  };
  static constexpr Normal normals[] = {{1001, 1234, 7, 0.01, 0.02},
                                       {1, 0, 0, 1.5, 0.3},
                                       {4099, 0xFFFFFFFF00001234ULL, (std::uint64_t{1} << 40) + 3, -0.25, 0.7}};

  template <class B, class P>
  static Outputs run(ops::Ctx<B>& ctx) {
    KUMIKI_CASE_TYPES(P);
    namespace ec = elementwise_cases;
    Outputs r;
    for (Normal const& s : normals) {
      Dev<B, W> p = Dev<B, W>::output(ec::sz(s.n));
      ops::Fill<B>::normal(ctx, p.data(), s.n, s.seed, s.stream, s.mean, s.sigma);
      synchronize(ctx);
      r.emplace_back("normal" + ec::dims({{"n", s.n}, {"seed lo", static_cast<std::int64_t>(s.seed & 0xFFFFFFFFu)}}),
                     p.host());
    }
    std::int64_t const n = 37, zeroed = 13;
    Dev<B, W> c = Dev<B, W>::output(ec::sz(n)), cz = Dev<B, W>::output(ec::sz(n));
    ops::Fill<B>::constant(ctx, c.data(), n, from_double<W>(0.375));
    ops::Fill<B>::constant(ctx, cz.data(), n, from_double<W>(-1.5));
    ops::Fill<B>::zero_bytes(ctx, cz.data(), ec::sz(zeroed) * sizeof(W));
    ops::Fill<B>::zero_bytes(ctx, c.data(), 0);
    synchronize(ctx);
    r.emplace_back("constant 0.375", c.host());
    r.emplace_back("constant -1.5, first 13 zeroed", cz.host());
    return r;
  }
};

}  // namespace kumiki_test::backend_ops
