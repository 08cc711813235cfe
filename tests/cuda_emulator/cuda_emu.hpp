// cuda_emu.hpp: a host-side emulator for CUDA kernels. Force-include it (g++ -include) before any other
// header; run sources through prep.py first (extern __shared__ -> per-launch buffer, CUDA includes removed).
//
// Every CUDA thread of a block runs as a fiber (a 64 KiB stack and a hand-written x86-64 context switch);
// blocks run one after another. Inside a block a round-robin scheduler resumes each runnable fiber until it
// blocks (__syncthreads, a warp collective) or finishes. Misuse aborts with a message:
//   - __syncthreads reached after some thread of the block exited, or a thread exiting while others wait;
//   - a warp collective (shuffle, vote, __syncwarp, mma) that not all lanes of the warp reach, lanes of one
//     warp in different collectives, a lane exiting while its warp waits, a mask missing existing lanes;
//   - a block in which no fiber can run (deadlock): the state of every waiting thread is printed.
// Dynamic shared memory is filled with 0xFF bytes (float NaN, int -1) at every block start and ends at a
// PROT_NONE guard page (overruns past the launch's byte count, rounded up to 128, fault).
// __shared__ becomes `static`: one array per kernel instantiation, valid because blocks run serially (its
// contents persist between blocks, as on hardware they are undefined).
//
// Not emulated: memory races between threads (the scheduler only switches at barriers and collectives, so a
// missing __syncthreads between a write and another thread's read may go unnoticed; run with
// emu::Order::reverse / shuffled and compare bitwise to catch some), the hardware's accumulation order inside
// mma, fast-math intrinsics' exact error, inline PTX (asm), atomics across blocks (serial: trivially exact).
#pragma once

#if defined(__CUDACC__) || defined(__CUDA_ARCH__)
#error "cuda_emu.hpp is for the host compiler only"
#endif

#include <sys/mman.h>
#include <unistd.h>

#include <algorithm>
#include <bit>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <tuple>
#include <type_traits>
#include <utility>
#include <vector>

// ---------------------------------------------------------------------------------------------------------
// Keywords.
#define __global__
#define __device__
#define __host__
#define __constant__
#define __managed__
#define __forceinline__ inline
#define __noinline__ __attribute__((noinline))
#define __launch_bounds__(...)
#define __align__(n) alignas(n)
#define __shared__ static
#define __grid_constant__
#ifndef __restrict__
#define __restrict__ __restrict
#endif

// ---------------------------------------------------------------------------------------------------------
// Vector types.
struct uint3 {
  unsigned x = 0, y = 0, z = 0;
};
struct dim3 {
  unsigned x = 1, y = 1, z = 1;
  constexpr dim3(unsigned x_ = 1, unsigned y_ = 1, unsigned z_ = 1) : x(x_), y(y_), z(z_) {}
  constexpr dim3(uint3 u) : x(u.x), y(u.y), z(u.z) {}
};
struct alignas(8) float2 { float x, y; };
struct alignas(16) float4 { float x, y, z, w; };
struct float3 { float x, y, z; };
struct alignas(8) int2 { int x, y; };
struct alignas(16) int4 { int x, y, z, w; };
struct alignas(8) uint2 { unsigned x, y; };
struct alignas(16) uint4 { unsigned x, y, z, w; };
struct alignas(16) double2 { double x, y; };
struct alignas(4) ushort2 { unsigned short x, y; };
inline float2 make_float2(float x, float y) { return {x, y}; }
inline float4 make_float4(float x, float y, float z, float w) { return {x, y, z, w}; }
inline int2 make_int2(int x, int y) { return {x, y}; }
inline int4 make_int4(int x, int y, int z, int w) { return {x, y, z, w}; }
inline uint2 make_uint2(unsigned x, unsigned y) { return {x, y}; }
inline uint4 make_uint4(unsigned x, unsigned y, unsigned z, unsigned w) { return {x, y, z, w}; }
inline constexpr int warpSize = 32;

// ---------------------------------------------------------------------------------------------------------
// Fibers.
extern "C" void emu_switch_context(void** save_sp, void* new_sp);
// Saves the callee-saved registers and rsp in *save_sp, loads new_sp, restores and returns into the other
// context. Weak, so several translation units including this header link.
__asm__(
    ".pushsection .text\n"
    ".weak emu_switch_context\n"
    ".type emu_switch_context,@function\n"
    "emu_switch_context:\n"
    "  pushq %rbp\n"
    "  pushq %rbx\n"
    "  pushq %r12\n"
    "  pushq %r13\n"
    "  pushq %r14\n"
    "  pushq %r15\n"
    "  subq $8, %rsp\n"
    "  stmxcsr (%rsp)\n"
    "  fnstcw 4(%rsp)\n"
    "  movq %rsp, (%rdi)\n"
    "  movq %rsi, %rsp\n"
    "  ldmxcsr (%rsp)\n"
    "  fldcw 4(%rsp)\n"
    "  addq $8, %rsp\n"
    "  popq %r15\n"
    "  popq %r14\n"
    "  popq %r13\n"
    "  popq %r12\n"
    "  popq %rbx\n"
    "  popq %rbp\n"
    "  ret\n"
    ".size emu_switch_context, .-emu_switch_context\n"
    ".popsection\n");

