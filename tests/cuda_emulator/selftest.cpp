// selftest.cpp: checks of the emulator itself (cuda_emu.hpp and the fake mma.cuh).
#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <functional>
#include <random>
#include <string>
#include <vector>

#include "kumiki/ops/cuda/mma.cuh"

using kumiki::bf16;
namespace mma = kumiki::ops::mma;

static int g_fail = 0;
#define CHECK(cond, ...)                                  \
  do {                                                    \
    if (!(cond)) {                                        \
      ++g_fail;                                           \
      std::printf("  FAIL %s:%d: ", __FILE__, __LINE__);  \
      std::printf(__VA_ARGS__);                           \
      std::printf("\n");                                  \
    }                                                     \
  } while (0)

// (a) block reduction: static and dynamic shared memory, __syncthreads, tree sum; and uninitialised smem.
__global__ void reduce_kernel(int const* in, int n, long long* out, unsigned* garbage) {
  __shared__ long long part[256];
  extern __shared__ __align__(16) unsigned char dyn[];
  unsigned* const probe = reinterpret_cast<unsigned*>(dyn);
  int const tid = static_cast<int>(threadIdx.x);
  if (tid == 0) garbage[blockIdx.x] = probe[5];  // never written in this block: 0xFFFFFFFF
  __syncthreads();
  long long acc = 0;
  for (int i = static_cast<int>(blockIdx.x * blockDim.x) + tid; i < n; i += static_cast<int>(gridDim.x * blockDim.x))
    acc += in[i];
  part[tid] = acc;
  probe[tid] = static_cast<unsigned>(tid);  // dynamic smem written (checked to be refilled at the next block)
  __syncthreads();
  for (int s = static_cast<int>(blockDim.x) / 2; s > 0; s /= 2) {
    if (tid < s) part[tid] += part[tid + s];
    __syncthreads();
  }
  if (tid == 0) out[blockIdx.x] = part[0] + (probe[255] == 255u ? 0 : 1000000000LL);
}

// 2-D block, 3-D grid: indices.
__global__ void index_kernel(int* out) {
  int const b = static_cast<int>(blockIdx.x + gridDim.x * (blockIdx.y + gridDim.y * blockIdx.z));
  int const t = static_cast<int>(threadIdx.x + blockDim.x * threadIdx.y);
  out[b * 64 + t] = b * 1000 + t;
}

// (b) shuffles and votes.
__global__ void shuffle_kernel(float const* in, float* out_xor, float* out_bcast, int* out_down, int* out_up,
                               double* out_dbl, unsigned* out_ballot, float* out_half, int* out_any_all) {
  int const t = static_cast<int>(threadIdx.x), lane = t % 32;
  float x = in[t];
  float s = x;
  for (int off = 16; off > 0; off /= 2) s += __shfl_xor_sync(0xffffffffu, s, off);
  out_xor[t] = s;
  out_bcast[t] = __shfl_sync(0xffffffffu, x, 7);
  out_down[t] = __shfl_down_sync(0xffffffffu, t, 3);
  out_up[t] = __shfl_up_sync(0xffffffffu, t, 5, 16);
  double dv = static_cast<double>(t) * 0.5;
  out_dbl[t] = __shfl_sync(0xffffffffu, dv, 31 - lane);
  out_ballot[t] = __ballot_sync(0xffffffffu, lane % 3 == 0);
  float h = x;
  for (int off = 8; off > 0; off /= 2) h = fmaxf(h, __shfl_xor_sync(0xffffffffu, h, off));  // half-warp max
  out_half[t] = h;
  out_any_all[t] = __any_sync(0xffffffffu, lane == 4) * 10 + __all_sync(0xffffffffu, lane < 32) +
                   100 * __all_sync(0xffffffffu, lane < 31);
  __syncwarp();
}

