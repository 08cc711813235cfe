// kumiki/ops/cuda/embedding.cuh: CUDA token embedding: a row gather (forward) and a deterministic
// scatter-add (backward) that sorts the positions by token instead of using float atomics.
#pragma once

#include <algorithm>
#include <climits>
#include <cstddef>
#include <cstdint>
#include <type_traits>

#include <cub/device/device_radix_sort.cuh>
#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/precision.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/ops/embedding.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {
namespace embedding_kernels {

/// Forward: at most this many threads per block (one block per token row).
inline constexpr int gather_threads = 256;
/// Forward: at most this many blocks (a grid-stride loop over token rows beyond).
inline constexpr std::int64_t max_gather_blocks = std::int64_t{1} << 16;
/// Backward: columns per block, and sorted (token, position) entries per block.
inline constexpr int scatter_threads = 128;
inline constexpr std::int64_t scatter_chunk = 64;
inline constexpr std::int64_t max_grid_y = 65535;

/// V consecutive elements of T, moved by one load or store.
template <class T, int V>
struct alignas(sizeof(T) * V) Vec {
  T v[V];
};

inline bool aligned(void const* p, std::size_t bytes) { return reinterpret_cast<std::uintptr_t>(p) % bytes == 0; }

inline std::size_t round_up(std::size_t bytes, std::size_t to) { return (bytes + to - 1) / to * to; }

/// The value of w as a To: a copy when the types agree, else through float (one rounding).
template <class To, class From>
__device__ KUMIKI_FORCEINLINE To convert(From w) {
  if constexpr (std::is_same_v<To, From>)
    return w;
  else
    return To(static_cast<float>(w));
}

/// out[i, :] = table[tokens[i], :] over c = V * packs columns, V elements per load. Block b handles
/// rows b, b + gridDim.x, ...; its threads stride over the row's packs. A token outside [0, rows)
/// sets *bad = 1 and its row is left unwritten (no read outside the table).
template <class W, class T, int V>
__global__ void __launch_bounds__(gather_threads)
    gather_kernel(std::int32_t const* tokens, W const* table, T* out, std::int64_t n, std::int64_t packs,
                  std::int64_t rows, int* bad) {
  using PW = Vec<W, V>;
  using PT = Vec<T, V>;
  for (std::int64_t i = blockIdx.x; i < n; i += gridDim.x) {
    std::int32_t const tok = tokens[i];
    if (tok < 0 || tok >= rows) {
      if (threadIdx.x == 0) *bad = 1;
      continue;
    }
    PW const* src = reinterpret_cast<PW const*>(table) + static_cast<std::int64_t>(tok) * packs;
    PT* dst = reinterpret_cast<PT*>(out) + i * packs;
    for (std::int64_t p = threadIdx.x; p < packs; p += blockDim.x) {
      PW const w = src[p];
      PT o;
      KUMIKI_UNROLL
      for (int e = 0; e < V; ++e) o.v[e] = convert<T>(w.v[e]);
      dst[p] = o;
    }
  }
}

/// positions[i] = i, the values sorted along with the token ids.
static __global__ void __launch_bounds__(gather_threads) iota_kernel(std::int32_t* positions, std::int64_t n) {
  std::int64_t const stride = static_cast<std::int64_t>(gridDim.x) * blockDim.x;
  for (std::int64_t i = static_cast<std::int64_t>(blockIdx.x) * blockDim.x + threadIdx.x; i < n; i += stride)
    positions[i] = static_cast<std::int32_t>(i);
}

/// d_table[tok, col] += sum of d_out[pos, col] over the run of equal tokens in the (token, position)
/// list sorted by token with positions ascending. Block x owns the runs that START among sorted
/// entries [x * chunk, (x + 1) * chunk) and walks each to its end (past its chunk if needed); block y
/// and the thread pick columns (grid-stride over columns). The sum starts from d_table's value and adds
/// the rows in position order in float: Embedding<Cpu>'s order. Negative ids are skipped.
template <class T, class G>
__global__ void __launch_bounds__(scatter_threads)
    scatter_kernel(std::int32_t const* sorted_tokens, std::int32_t const* sorted_positions, T const* d_out, G* d_table,
                   std::int64_t n, std::int64_t c) {
  std::int64_t const k0 = static_cast<std::int64_t>(blockIdx.x) * scatter_chunk;
  std::int64_t const k1 = k0 + scatter_chunk < n ? k0 + scatter_chunk : n;
  // Skip the entries of a run that started before k0: an earlier block owns it.
  std::int64_t first = k0;
  if (k0 > 0) {
    std::int32_t const before = sorted_tokens[k0 - 1];
    while (first < k1 && sorted_tokens[first] == before) ++first;
  }
  std::int64_t const col_stride = static_cast<std::int64_t>(gridDim.y) * blockDim.x;
  for (std::int64_t col = static_cast<std::int64_t>(blockIdx.y) * blockDim.x + threadIdx.x; col < c; col += col_stride) {
    std::int64_t k = first;
    while (k < k1) {
      std::int32_t const tok = sorted_tokens[k];
      if (tok < 0) {
        do ++k;
        while (k < n && sorted_tokens[k] == tok);
        continue;
      }
      G* dst = d_table + static_cast<std::int64_t>(tok) * c + col;
      float acc = static_cast<float>(*dst);
      do {
        acc += static_cast<float>(d_out[static_cast<std::int64_t>(sorted_positions[k]) * c + col]);
        ++k;
      } while (k < n && sorted_tokens[k] == tok);
      *dst = G(acc);
    }
  }
}

}  // namespace embedding_kernels