namespace emu {

/// Order of blocks and of fibers within a block: forward, reversed, or a seeded permutation (fixed per block).
enum class Order { forward, reverse, shuffled };
// (See LaunchOptions::greedy for the other axis of the schedule.)

namespace detail {

[[noreturn]] inline void die(std::string const& msg) {
  std::fprintf(stderr, "\n[cuda_emu] FATAL: %s\n", msg.c_str());
  std::fflush(stderr);
  std::abort();
}

enum class FState { runnable, waiting, finished };

struct Fiber {
  void* sp = nullptr;
  uint3 tid{};
  int linear = 0, warp = 0, lane = 0;
  FState state = FState::runnable;
  unsigned const* wait_ptr = nullptr;  // runnable again once *wait_ptr != wait_val
  unsigned wait_val = 0;
  char const* wait_what = "";
};

struct WarpState {
  int lanes = 0;           // lanes that exist (the last warp of a block may be partial)
  unsigned full_mask = 0;  // bits of the existing lanes
  int arrived = 0, exited = 0;
  unsigned gen = 0;
  void (*op)(void** data, int lanes) = nullptr;
  char const* name = "";
  void* data[32] = {};
};

struct Launch {
  dim3 grid, block;
  uint3 block_idx{};
  std::size_t smem_bytes = 0;
  unsigned char* smem = nullptr;
  int nthreads = 0;
  // block barrier
  int bar_arrived = 0, finished = 0;
  unsigned bar_gen = 0;
  std::vector<WarpState> warps;
  std::vector<Fiber> fibers;
  void (*body)(void*) = nullptr;
  void* body_ctx = nullptr;
};

inline Fiber* g_cur = nullptr;
inline void* g_sched_sp = nullptr;
inline Launch* g_launch = nullptr;
inline Launch g_idle_launch;  // what blockIdx & co. read outside a launch

inline std::string where(Fiber const* f) {
  char buf[160];
  Launch const& L = *g_launch;
  std::snprintf(buf, sizeof buf, "block (%u,%u,%u) thread (%u,%u,%u) [warp %d lane %d]", L.block_idx.x,
                L.block_idx.y, L.block_idx.z, f->tid.x, f->tid.y, f->tid.z, f->warp, f->lane);
  return buf;
}

inline Fiber* current() {
  if (!g_cur) die("a device function (barrier / collective / threadIdx) was called outside a kernel launch");
  return g_cur;
}

inline Launch const& launch_ref() {
  if (!g_cur) die("blockIdx / blockDim / gridDim read outside a kernel launch");
  return *g_launch;
}

/// Back to the scheduler.
inline void yield_to_scheduler() {
  Fiber* const f = g_cur;
  emu_switch_context(&f->sp, g_sched_sp);
}

/// Blocks the current fiber until *ptr != val.
inline void wait_until_changed(unsigned const* ptr, unsigned val, char const* what) {
  Fiber* const f = g_cur;
  f->state = FState::waiting;
  f->wait_ptr = ptr;
  f->wait_val = val;
  f->wait_what = what;
  yield_to_scheduler();
  f->state = FState::runnable;
  f->wait_ptr = nullptr;
}

inline void syncthreads(char const* name = "__syncthreads") {
  Fiber* const f = current();
  Launch& L = *g_launch;
  if (L.finished > 0)
    die(std::string(name) + " reached by " + where(f) + " after " + std::to_string(L.finished) +
        " thread(s) of the block exited (deadlock on hardware / undefined behaviour)");
  if (++L.bar_arrived == L.nthreads) {
    L.bar_arrived = 0;
    ++L.bar_gen;
    return;
  }
  wait_until_changed(&L.bar_gen, L.bar_gen, name);
}

/// A warp collective: every existing lane of the warp deposits `mine`; the last to arrive runs op over all
/// lanes' data (indexed by lane), then all continue. Lanes must all call the same op.
inline void warp_collective(char const* name, void (*op)(void**, int), unsigned mask, void* mine) {
  Fiber* const f = current();
  Launch& L = *g_launch;
  WarpState& w = L.warps[f->warp];
  if ((mask & w.full_mask) != w.full_mask)
    die(std::string(name) + " by " + where(f) + " with mask " + std::to_string(mask) +
        ": the emulator supports full-warp collectives only (mask must cover all existing lanes)");
  if (w.exited > 0)
    die(std::string(name) + " called by " + where(f) + " after " + std::to_string(w.exited) +
        " lane(s) of its warp exited");
  if (w.arrived == 0) {
    w.op = op;
    w.name = name;
  } else if (w.op != op || std::strcmp(w.name, name) != 0) {
    die(std::string("warp divergence: ") + where(f) + " calls " + name + " while " + std::to_string(w.arrived) +
        " lane(s) of its warp wait in " + w.name);
  }
  w.data[f->lane] = mine;
  if (++w.arrived == w.lanes) {
    op(w.data, w.lanes);
    w.arrived = 0;
    ++w.gen;
    return;
  }
  wait_until_changed(&w.gen, w.gen, name);
}

[[noreturn]] inline void fiber_main() {
  Fiber* const f = g_cur;
  try {
    g_launch->body(g_launch->body_ctx);
  } catch (std::exception const& e) {
    die(std::string("exception in kernel at ") + where(f) + ": " + e.what());
  } catch (...) {
    die("unknown exception in kernel at " + where(f));
  }
  Fiber* const me = g_cur;
  Launch& L = *g_launch;
  me->state = FState::finished;
  ++L.finished;
  WarpState& w = L.warps[me->warp];
  ++w.exited;
  if (L.bar_arrived > 0)
    die(where(me) + " exited while " + std::to_string(L.bar_arrived) +
        " thread(s) of the block wait in __syncthreads (deadlock on hardware)");
  if (w.arrived > 0)
    die(where(me) + " exited while " + std::to_string(w.arrived) + " lane(s) of its warp wait in " + w.name);
  emu_switch_context(&me->sp, g_sched_sp);
  die("finished fiber resumed");
}

/// Fiber stacks: mmap'ed, a PROT_NONE guard page below each; kept between launches.
struct StackPool {
  std::size_t size = 0;  // usable bytes per stack
  std::vector<unsigned char*> bases;
  unsigned char* top(int i) { return bases[i] + 4096 + size; }
  /// Most bytes any stack has used so far (fresh pages are zero; the lowest nonzero byte marks the deepest use).
  std::size_t high_water() const {
    std::size_t most = 0;
    for (unsigned char* b : bases) {
      unsigned char const* p = b + 4096;
      std::size_t i = 0;
      while (i < size && p[i] == 0) ++i;
      most = std::max(most, size - i);
    }
    return most;
  }
  void ensure(int n) {
    if (size == 0) {
      std::size_t kb = 64;
      if (char const* e = std::getenv("EMU_STACK_KB")) kb = std::strtoul(e, nullptr, 10);
      size = std::max<std::size_t>(16, kb) * 1024;
      size = (size + 4095) / 4096 * 4096;
    }
    while (static_cast<int>(bases.size()) < n) {
      void* p = mmap(nullptr, size + 4096, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) die("mmap of a fiber stack failed");
      mprotect(p, 4096, PROT_NONE);
      bases.push_back(static_cast<unsigned char*>(p));
    }
  }
};
inline StackPool g_stacks;

/// The dynamic shared memory: ends at a guard page.
struct SmemArea {
  unsigned char* map = nullptr;
  std::size_t map_bytes = 0;
  unsigned char* get(std::size_t bytes) {
    std::size_t const rounded = (bytes + 127) / 128 * 128;
    std::size_t const need = (rounded + 4095) / 4096 * 4096 + 4096;
    if (need > map_bytes) {
      if (map) munmap(map, map_bytes);
      void* p = mmap(nullptr, need, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
      if (p == MAP_FAILED) die("mmap of shared memory failed");
      map = static_cast<unsigned char*>(p);
      map_bytes = need;
      mprotect(map + need - 4096, 4096, PROT_NONE);
    }
    return map + map_bytes - 4096 - rounded;
  }
};
inline SmemArea g_smem;

inline void prepare_fiber(Fiber& f, unsigned char* top) {
  // Stack at first switch: 8 bytes (mxcsr, x87 control word), 6 callee-saved registers, the return address
  // (fiber_main), a zero fake return address for fiber_main. top is 16-aligned; fiber_main is entered with
  // rsp = top - 8 (== 8 mod 16, as after a call).
  auto* sp = reinterpret_cast<std::uint64_t*>(top);
  *--sp = 0;                                                      // fiber_main's return address
  *--sp = reinterpret_cast<std::uint64_t>(&fiber_main);           // ret target
  for (int i = 0; i < 6; ++i) *--sp = 0;                          // rbp rbx r12 r13 r14 r15
  std::uint32_t mxcsr = 0;
  std::uint16_t fcw = 0;
  __asm__ volatile("stmxcsr %0" : "=m"(mxcsr));
  __asm__ volatile("fnstcw %0" : "=m"(fcw));
  *--sp = static_cast<std::uint64_t>(mxcsr) | (static_cast<std::uint64_t>(fcw) << 32);
  f.sp = sp;
}

inline void deadlock(Launch& L) {
  std::string msg = "deadlock in block (" + std::to_string(L.block_idx.x) + "," + std::to_string(L.block_idx.y) +
                    "," + std::to_string(L.block_idx.z) + "): no thread can run. " + std::to_string(L.finished) +
                    " exited, " + std::to_string(L.bar_arrived) + " wait in __syncthreads.";
  // Per warp: which lanes wait where.
  for (std::size_t wi = 0; wi < L.warps.size(); ++wi) {
    std::string line;
    for (Fiber const& f : L.fibers) {
      if (f.warp != static_cast<int>(wi)) continue;
      char buf[96];
      if (f.state == FState::finished)
        std::snprintf(buf, sizeof buf, " %d:exited", f.lane);
      else
        std::snprintf(buf, sizeof buf, " %d:%s", f.lane, f.wait_what);
      line += buf;
    }
    msg += "\n  warp " + std::to_string(wi) + ":" + line;
  }
  die(msg);
}

/// Runs one block: every fiber until all finished.
inline void run_block(Launch& L, Order order, bool greedy, std::uint64_t seed) {
  int const n = L.nthreads;
  std::vector<int> perm(n);
  std::iota(perm.begin(), perm.end(), 0);
  if (order == Order::reverse) std::reverse(perm.begin(), perm.end());
  if (order == Order::shuffled) {
    std::mt19937_64 rng(seed);
    std::shuffle(perm.begin(), perm.end(), rng);
  }
  g_stacks.ensure(n);
  L.bar_arrived = 0;
  L.finished = 0;
  for (WarpState& w : L.warps) {
    w.arrived = 0;
    w.exited = 0;
    w.op = nullptr;
  }
  if (L.smem_bytes) std::memset(L.smem, 0xff, L.smem_bytes);
  for (int i = 0; i < n; ++i) {
    Fiber& f = L.fibers[i];
    f.state = FState::runnable;
    f.wait_ptr = nullptr;
    prepare_fiber(f, g_stacks.top(i));
  }
  int done = 0;
  while (done < n) {
    bool ran = false;
    for (int k = 0; k < n; ++k) {
      Fiber& f = L.fibers[perm[k]];
      if (f.state == FState::finished) continue;
      if (f.state == FState::waiting && *f.wait_ptr == f.wait_val) continue;
      ran = true;
      g_cur = &f;
      emu_switch_context(&g_sched_sp, f.sp);
      g_cur = nullptr;
      if (f.state == FState::finished) ++done;
      if (greedy) k = -1;  // rescan from the first: the earliest runnable fiber runs ahead as far as it can
    }
    if (!ran && done < n) deadlock(L);
  }
}

template <class Tuple, class Kernel>
struct Body {
  Kernel kernel;
  Tuple args;
  static void run(void* self) {
    auto* b = static_cast<Body*>(self);
    std::apply(b->kernel, b->args);  // copies every argument into the thread's own parameters
  }
};

}  // namespace detail

struct LaunchOptions {
  Order order = Order::forward;
  std::uint64_t seed = 1;  // for Order::shuffled
  /// false: round robin (every runnable fiber runs to its next blocking point in turn, so warps advance in
  /// near lock step); true: after every switch the scheduler rescans from the first fiber of the order, so
  /// the earliest runnable thread / warp runs ahead as far as it can (exposes missing barriers that lock
  /// step hides, e.g. between warps of mma code).
  bool greedy = false;
};

/// The deepest fiber stack use so far, in bytes, and the stack size (EMU_STACK_KB, default 64 KiB).
inline std::size_t stack_high_water() { return detail::g_stacks.high_water(); }
inline std::size_t stack_size() { return detail::g_stacks.size; }

/// Process-wide default order for launches that pass no options (the test driver flips it).
inline LaunchOptions g_default_options;

/// The current launch's dynamic shared memory (128-byte aligned, 0xFF-filled at every block start).
inline void* dynamic_smem() {
  if (!detail::g_launch || !detail::g_cur) detail::die("dynamic shared memory used outside a kernel");
  return detail::g_launch->smem;
}

/// Runs kernel<<<grid, block, smem>>>(args...) to completion.
template <class... Params, class... Args>
void launch_opt(LaunchOptions const& opt, void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem,
                Args&&... args) {
  static_assert(sizeof...(Params) == sizeof...(Args), "emu::launch: argument count differs from the kernel's");
  using Tuple = std::tuple<std::decay_t<Params>...>;
  detail::Body<Tuple, void (*)(Params...)> body{kernel, Tuple(static_cast<std::decay_t<Params>>(args)...)};
  if (detail::g_launch != &detail::g_idle_launch && detail::g_launch != nullptr)
    detail::die("nested launch (dynamic parallelism) is not supported");
  std::uint64_t const nthreads = static_cast<std::uint64_t>(block.x) * block.y * block.z;
  if (nthreads == 0 || nthreads > 1024) detail::die("launch with " + std::to_string(nthreads) + " threads per block");
  if (smem > 232448) detail::die("launch with " + std::to_string(smem) + " bytes of dynamic shared memory (> 227 KiB)");
  if (grid.x == 0 || grid.y == 0 || grid.z == 0) detail::die("launch with an empty grid");
  if (grid.y > 65535 || grid.z > 65535) detail::die("grid y / z above 65535");

  detail::Launch L;
  L.grid = grid;
  L.block = block;
  L.smem_bytes = smem;
  L.smem = smem ? detail::g_smem.get(smem) : nullptr;
  L.nthreads = static_cast<int>(nthreads);
  L.body = &decltype(body)::run;
  L.body_ctx = &body;
  int const nwarps = (L.nthreads + 31) / 32;
  L.warps.resize(nwarps);
  for (int wi = 0; wi < nwarps; ++wi) {
    L.warps[wi].lanes = std::min(32, L.nthreads - 32 * wi);
    L.warps[wi].full_mask = L.warps[wi].lanes == 32 ? 0xffffffffu : ((1u << L.warps[wi].lanes) - 1u);
  }
  L.fibers.resize(L.nthreads);
  for (unsigned z = 0, i = 0; z < block.z; ++z)
    for (unsigned y = 0; y < block.y; ++y)
      for (unsigned x = 0; x < block.x; ++x, ++i) {
        detail::Fiber& f = L.fibers[i];
        f.tid = uint3{x, y, z};
        f.linear = static_cast<int>(i);
        f.warp = static_cast<int>(i / 32);
        f.lane = static_cast<int>(i % 32);
      }

  std::uint64_t const nblocks = static_cast<std::uint64_t>(grid.x) * grid.y * grid.z;
  std::vector<std::uint64_t> order(nblocks);
  std::iota(order.begin(), order.end(), 0);
  if (opt.order == Order::reverse) std::reverse(order.begin(), order.end());
  if (opt.order == Order::shuffled) {
    std::mt19937_64 rng(opt.seed);
    std::shuffle(order.begin(), order.end(), rng);
  }
  detail::g_launch = &L;
  for (std::uint64_t w : order) {
    L.block_idx = uint3{static_cast<unsigned>(w % grid.x), static_cast<unsigned>(w / grid.x % grid.y),
                        static_cast<unsigned>(w / grid.x / grid.y)};
    detail::run_block(L, opt.order, opt.greedy, opt.seed * 0x9E3779B97F4A7C15ull + w);
  }
  detail::g_launch = &detail::g_idle_launch;
}

template <class... Params, class... Args>
void launch(void (*kernel)(Params...), dim3 grid, dim3 block, std::size_t smem, Args&&... args) {
  launch_opt(g_default_options, kernel, grid, block, smem, std::forward<Args>(args)...);
}

/// "Device memory" for tests: n elements of T, filled with 0xFF bytes (float NaN), the start aligned to
/// align_start bytes and the end (rounded up to align_start) at a PROT_NONE guard page, so that accesses past
/// the end (beyond the rounding) fault.
template <class T>
struct GuardedBuffer {
  unsigned char* map = nullptr;
  std::size_t map_bytes = 0;
  T* ptr = nullptr;
  std::size_t n = 0;
  GuardedBuffer() = default;
  /// align_start: the start's alignment in bytes (the end then lies up to align_start - 1 bytes before the guard).
  explicit GuardedBuffer(std::size_t count, std::size_t align_start = 256) : n(count) {
    std::size_t const bytes = std::max<std::size_t>(count * sizeof(T), 1);
    std::size_t const rounded = (bytes + align_start - 1) / align_start * align_start;
    map_bytes = (rounded + 4095) / 4096 * 4096 + 4096;
    void* p = mmap(nullptr, map_bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) detail::die("mmap of a guarded buffer failed");
    map = static_cast<unsigned char*>(p);
    mprotect(map + map_bytes - 4096, 4096, PROT_NONE);
    ptr = reinterpret_cast<T*>(map + map_bytes - 4096 - rounded);
    std::memset(ptr, 0xff, rounded);
  }
  GuardedBuffer(GuardedBuffer&& o) noexcept { *this = std::move(o); }
  GuardedBuffer& operator=(GuardedBuffer&& o) noexcept {
    std::swap(map, o.map), std::swap(map_bytes, o.map_bytes), std::swap(ptr, o.ptr), std::swap(n, o.n);
    return *this;
  }
  GuardedBuffer(GuardedBuffer const&) = delete;
  ~GuardedBuffer() {
    if (map) munmap(map, map_bytes);
  }
  T* data() const { return ptr; }
  T& operator[](std::size_t i) const { return ptr[i]; }
  std::size_t size() const { return n; }
};

}  // namespace emu

// ---------------------------------------------------------------------------------------------------------
// Built-in variables: the current fiber's / block's values.
#define threadIdx (::emu::detail::current()->tid)
#define blockIdx (::emu::detail::launch_ref().block_idx)
#define blockDim (::emu::detail::launch_ref().block)
#define gridDim (::emu::detail::launch_ref().grid)

inline void __syncthreads() { ::emu::detail::syncthreads(); }
inline int __syncthreads_count(int pred);
inline int __syncthreads_or(int pred);
inline int __syncthreads_and(int pred);
inline void __threadfence() {}
inline void __threadfence_block() {}
inline void __threadfence_system() {}
[[noreturn]] inline void __trap() { ::emu::detail::die("__trap() called at " + ::emu::detail::where(::emu::detail::current())); }
inline void __nanosleep(unsigned) {}

// ---------------------------------------------------------------------------------------------------------
// Warp collectives.
namespace emu::detail {
inline void op_syncwarp(void**, int) {}
inline void syncwarp(unsigned mask) { warp_collective("__syncwarp", &op_syncwarp, mask, nullptr); }

template <class T>
struct ShflData {
  T val;
  int src;  // lane to read
  T out;
};
template <class T>
void op_shfl(void** d, int n) {
  for (int l = 0; l < n; ++l) {
    auto* me = static_cast<ShflData<T>*>(d[l]);
    int const s = me->src;
    // A source lane outside the (partial) warp: the own value (undefined on hardware).
    me->out = s >= 0 && s < n ? static_cast<ShflData<T>*>(d[s])->val : me->val;
  }
}
template <class T>
T shfl(char const* name, unsigned mask, T v, int src) {
  static_assert(std::is_trivially_copyable_v<T>);
  ShflData<T> me{v, src, v};
  warp_collective(name, &op_shfl<T>, mask, &me);
  return me.out;
}

struct VoteData {
  int pred;
  unsigned out;
};
inline void op_ballot(void** d, int n) {
  unsigned b = 0;
  for (int l = 0; l < n; ++l)
    if (static_cast<VoteData*>(d[l])->pred) b |= 1u << l;
  for (int l = 0; l < n; ++l) static_cast<VoteData*>(d[l])->out = b;
}
inline unsigned ballot(char const* name, unsigned mask, int pred) {
  VoteData me{pred != 0, 0};
  warp_collective(name, &op_ballot, mask, &me);
  return me.out & mask;
}
inline int lane_id() { return current()->lane; }
}  // namespace emu::detail

inline void __syncwarp(unsigned mask = 0xffffffffu) { ::emu::detail::syncwarp(mask); }

template <class T>
T __shfl_sync(unsigned mask, T var, int srcLane, int width = warpSize) {
  int const lane = ::emu::detail::lane_id();
  int const src = (lane / width) * width + (srcLane % width + width) % width;
  return ::emu::detail::shfl("__shfl_sync", mask, var, src);
}
template <class T>
T __shfl_xor_sync(unsigned mask, T var, int laneMask, int width = warpSize) {
  int const lane = ::emu::detail::lane_id();
  int src = lane ^ laneMask;
  if (src >= (lane / width + 1) * width) src = lane;  // later groups are out of reach: own value
  return ::emu::detail::shfl("__shfl_xor_sync", mask, var, src);
}
template <class T>
T __shfl_down_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  int const lane = ::emu::detail::lane_id();
  int const src = (lane % width) + static_cast<int>(delta) < width ? lane + static_cast<int>(delta) : lane;
  return ::emu::detail::shfl("__shfl_down_sync", mask, var, src);
}
template <class T>
T __shfl_up_sync(unsigned mask, T var, unsigned delta, int width = warpSize) {
  int const lane = ::emu::detail::lane_id();
  int const src = (lane % width) >= static_cast<int>(delta) ? lane - static_cast<int>(delta) : lane;
  return ::emu::detail::shfl("__shfl_up_sync", mask, var, src);
}
inline unsigned __ballot_sync(unsigned mask, int pred) { return ::emu::detail::ballot("__ballot_sync", mask, pred); }
inline int __any_sync(unsigned mask, int pred) { return ::emu::detail::ballot("__any_sync", mask, pred) != 0; }
inline int __all_sync(unsigned mask, int pred) {
  return ::emu::detail::ballot("__all_sync", mask, pred) == mask;
}
inline unsigned __activemask() {
  return ::emu::detail::g_launch->warps[::emu::detail::current()->warp].full_mask;
}