// (c) mma: the warp builds fragments of A (16x16 row-major) and B (16x8 row-major) from the documented layout.
__global__ void mma_kernel(bf16 const* A, bf16 const* B, float const* C, float* D, float* D2) {
  int const l = static_cast<int>(threadIdx.x), g = l / 4, c = l % 4;
  auto pk = [](bf16 lo, bf16 hi) { return static_cast<std::uint32_t>(lo.bits) | (static_cast<std::uint32_t>(hi.bits) << 16); };
  std::uint32_t a[4] = {pk(A[g * 16 + 2 * c], A[g * 16 + 2 * c + 1]), pk(A[(g + 8) * 16 + 2 * c], A[(g + 8) * 16 + 2 * c + 1]),
                        pk(A[g * 16 + 2 * c + 8], A[g * 16 + 2 * c + 9]),
                        pk(A[(g + 8) * 16 + 2 * c + 8], A[(g + 8) * 16 + 2 * c + 9])};
  std::uint32_t b[2] = {pk(B[(2 * c) * 8 + g], B[(2 * c + 1) * 8 + g]), pk(B[(2 * c + 8) * 8 + g], B[(2 * c + 9) * 8 + g])};
  float d[4] = {C[g * 8 + 2 * c], C[g * 8 + 2 * c + 1], C[(g + 8) * 8 + 2 * c], C[(g + 8) * 8 + 2 * c + 1]};
  mma::bf16_16816(d, a, b);
  D[g * 8 + 2 * c] = d[0], D[g * 8 + 2 * c + 1] = d[1], D[(g + 8) * 8 + 2 * c] = d[2], D[(g + 8) * 8 + 2 * c + 1] = d[3];
  // Chain: two D tiles side by side (D | D + 1) rounded to bf16 as the A operand of a product with B again:
  // D2 = [D, D + 1] (16x16) times B (16x8), from 0.
  std::uint32_t a2[4] = {mma::pack_bf16(d[0], d[1]), mma::pack_bf16(d[2], d[3]), mma::pack_bf16(d[0] + 1.0f, d[1] + 1.0f),
                         mma::pack_bf16(d[2] + 1.0f, d[3] + 1.0f)};
  float e[4] = {0, 0, 0, 0};
  mma::bf16_16816(e, a2, b);
  D2[g * 8 + 2 * c] = e[0], D2[g * 8 + 2 * c + 1] = e[1], D2[(g + 8) * 8 + 2 * c] = e[2], D2[(g + 8) * 8 + 2 * c + 1] = e[3];
}

// ldmatrix: a 16x16 bf16 matrix M in shared memory (row stride 24 elements = 48 bytes, rows 16-aligned);
// matrices i = 0..3: M[0:8, 0:8], M[8:16, 0:8], M[0:8, 8:16], M[8:16, 8:16] (the A operand order).
__global__ void ldmatrix_kernel(bf16 const* M, std::uint32_t* R, std::uint32_t* RT) {
  extern __shared__ __align__(16) unsigned char smem[];
  bf16* const s = reinterpret_cast<bf16*>(smem);
  int const l = static_cast<int>(threadIdx.x);
  for (int i = l; i < 256; i += 32) s[(i / 16) * 24 + i % 16] = M[i];
  __syncwarp();
  int const i = l / 8, j = l % 8;
  int const row = j + 8 * (i % 2), col = 8 * (i / 2);
  std::uint32_t r[4], rt[4];
  mma::ldmatrix_x4<false>(r, s + row * 24 + col);
  mma::ldmatrix_x4<true>(rt, s + row * 24 + col);
  for (int k = 0; k < 4; ++k) R[l * 4 + k] = r[k], RT[l * 4 + k] = rt[k];
}

// (d) misuse.
__global__ void deadlock_exit_kernel() {
  if (threadIdx.x < 64) __syncthreads();  // the others exit
}
__global__ void deadlock_mixed_kernel(float* out) {
  float x = 1.0f;
  if (threadIdx.x % 32 < 16)
    x = __shfl_xor_sync(0xffffffffu, x, 1);
  else
    __syncthreads();
  out[threadIdx.x] = x;
}
__global__ void mma_missing_lane_kernel(float* out) {
  float d[4] = {0, 0, 0, 0};
  std::uint32_t a[4] = {0, 0, 0, 0}, b[2] = {0, 0};
  if (threadIdx.x != 5) mma::bf16_16816(d, a, b);
  out[threadIdx.x] = d[0];
}
__global__ void divergent_ops_kernel(float* out) {
  float x = 1.0f;
  if (threadIdx.x == 0)
    x = __shfl_sync(0xffffffffu, x, 0);
  else
    x = __shfl_xor_sync(0xffffffffu, x, 1);
  out[threadIdx.x] = x;
}

/// Runs f in a child process; returns (aborted?, stderr text).
static std::pair<bool, std::string> in_child(std::function<void()> f) {
  int fd[2];
  if (pipe(fd) != 0) return {false, "pipe"};
  std::fflush(stdout);
  pid_t const pid = fork();
  if (pid == 0) {
    close(fd[0]);
    dup2(fd[1], 2);
    f();
    _exit(0);
  }
  close(fd[1]);
  std::string text;
  char buf[4096];
  ssize_t n;
  while ((n = read(fd[0], buf, sizeof buf)) > 0) text.append(buf, static_cast<std::size_t>(n));
  close(fd[0]);
  int status = 0;
  waitpid(pid, &status, 0);
  return {WIFSIGNALED(status) && WTERMSIG(status) == SIGABRT, text};
}

