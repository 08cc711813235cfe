// attn_test.cpp: kumiki's CUDA attention kernels run on the emulator (cuda_emu.hpp) against a double-precision
// host reference: causal GQA attention with an optional document mask, forward (o, lse) and backward (d_q, d_k,
// d_v), fp32 and bf16, plus a bitwise comparison of a normal-order run with a reversed-order run.
//
// The host logic of Attention<Cuda>::forward / backward (Problem, grids, smem bytes, the row_dot / dkdv /
// dkdv_reduce / dq sequence, the partial buffer) is replicated in run_forward / run_backward; a kernel "path"
// (simt: attention.cuh's CUDA-core kernels; mma: attention_mma.cuh's tensor-core kernels) is chosen per case
// in the table in main(). Usage: attn_test [substring ...]   (runs the cases whose label contains any substring)
// Each case runs twice: (0) blocks and threads in order, round robin: its errors are reported; (1) blocks and
// threads reversed and greedy (a thread / warp runs ahead as far as barriers let it; NO_GREEDY=1: plain
// reversed round robin): its outputs must equal run 0's bitwise ("rev bitwise=", else "DIFFERS": a race or a
// missing barrier). Also checked: no NaN / inf in the outputs, the row padding (ld > width) left unwritten.
#include <chrono>
#include <cmath>
#include <cstdio>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "attention_kernels.hpp"  // gen/: attention.cuh's namespace attention_cuda (device code), prepped

#include <kumiki/ops/cuda/attention_mma.cuh>  // gen/ copy (prepped) wins over include/'s by -I order

namespace ac = kumiki::ops::attention_cuda;
using kumiki::bf16;

// ---------------------------------------------------------------------------------------------------------
// Kernel paths.
enum class Path { simt, mma };
char const* path_name(Path p) { return p == Path::simt ? "simt" : "mma"; }

/// The kernels of `path` for head_dim, as Attention<Cuda> picks them (attention.cuh's Passes): SIMT, the
/// smallest instantiated D holding head_dim; mma, head_dim 64 / 128, bf16 only. False when the path has none.
/// To test another D, add a branch (each D costs compile time).
template <class T>
bool kernels_for(Path path, int head_dim, ac::Passes<T>& out) {
  if (path == Path::simt) {
    if (head_dim <= 64)
      out = ac::cuda_core_passes<64, T>();
    else if (head_dim <= 128)
      out = ac::cuda_core_passes<128, T>();
    else
      return false;
    return true;
  }
  if constexpr (std::is_same_v<T, bf16>) {
    if (head_dim == 64) return out = ac::tensor_core_passes<64>(), true;
    if (head_dim == 128) return out = ac::tensor_core_passes<128>(), true;
  }
  return false;
}

// ---------------------------------------------------------------------------------------------------------
// Problem, buffers, launches (Attention<Cuda>'s host code: its make_problem and vec_aligned, the launches
// replicated).
using Shape = kumiki::ops::AttentionShape;  // batch, seq, heads, groups, head_dim, ld_q, ld_k, ld_v, ld_o

template <class T>
struct Bufs {
  emu::GuardedBuffer<T> q, k, v, o, d_o, d_q, d_k, d_v;
  emu::GuardedBuffer<float> lse, delta, partial;
  emu::GuardedBuffer<std::int32_t> doc;
  std::size_t start_offset = 0;  // elements: q, k, v, d_o, outputs start this far into their buffers
};

template <class T>
void run_forward(ac::Passes<T> const& K, Shape const& s, Bufs<T>& b, float scale, std::int32_t const* doc,
                 std::size_t off) {
  T const *q = b.q.data() + off, *k = b.k.data() + off, *v = b.v.data() + off;
  bool const vec = ac::vec_aligned(q, s.ld_q) && ac::vec_aligned(k, s.ld_k) && ac::vec_aligned(v, s.ld_v);
  ac::Problem const p = ac::make_problem(s, doc, scale, vec);
  emu::launch(K.forward, dim3(p.tiles, p.heads, p.batch), dim3(K.threads), K.forward_smem, p, q, k, v,
              b.o.data() + off, b.lse.data());
}