template <>
struct Embedding<Cuda> {
  /// out (n, c) = table[tokens] with table (rows, c), W -> T per element (a copy when W == T).
  /// Token ids are validated on the host where batches are made (data::fill_batch,
  /// data::check_token_ids); this op never synchronizes to look at them. Instead of Embedding<Cpu>'s
  /// throw, an id outside [0, rows) sets the int at the start of ctx's scratch (zeroed here) to 1 and
  /// leaves its row unwritten, so nothing outside the table is read; `saw_bad_token` reads the flag.
  /// One block per token row (grid-stride beyond 2^16 rows), up to 256 threads over the row in packs
  /// of 16 bytes when c and the pointers allow, else single elements. Deterministic: a copy.
  template <class W, class T>
  static void forward(Ctx<Cuda>& ctx, std::int32_t const* tokens, W const* table, T* out, std::int64_t n,
                      std::int64_t c, std::int64_t rows) {
    namespace ek = embedding_kernels;
    if (n <= 0 || c <= 0) return;
    int* bad = reinterpret_cast<int*>(ctx.scratch_at_least(sizeof(int)));
    KUMIKI_CUDA_CHECK(cudaMemsetAsync(bad, 0, sizeof(int), ctx.stream));
    constexpr int V = static_cast<int>(16 / std::max(sizeof(W), sizeof(T)));
    bool const packed = c % V == 0 && ek::aligned(table, V * sizeof(W)) && ek::aligned(out, V * sizeof(T));
    std::int64_t const packs = packed ? c / V : c;
    auto const blocks = static_cast<unsigned>(std::min(n, ek::max_gather_blocks));
    auto const threads = static_cast<unsigned>(std::clamp<std::int64_t>((packs + 31) / 32 * 32, 32, ek::gather_threads));
    if (packed)
      ek::gather_kernel<W, T, V><<<blocks, threads, 0, ctx.stream>>>(tokens, table, out, n, packs, rows, bad);
    else
      ek::gather_kernel<W, T, 1><<<blocks, threads, 0, ctx.stream>>>(tokens, table, out, n, packs, rows, bad);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }

  /// Debugging aid, never called by the model: whether the last forward on ctx met a token id outside
  /// its table. Valid only until another op uses ctx's scratch; synchronizes the stream.
  static bool saw_bad_token(Ctx<Cuda>& ctx) {
    int flag = 0;
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(&flag, ctx.scratch_at_least(sizeof(int)), sizeof(int), cudaMemcpyDeviceToHost,
                                      ctx.stream));
    KUMIKI_CUDA_CHECK(cudaStreamSynchronize(ctx.stream));
    return flag != 0;
  }

  /// d_table[tokens[i]] += d_out[i] (T -> G), without float atomics:
  ///   1. (token, position) pairs sorted by token with cub::DeviceRadixSort::SortPairs, which is stable,
  ///      so equal tokens keep ascending positions (scratch: 3 id arrays + cub's temporary storage);
  ///   2. scatter_kernel: one thread per (run of equal tokens, column) adds the run's rows in position
  ///      order, in float, to d_table's value: grid (ceil(n / 64) chunks of sorted entries, column
  ///      blocks of 128), a run belonging to the block of the chunk where it starts.
  /// Deterministic: the sort's output is unique, and each d_table element is written by one thread
  /// summing in position order (Embedding<Cpu>'s order, so fp32 results are the CPU's bit for bit).
  /// Ids must lie in [0, rows) of d_table (the forward flags them); negative ids are skipped. A token
  /// repeated r times costs its thread r serial adds.
  template <class T, class G>
  static void backward(Ctx<Cuda>& ctx, std::int32_t const* tokens, T const* d_out, G* d_table, std::int64_t n,
                       std::int64_t c) {
    namespace ek = embedding_kernels;
    if (n <= 0 || c <= 0) return;
    KUMIKI_CHECK(n <= INT_MAX, "Embedding<Cuda>::backward: ", n, " tokens exceed the sort's int range");
    int const items = static_cast<int>(n);
    std::size_t sort_bytes = 0;
    KUMIKI_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(nullptr, sort_bytes, tokens, static_cast<std::int32_t*>(nullptr),
                                                      static_cast<std::int32_t const*>(nullptr),
                                                      static_cast<std::int32_t*>(nullptr), items, 0, 32, ctx.stream));
    std::size_t const ids_bytes = ek::round_up(static_cast<std::size_t>(n) * sizeof(std::int32_t), 256);
    std::byte* scratch = ctx.scratch_at_least(3 * ids_bytes + sort_bytes);
    auto* sorted_tokens = reinterpret_cast<std::int32_t*>(scratch);
    auto* positions = reinterpret_cast<std::int32_t*>(scratch + ids_bytes);
    auto* sorted_positions = reinterpret_cast<std::int32_t*>(scratch + 2 * ids_bytes);
    void* sort_temp = scratch + 3 * ids_bytes;

    auto const iota_blocks = static_cast<unsigned>((n + ek::gather_threads - 1) / ek::gather_threads);
    ek::iota_kernel<<<iota_blocks, ek::gather_threads, 0, ctx.stream>>>(positions, n);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
    KUMIKI_CUDA_CHECK(cub::DeviceRadixSort::SortPairs(sort_temp, sort_bytes, tokens, sorted_tokens, positions,
                                                      sorted_positions, items, 0, 32, ctx.stream));
    dim3 const grid(static_cast<unsigned>((n + ek::scatter_chunk - 1) / ek::scatter_chunk),
                    static_cast<unsigned>(std::min((c + ek::scatter_threads - 1) / ek::scatter_threads, ek::max_grid_y)));
    ek::scatter_kernel<T, G><<<grid, ek::scatter_threads, 0, ctx.stream>>>(sorted_tokens, sorted_positions, d_out,
                                                                           d_table, n, c);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
  }
};

static_assert(EmbeddingOp<Embedding<Cuda>, Cuda, float> &&
              EmbeddingOp<Embedding<Cuda>, Cuda, Precision<bf16, bf16, float, float, float>>);

}  // namespace ops
KUMIKI_NAMESPACE_END