// Block-wide votes: a barrier plus a count.
namespace emu::detail {
inline int block_vote_count = 0;
inline int syncthreads_count(int pred) {
  // Two barriers: everyone adds, then everyone reads; a third keeps the counter from being reset early.
  syncthreads("__syncthreads_count");
  if (current()->linear == 0) block_vote_count = 0;
  syncthreads("__syncthreads_count");
  if (pred) ++block_vote_count;
  syncthreads("__syncthreads_count");
  int const r = block_vote_count;
  syncthreads("__syncthreads_count");
  return r;
}
}  // namespace emu::detail
inline int __syncthreads_count(int pred) { return ::emu::detail::syncthreads_count(pred); }
inline int __syncthreads_or(int pred) { return ::emu::detail::syncthreads_count(pred) != 0; }
inline int __syncthreads_and(int pred) {
  return ::emu::detail::syncthreads_count(pred) == ::emu::detail::g_launch->nthreads;
}

// ---------------------------------------------------------------------------------------------------------
// Math. Compile with -ffp-contract=off: a * b + c is then never fused unless the code calls fmaf.
// ::fmaf, ::expf, ::exp2f, ::logf, ::log2f, ::fmaxf, ::fminf, ::sqrtf ... come from <cmath> (glibc; fmaf exact).
inline float __expf(float x) { return exp2f(x * 1.4426950408889634f); }  // ex2.approx(x * log2 e)
inline float __exp10f(float x) { return exp2f(x * 3.3219280948873622f); }
inline float __logf(float x) { return log2f(x) * 0.6931471805599453f; }   // lg2.approx * ln 2
inline float __log2f(float x) { return log2f(x); }
inline float __log10f(float x) { return log10f(x); }
inline float __powf(float x, float y) { return exp2f(y * log2f(x)); }
inline float __sinf(float x) { return sinf(x); }
inline float __cosf(float x) { return cosf(x); }
inline float __tanf(float x) { return tanf(x); }
inline float __fdividef(float a, float b) { return a / b; }
inline float __fmul_rn(float a, float b) { return a * b; }
inline float __fadd_rn(float a, float b) { return a + b; }
inline float __fsub_rn(float a, float b) { return a - b; }
inline float __fdiv_rn(float a, float b) { return a / b; }
inline float __fmaf_rn(float a, float b, float c) { return std::fma(a, b, c); }
inline float __frcp_rn(float x) { return 1.0f / x; }
inline float __fsqrt_rn(float x) { return std::sqrt(x); }
inline float __frsqrt_rn(float x) { return 1.0f / std::sqrt(x); }
inline float rsqrtf(float x) { return 1.0f / std::sqrt(x); }
inline float __saturatef(float x) { return x != x ? 0.0f : std::min(1.0f, std::max(0.0f, x)); }
inline double __dadd_rn(double a, double b) { return a + b; }
inline double __dsub_rn(double a, double b) { return a - b; }
inline double __dmul_rn(double a, double b) { return a * b; }
inline double __ddiv_rn(double a, double b) { return a / b; }
inline double __fma_rn(double a, double b, double c) { return std::fma(a, b, c); }
inline double rsqrt(double x) { return 1.0 / std::sqrt(x); }
inline unsigned __float_as_uint(float x) { return std::bit_cast<unsigned>(x); }
inline float __uint_as_float(unsigned x) { return std::bit_cast<float>(x); }
inline int __float_as_int(float x) { return std::bit_cast<int>(x); }
inline float __int_as_float(int x) { return std::bit_cast<float>(x); }
inline long long __double_as_longlong(double x) { return std::bit_cast<long long>(x); }
inline double __longlong_as_double(long long x) { return std::bit_cast<double>(x); }
inline int __float2int_rn(float x) { return static_cast<int>(std::nearbyint(x)); }
inline int __float2int_rz(float x) { return static_cast<int>(x); }
inline int __float2int_rd(float x) { return static_cast<int>(std::floor(x)); }
inline int __float2int_ru(float x) { return static_cast<int>(std::ceil(x)); }
inline float __int2float_rn(int x) { return static_cast<float>(x); }
inline int __popc(unsigned x) { return std::popcount(x); }
inline int __popcll(unsigned long long x) { return std::popcount(x); }
inline int __clz(unsigned x) { return std::countl_zero(x); }
inline int __clzll(unsigned long long x) { return std::countl_zero(x); }
inline int __ffs(int x) { return x == 0 ? 0 : std::countr_zero(static_cast<unsigned>(x)) + 1; }
inline unsigned __brev(unsigned x) {
  unsigned r = 0;
  for (int i = 0; i < 32; ++i) r |= ((x >> i) & 1u) << (31 - i);
  return r;
}
template <class T>
inline T __ldg(T const* p) { return *p; }
inline std::size_t __cvta_generic_to_shared(void const* p) { return reinterpret_cast<std::size_t>(p); }
template <class T>
inline T __ldcs(T const* p) { return *p; }
template <class T>
inline T __ldcg(T const* p) { return *p; }
template <class T>
inline void __stcs(T* p, T v) { *p = v; }
template <class T>
inline void __stcg(T* p, T v) { *p = v; }