template <class T>
void run_backward(ac::Passes<T> const& K, Shape const& s, Bufs<T>& b, float scale, std::int32_t const* doc,
                  std::size_t off, int slices) {
  T const *q = b.q.data() + off, *k = b.k.data() + off, *v = b.v.data() + off, *d_o = b.d_o.data() + off;
  T const* o = b.o.data() + off;
  bool const vec = ac::vec_aligned(q, s.ld_q) && ac::vec_aligned(k, s.ld_k) && ac::vec_aligned(v, s.ld_v) && ac::vec_aligned(d_o, s.ld_o);
  ac::Problem const p = ac::make_problem(s, doc, scale, vec);
  std::int64_t const rows = static_cast<std::int64_t>(s.batch) * s.seq * s.heads;
  constexpr int rows_per_block = ac::kThreads / 32;
  std::int64_t const blocks = (rows + rows_per_block - 1) / rows_per_block;
  std::int64_t const plane = static_cast<std::int64_t>(s.batch) * s.seq * s.groups * s.head_dim;
  std::int64_t const reduce_blocks = (plane + ac::kThreads - 1) / ac::kThreads;
  b.delta = emu::GuardedBuffer<float>(static_cast<std::size_t>(rows));
  b.partial = emu::GuardedBuffer<float>(slices > 1 ? static_cast<std::size_t>(2 * slices * plane) : 0);
  float* const partial = slices > 1 ? b.partial.data() : nullptr;
  emu::launch(ac::row_dot_kernel<T>, dim3(static_cast<unsigned>(blocks)), dim3(ac::kThreads), 0, p, o, d_o,
              b.delta.data());
  auto* const dkdv = slices > 1 ? K.dkdv_split : K.dkdv;
  emu::launch(dkdv, dim3(p.tiles, p.groups * slices, p.batch), dim3(K.threads), K.dkdv_smem, p, slices, q, k, v, d_o,
              static_cast<float const*>(b.lse.data()), static_cast<float const*>(b.delta.data()), b.d_k.data() + off,
              b.d_v.data() + off, partial);
  if (slices > 1)
    emu::launch(ac::dkdv_reduce_kernel<T>, dim3(static_cast<unsigned>(reduce_blocks)), dim3(ac::kThreads), 0, p, slices,
                static_cast<float const*>(partial), b.d_k.data() + off, b.d_v.data() + off);
  emu::launch(K.dq, dim3(p.tiles, p.heads, p.batch), dim3(K.threads), K.dq_smem, p, q, k, v, d_o,
              static_cast<float const*>(b.lse.data()), static_cast<float const*>(b.delta.data()), b.d_q.data() + off);
}

// ---------------------------------------------------------------------------------------------------------
// Reference (double).
struct Ref {
  std::vector<double> o, lse, d_q, d_k, d_v;  // o, d_q: (B T, H, hd); d_k, d_v: (B T, G, hd); lse (B, H, T)
};

/// Inputs as the kernel sees them (already rounded to bf16 for bf16), packed (B T, heads or groups, hd).
Ref reference(Shape const& s, std::vector<float> const& q, std::vector<float> const& k, std::vector<float> const& v,
              std::vector<float> const& d_o, std::vector<std::int32_t> const& doc, bool docs, double scale) {
  int const B = s.batch, T = s.seq, H = s.heads, G = s.groups, E = s.head_dim, per = H / G;
  Ref r;
  r.o.assign(static_cast<std::size_t>(B) * T * H * E, 0.0);
  r.d_q.assign(r.o.size(), 0.0);
  r.lse.assign(static_cast<std::size_t>(B) * H * T, 0.0);
  r.d_k.assign(static_cast<std::size_t>(B) * T * G * E, 0.0);
  r.d_v.assign(r.d_k.size(), 0.0);
  std::vector<double> sc(T), pr(T);
  for (int b = 0; b < B; ++b)
    for (int h = 0; h < H; ++h) {
      int const g = h / per;
      auto Q = [&](int t, int d) { return static_cast<double>(q[((static_cast<std::size_t>(b) * T + t) * H + h) * E + d]); };
      auto DO = [&](int t, int d) { return static_cast<double>(d_o[((static_cast<std::size_t>(b) * T + t) * H + h) * E + d]); };
      auto Kf = [&](int t, int d) { return static_cast<double>(k[((static_cast<std::size_t>(b) * T + t) * G + g) * E + d]); };
      auto Vf = [&](int t, int d) { return static_cast<double>(v[((static_cast<std::size_t>(b) * T + t) * G + g) * E + d]); };
      for (int t = 0; t < T; ++t) {
        int const first = docs ? doc[static_cast<std::size_t>(b) * T + t] : 0;
        double m = -INFINITY;
        for (int c = first; c <= t; ++c) {
          double dot = 0;
          for (int d = 0; d < E; ++d) dot += Q(t, d) * Kf(c, d);
          sc[c] = scale * dot;
          m = std::max(m, sc[c]);
        }
        double l = 0;
        for (int c = first; c <= t; ++c) l += std::exp(sc[c] - m);
        double const lse = m + std::log(l);
        r.lse[(static_cast<std::size_t>(b) * H + h) * T + t] = lse;
        double* const o_t = &r.o[((static_cast<std::size_t>(b) * T + t) * H + h) * E];
        for (int c = first; c <= t; ++c) {
          pr[c] = std::exp(sc[c] - lse);
          for (int d = 0; d < E; ++d) o_t[d] += pr[c] * Vf(c, d);
        }
        double delta = 0;
        for (int d = 0; d < E; ++d) delta += DO(t, d) * o_t[d];
        double* const dq_t = &r.d_q[((static_cast<std::size_t>(b) * T + t) * H + h) * E];
        for (int c = first; c <= t; ++c) {
          double dp = 0;
          for (int d = 0; d < E; ++d) dp += DO(t, d) * Vf(c, d);
          double const ds = pr[c] * (dp - delta);
          double* const dk_c = &r.d_k[((static_cast<std::size_t>(b) * T + c) * G + g) * E];
          double* const dv_c = &r.d_v[((static_cast<std::size_t>(b) * T + c) * G + g) * E];
          for (int d = 0; d < E; ++d) {
            dq_t[d] += scale * ds * Kf(c, d);
            dk_c[d] += scale * ds * Q(t, d);
            dv_c[d] += pr[c] * DO(t, d);
          }
        }
      }
    }
  return r;
}