int main() {
  std::mt19937 rng(42);
  // (a)
  {
    int const n = 100000, blocks = 7;
    std::vector<int> in(n);
    long long expect = 0;
    for (int i = 0; i < n; ++i) expect += (in[i] = static_cast<int>(rng() % 2001) - 1000);
    for (auto order : {emu::Order::forward, emu::Order::reverse, emu::Order::shuffled}) {
      std::vector<long long> out(blocks);
      std::vector<unsigned> garbage(blocks);
      emu::launch_opt({order, 7}, reduce_kernel, dim3(blocks), dim3(256), 4096, in.data(), n, out.data(), garbage.data());
      long long total = 0;
      for (long long v : out) total += v;
      bool gar = true;
      for (unsigned g : garbage) gar &= g == 0xffffffffu;
      CHECK(total == expect, "block reduction %lld vs %lld (order %d)", total, expect, static_cast<int>(order));
      CHECK(gar, "dynamic shared memory not 0xFF-filled at block start");
    }
    std::vector<int> idx(2 * 3 * 2 * 64, -1);
    emu::launch(index_kernel, dim3(2, 3, 2), dim3(16, 4), 0, idx.data());
    bool ok = true;
    for (int b = 0; b < 12; ++b)
      for (int t = 0; t < 64; ++t) ok &= idx[b * 64 + t] == b * 1000 + t;
    CHECK(ok, "3-D grid / 2-D block indices");
    std::printf("(a) block reduction (3 orders), smem fill, indices: %s\n", g_fail ? "FAIL" : "ok");
  }
  // (b)
  {
    int const fails0 = g_fail;
    int const n = 64;
    std::vector<float> in(n), xr(n), bc(n), half(n);
    std::vector<int> down(n), up(n), anyall(n);
    std::vector<double> dbl(n);
    std::vector<unsigned> bal(n);
    for (int i = 0; i < n; ++i) in[i] = static_cast<float>(static_cast<int>(rng() % 200) - 100);
    emu::launch(shuffle_kernel, dim3(1), dim3(n), 0, in.data(), xr.data(), bc.data(), down.data(), up.data(), dbl.data(),
                bal.data(), half.data(), anyall.data());
    unsigned ball = 0;
    for (int l = 0; l < 32; ++l)
      if (l % 3 == 0) ball |= 1u << l;
    for (int t = 0; t < n; ++t) {
      int const w = t / 32, lane = t % 32;
      float s = 0, hm = -1e30f;
      for (int l = 0; l < 32; ++l) s += in[w * 32 + l];
      for (int l = 0; l < 16; ++l) hm = std::max(hm, in[w * 32 + (lane / 16) * 16 + l]);
      CHECK(xr[t] == s, "xor sum t=%d: %g vs %g", t, xr[t], s);
      CHECK(bc[t] == in[w * 32 + 7], "broadcast t=%d", t);
      CHECK(down[t] == (lane + 3 < 32 ? t + 3 : t), "shfl_down t=%d: %d", t, down[t]);
      CHECK(up[t] == (lane % 16 >= 5 ? t - 5 : t), "shfl_up width 16 t=%d: %d", t, up[t]);
      CHECK(dbl[t] == (w * 32 + 31 - lane) * 0.5, "double shfl t=%d", t);
      CHECK(bal[t] == ball, "ballot t=%d: %x", t, bal[t]);
      CHECK(half[t] == hm, "half-warp max t=%d", t);
      CHECK(anyall[t] == 11, "any/all t=%d: %d", t, anyall[t]);
    }
    std::printf("(b) shuffles xor/idx/down/up(width 16)/double, ballot/any/all, half-warp max: %s\n",
                g_fail == fails0 ? "ok" : "FAIL");
  }
  // (c)
  {
    int const fails0 = g_fail;
    std::uniform_real_distribution<float> u(-2.0f, 2.0f);
    std::vector<bf16> A(256), B(128);
    std::vector<float> C(128), D(128), D2(128);
    for (auto& x : A) x = bf16(u(rng));
    for (auto& x : B) x = bf16(u(rng));
    for (auto& x : C) x = u(rng);
    emu::launch(mma_kernel, dim3(1), dim3(32), 0, A.data(), B.data(), C.data(), D.data(), D2.data());
    double max_err = 0;
    for (int i = 0; i < 16; ++i)
      for (int j = 0; j < 8; ++j) {
        double s = 0;
        for (int k = 0; k < 16; ++k) s += static_cast<double>(A[i * 16 + k].to_float()) * B[k * 8 + j].to_float();
        float const ref = static_cast<float>(s + C[i * 8 + j]);
        CHECK(D[i * 8 + j] == ref, "mma D(%d,%d) = %.9g vs %.9g", i, j, D[i * 8 + j], ref);
        // chain: row i of [D, D + 1] (bf16) times column j of B
        double s2 = 0;
        for (int k = 0; k < 16; ++k) {
          float const x = k < 8 ? D[i * 8 + k] : D[i * 8 + k - 8] + 1.0f;
          s2 += static_cast<double>(bf16(x).to_float()) * B[k * 8 + j].to_float();
        }
        max_err = std::max(max_err, std::abs(s2 - D2[i * 8 + j]));
        CHECK(std::abs(s2 - D2[i * 8 + j]) <= 1e-6 * (1 + std::abs(s2)), "chained mma (%d,%d): %g vs %g", i, j,
              D2[i * 8 + j], s2);
      }
    // ldmatrix
    std::vector<bf16> M(256);
    for (int i = 0; i < 256; ++i) M[i] = bf16::from_bits(static_cast<std::uint16_t>(i));
    std::vector<std::uint32_t> R(128), RT(128);
    emu::launch(ldmatrix_kernel, dim3(1), dim3(32), 16 * 24 * 2, M.data(), R.data(), RT.data());
    for (int l = 0; l < 32; ++l) {
      int const g = l / 4, c = l % 4;
      for (int i = 0; i < 4; ++i) {
        int const r0 = 8 * (i % 2), c0 = 8 * (i / 2);
        auto m = [&](int r, int cc) { return static_cast<std::uint32_t>(M[(r0 + r) * 16 + c0 + cc].bits); };
        std::uint32_t const want = m(g, 2 * c) | (m(g, 2 * c + 1) << 16);
        std::uint32_t const want_t = m(2 * c, g) | (m(2 * c + 1, g) << 16);
        CHECK(R[l * 4 + i] == want, "ldmatrix lane %d reg %d: %08x vs %08x", l, i, R[l * 4 + i], want);
        CHECK(RT[l * 4 + i] == want_t, "ldmatrix.trans lane %d reg %d: %08x vs %08x", l, i, RT[l * 4 + i], want_t);
      }
    }
    // pack_bf16: round to nearest even, lo in the low half
    CHECK(mma::pack_bf16(1.0f, -2.0f) == (0x3f80u | (0xc000u << 16)), "pack_bf16");
    CHECK(mma::pack_bf16(std::bit_cast<float>(0x3f808000u), std::bit_cast<float>(0x3f818000u)) == (0x3f80u | (0x3f82u << 16)),
          "pack_bf16 ties to even");
    std::printf("(c) mma m16n8k16 vs direct product (bitwise, C + sum in double, one rounding), D -> A chain "
                "(max err %.2g), ldmatrix x4 / trans, pack_bf16: %s\n",
                max_err, g_fail == fails0 ? "ok" : "FAIL");
  }
  // (d)
  {
    int const fails0 = g_fail;
    std::vector<float> out(256);
    struct Case {
      char const* name;
      std::function<void()> f;
      char const* expect;
    };
    Case const cases[] = {
        {"__syncthreads with exited threads", [] { emu::launch(deadlock_exit_kernel, dim3(2), dim3(128), 0); }, "exited"},
        {"half a warp in a shuffle, half in __syncthreads",
         [&] { emu::launch(deadlock_mixed_kernel, dim3(1), dim3(64), 0, out.data()); }, "deadlock"},
        {"one lane skips mma", [&] { emu::launch(mma_missing_lane_kernel, dim3(1), dim3(32), 0, out.data()); }, "exited"},
        {"lanes in different shuffles", [&] { emu::launch(divergent_ops_kernel, dim3(1), dim3(32), 0, out.data()); },
         "divergence"},
    };
    for (Case const& c : cases) {
      auto [aborted, text] = in_child(c.f);
      bool const ok = aborted && text.find(c.expect) != std::string::npos;
      CHECK(ok, "misuse '%s' not detected (aborted %d): %s", c.name, aborted, text.c_str());
      std::string first = text.substr(text.find("FATAL") == std::string::npos ? 0 : text.find("FATAL"));
      first = first.substr(0, first.find('\n'));
      std::printf("    %-48s -> %s\n", c.name, first.c_str());
    }
    std::printf("(d) misuse detection: %s\n", g_fail == fails0 ? "ok" : "FAIL");
  }
  std::printf("selftest: %s (%d failures)\n", g_fail ? "FAILED" : "PASSED", g_fail);
  return g_fail ? 1 : 0;
}