// min / max as CUDA's overloads, plus a fallback for mixed arithmetic types (common type).
inline int min(int a, int b) { return a < b ? a : b; }
inline unsigned min(unsigned a, unsigned b) { return a < b ? a : b; }
inline long min(long a, long b) { return a < b ? a : b; }
inline unsigned long min(unsigned long a, unsigned long b) { return a < b ? a : b; }
inline long long min(long long a, long long b) { return a < b ? a : b; }
inline unsigned long long min(unsigned long long a, unsigned long long b) { return a < b ? a : b; }
inline float min(float a, float b) { return fminf(a, b); }
inline double min(double a, double b) { return fmin(a, b); }
inline int max(int a, int b) { return a > b ? a : b; }
inline unsigned max(unsigned a, unsigned b) { return a > b ? a : b; }
inline long max(long a, long b) { return a > b ? a : b; }
inline unsigned long max(unsigned long a, unsigned long b) { return a > b ? a : b; }
inline long long max(long long a, long long b) { return a > b ? a : b; }
inline unsigned long long max(unsigned long long a, unsigned long long b) { return a > b ? a : b; }
inline float max(float a, float b) { return fmaxf(a, b); }
inline double max(double a, double b) { return fmax(a, b); }
template <class A, class B>
  requires(std::is_arithmetic_v<A> && std::is_arithmetic_v<B> && !std::is_same_v<A, B>)