// ---------------------------------------------------------------------------------------------------------
// Cases.
struct Case {
  char const* name;
  int B, T, H, G, hd;
  bool docs;
  int slices;
  Path path;
  bool bf16;
  int ld_pad = 0;         // extra elements per row in q, k, v, o (vec off unless a multiple of 8)
  std::size_t off = 0;    // elements: tensors start this far into their buffers (misalignment)
};

float to_float(float x) { return x; }
float to_float(bf16 x) { return x.to_float(); }
template <class T>
T from_float(float x) {
  if constexpr (std::is_same_v<T, float>)
    return x;
  else
    return bf16(x);
}

struct Errors {
  double o = 0, lse = 0, d_q = 0, d_k = 0, d_v = 0;
  bool nonfinite = false, pad_touched = false;
};

template <class T>
double rel_l2(T const* x, std::int64_t ld, std::vector<double> const& ref, std::int64_t rows, int units, int E,
              bool& nonfinite, bool& pad_touched) {
  double num = 0, den = 0;
  for (std::int64_t r = 0; r < rows; ++r) {
    for (int u = 0; u < units; ++u)
      for (int d = 0; d < E; ++d) {
        double const a = to_float(x[r * ld + u * E + d]), e = ref[(r * units + u) * E + d];
        if (!std::isfinite(a)) nonfinite = true;
        num += (a - e) * (a - e);
        den += e * e;
      }
    for (std::int64_t c = static_cast<std::int64_t>(units) * E; c < ld; ++c) {  // the row's padding: untouched
      unsigned char bytes[sizeof(T)];
      std::memcpy(bytes, &x[r * ld + c], sizeof(T));
      for (unsigned char by : bytes)
        if (by != 0xff) pad_touched = true;
    }
  }
  return den > 0 ? std::sqrt(num / den) : std::sqrt(num);
}

struct Outputs {
  std::vector<unsigned char> bytes;
};

template <class T>
Outputs snapshot(Bufs<T> const& b) {
  Outputs s;
  auto add = [&](auto const& buf) {
    auto const* p = reinterpret_cast<unsigned char const*>(buf.data());
    s.bytes.insert(s.bytes.end(), p, p + buf.size() * sizeof(*buf.data()));
  };
  add(b.o), add(b.lse), add(b.d_q), add(b.d_k), add(b.d_v);
  return s;
}

template <class T>
bool run_case(Case const& c, std::string const& label) {
  int const B = c.B, Tn = c.T, H = c.H, G = c.G, E = c.hd;
  ac::Passes<T> K{};
  if (!kernels_for<T>(c.path, E, K)) {
    std::printf("%-44s SKIP (no %s kernels for this head_dim / type)\n", label.c_str(), path_name(c.path));
    return true;
  }
  Shape s{B, Tn, H, G, E, H * E + c.ld_pad, G * E + c.ld_pad, G * E + c.ld_pad, H * E + c.ld_pad};
  std::mt19937_64 rng(1234 + static_cast<unsigned>(Tn) * 7 + static_cast<unsigned>(H) * 131 + E);
  std::normal_distribution<float> nd(0.0f, 1.0f);
  std::size_t const toks = static_cast<std::size_t>(B) * Tn;
  auto gen = [&](int units, float mul) {
    std::vector<float> x(toks * units * E);
    for (float& e : x) e = to_float(from_float<T>(mul * nd(rng)));  // as the kernel will read it
    return x;
  };
  std::vector<float> q = gen(H, 2.0f), k = gen(G, 1.0f), v = gen(G, 1.0f), d_o = gen(H, 1.0f);
  // Documents: an EOD token ends (and belongs to) its document; doc_start[t] = the position after the last
  // EOD strictly before t. EODs at random (about 1 in 40) plus one at 63 (a document starting on a tile edge).
  std::vector<std::int32_t> doc(toks, 0);
  if (c.docs) {
    for (int b = 0; b < B; ++b) {
      std::int32_t start = 0;
      for (int t = 0; t < Tn; ++t) {
        doc[static_cast<std::size_t>(b) * Tn + t] = start;
        bool const eod = rng() % 40 == 0 || t == 63 || (b == 1 && t == 10);
        if (eod) start = t + 1;
      }
    }
  }
  double const scale = 1.0 / std::sqrt(static_cast<double>(E));
  Ref const ref = reference(s, q, k, v, d_o, doc, c.docs, static_cast<double>(static_cast<float>(scale)));

  // Device buffers (guarded, 0xFF-filled); inputs copied in with the row strides.
  std::size_t const off = c.off;
  auto dev_in = [&](std::vector<float> const& x, int units, std::int64_t ld) {
    emu::GuardedBuffer<T> buf(off + toks * ld);
    for (std::size_t t = 0; t < toks; ++t)
      for (int e = 0; e < units * E; ++e) buf[off + t * ld + e] = from_float<T>(x[t * units * E + e]);
    return buf;
  };
  Outputs runs[2];
  Errors err;
  for (int run = 0; run < 2; ++run) {
    // Run 0: blocks and threads in order, round robin. Run 1: blocks and threads reversed, greedy (the last
    // thread / warp runs ahead as far as barriers let it): a data race or missing barrier shows as a difference.
    emu::g_default_options.order = run == 0 ? emu::Order::forward : emu::Order::reverse;
    emu::g_default_options.greedy = run == 1 && !std::getenv("NO_GREEDY");
    Bufs<T> b;
    b.q = dev_in(q, H, s.ld_q), b.k = dev_in(k, G, s.ld_k), b.v = dev_in(v, G, s.ld_v), b.d_o = dev_in(d_o, H, s.ld_o);
    b.o = emu::GuardedBuffer<T>(off + toks * s.ld_o);
    b.d_q = emu::GuardedBuffer<T>(off + toks * s.ld_q);
    b.d_k = emu::GuardedBuffer<T>(off + toks * s.ld_k);
    b.d_v = emu::GuardedBuffer<T>(off + toks * s.ld_v);
    b.lse = emu::GuardedBuffer<float>(static_cast<std::size_t>(B) * H * Tn);
    b.doc = emu::GuardedBuffer<std::int32_t>(toks);
    std::memcpy(b.doc.data(), doc.data(), toks * sizeof(std::int32_t));
    std::int32_t const* const docp = c.docs ? b.doc.data() : nullptr;
    float const sc = static_cast<float>(scale);
    run_forward(K, s, b, sc, docp, off);
    run_backward(K, s, b, sc, docp, off, c.slices);
    runs[run] = snapshot(b);
    if (run == 0) {
      err.o = rel_l2(b.o.data() + off, s.ld_o, ref.o, static_cast<std::int64_t>(toks), H, E, err.nonfinite, err.pad_touched);
      err.d_q = rel_l2(b.d_q.data() + off, s.ld_q, ref.d_q, static_cast<std::int64_t>(toks), H, E, err.nonfinite, err.pad_touched);
      err.d_k = rel_l2(b.d_k.data() + off, s.ld_k, ref.d_k, static_cast<std::int64_t>(toks), G, E, err.nonfinite, err.pad_touched);
      err.d_v = rel_l2(b.d_v.data() + off, s.ld_v, ref.d_v, static_cast<std::int64_t>(toks), G, E, err.nonfinite, err.pad_touched);
      bool dummy = false;
      err.lse = rel_l2(b.lse.data(), Tn, ref.lse, static_cast<std::int64_t>(B) * H, 1, Tn, err.nonfinite, dummy);
    }
  }
  emu::g_default_options = emu::LaunchOptions{};
  bool const same = runs[0].bytes == runs[1].bytes;
  double const tol = std::is_same_v<T, float> ? 1e-5 : 1e-2;
  double const worst = std::max({err.o, err.lse, err.d_q, err.d_k, err.d_v});
  bool const ok = worst <= tol && !err.nonfinite && !err.pad_touched && same;
  std::printf("%-44s o %.1e lse %.1e dq %.1e dk %.1e dv %.1e  rev %s%s%s  %s\n", label.c_str(), err.o, err.lse, err.d_q,
              err.d_k, err.d_v, same ? "bitwise=" : "DIFFERS", err.nonfinite ? "  NONFINITE" : "",
              err.pad_touched ? "  PAD-WRITTEN" : "", ok ? "ok" : "FAIL");
  std::fflush(stdout);
  return ok;
}