inline std::common_type_t<A, B> min(A a, B b) {
  using C = std::common_type_t<A, B>;
  return min(static_cast<C>(a), static_cast<C>(b));
}
template <class A, class B>
  requires(std::is_arithmetic_v<A> && std::is_arithmetic_v<B> && !std::is_same_v<A, B>)
inline std::common_type_t<A, B> max(A a, B b) {
  using C = std::common_type_t<A, B>;
  return max(static_cast<C>(a), static_cast<C>(b));
}

// Atomics: fibers of one OS thread, blocks serial: plain read-modify-write (kumiki's kernels use none:
// their sums have fixed orders; these are for other code run on the emulator).
template <class T, class F>
inline T atomic_update(T* p, F f) {
  T const old = *p;
  *p = f(old);
  return old;
}
template <class T>
inline T atomicAdd(T* p, T v) { return atomic_update(p, [v](T x) { return x + v; }); }
template <class T>
inline T atomicSub(T* p, T v) { return atomic_update(p, [v](T x) { return x - v; }); }
template <class T>
inline T atomicMax(T* p, T v) { return atomic_update(p, [v](T x) { return x < v ? v : x; }); }
template <class T>
inline T atomicMin(T* p, T v) { return atomic_update(p, [v](T x) { return v < x ? v : x; }); }
template <class T>
inline T atomicExch(T* p, T v) { return atomic_update(p, [v](T) { return v; }); }
template <class T>
inline T atomicCAS(T* p, T cmp, T v) { return atomic_update(p, [cmp, v](T x) { return x == cmp ? v : x; }); }
template <class T>
inline T atomicOr(T* p, T v) {
  T const old = *p;
  *p = old | v;
  return old;
}
template <class T>
inline T atomicAnd(T* p, T v) {
  T const old = *p;
  *p = old & v;
  return old;
}