int main(int argc, char** argv) {
  // name, B, T, H, G, head_dim, docs, slices, path, bf16, ld_pad, offset
  std::vector<Case> cases;
  auto both = [&](Case c) {  // fp32 and bf16 on the SIMT path
    c.bf16 = false;
    cases.push_back(c);
    c.bf16 = true;
    cases.push_back(c);
  };
  both({"tiny", 1, 1, 1, 1, 64, false, 1, Path::simt, false});
  both({"gqa", 2, 100, 4, 2, 64, false, 1, Path::simt, false});
  both({"docs", 1, 130, 4, 1, 128, true, 1, Path::simt, false});
  both({"long", 1, 300, 8, 2, 128, false, 1, Path::simt, false});
  both({"long", 1, 300, 8, 2, 128, false, 2, Path::simt, false});
  both({"long+docs", 1, 300, 8, 2, 128, true, 1, Path::simt, false});
  both({"long+docs", 1, 300, 8, 2, 128, true, 2, Path::simt, false});
  both({"hd40 ld+4 offset 1 (scalar loads)", 2, 70, 4, 2, 40, true, 2, Path::simt, false, 4, 1});
  // Tensor-core path: bf16 only, head_dim 64 / 128, 128 threads.
  cases.push_back({"tiny", 1, 1, 1, 1, 64, false, 1, Path::mma, true});
  cases.push_back({"gqa", 2, 100, 4, 2, 64, false, 1, Path::mma, true});
  cases.push_back({"docs", 1, 130, 4, 1, 128, true, 1, Path::mma, true});
  cases.push_back({"long", 1, 300, 8, 2, 128, false, 1, Path::mma, true});
  cases.push_back({"long", 1, 300, 8, 2, 128, false, 2, Path::mma, true});
  cases.push_back({"long+docs", 1, 300, 8, 2, 128, true, 1, Path::mma, true});
  cases.push_back({"long+docs", 1, 300, 8, 2, 128, true, 2, Path::mma, true});
  cases.push_back({"ld+8 offset 8 (vec loads)", 2, 70, 4, 2, 64, true, 2, Path::mma, true, 8, 8});
  cases.push_back({"ld+4 (scalar loads)", 1, 80, 2, 1, 64, true, 1, Path::mma, true, 4, 0});
  int fails = 0, ran = 0;
  auto const t0 = std::chrono::steady_clock::now();
  for (Case const& c : cases) {
    char label[160];
    std::snprintf(label, sizeof label, "%-4s %-4s %s B%d T%d H%d G%d hd%d s%d", path_name(c.path), c.bf16 ? "bf16" : "fp32",
                  c.name, c.B, c.T, c.H, c.G, c.hd, c.slices);
    bool selected = argc < 2;
    for (int a = 1; a < argc; ++a) selected |= std::strstr(label, argv[a]) != nullptr;
    if (!selected) continue;
    ++ran;
    bool const ok = c.bf16 ? run_case<bf16>(c, label) : run_case<float>(c, label);
    fails += !ok;
  }
  double const secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  std::printf("attn_test: %d case(s), %d failed, %.1f s (deepest fiber stack %zu of %zu bytes)\n", ran, fails, secs,
              emu::stack_high_water(), emu::stack_size());
  return fails ? 1 : 0;
}
