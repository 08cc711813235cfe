// kumiki/ops/cpu/embedding.hpp: CPU token embedding lookup and its deterministic scatter-add backward.
#pragma once

#include <algorithm>
#include <cstdint>
#include <cstring>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/context.hpp"
#include "kumiki/ops/embedding.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace ops {

template <>
struct Embedding<Cpu> {
  /// out (n, c) = table[tokens] with table (rows, c); a token outside [0, rows) throws kumiki::Error.
  template <class T>
  static void forward(Ctx<Cpu>& /*ctx*/, std::int32_t const* tokens, T const* table, T* out, std::int64_t n, std::int64_t c,
                      std::int64_t rows) {
    for (std::int64_t i = 0; i < n; ++i)
      KUMIKI_CHECK(tokens[i] >= 0 && tokens[i] < rows, "token id ", tokens[i], " at position ", i,
                   " is outside the embedding table of ", rows, " rows");
#pragma omp parallel for schedule(static)
    for (std::int64_t i = 0; i < n; ++i) std::memcpy(out + i * c, table + tokens[i] * c, sizeof(T) * c);
  }
  /// d_table[tokens[i]] += d_out[i]. Threads own fixed column blocks and walk the tokens in order,
  /// so repeated tokens sum in the same order for any thread count.
  template <class T>
  static void backward(Ctx<Cpu>& /*ctx*/, std::int32_t const* tokens, T const* d_out, T* d_table, std::int64_t n, std::int64_t c) {
    constexpr std::int64_t block = 64;
    std::int64_t const blocks = (c + block - 1) / block;
#pragma omp parallel for schedule(static)
    for (std::int64_t cb = 0; cb < blocks; ++cb) {
      std::int64_t const c0 = cb * block, c1 = std::min(c, c0 + block);
      for (std::int64_t i = 0; i < n; ++i) {
        T* dst = d_table + tokens[i] * c;
        T const* src = d_out + i * c;
        for (std::int64_t j = c0; j < c1; ++j) dst[j] += src[j];
      }
    }
  }
};

static_assert(EmbeddingOp<Embedding<Cpu>, Cpu, float> && EmbeddingOp<Embedding<Cpu>, Cpu, double>);

}  // namespace ops
KUMIKI_NAMESPACE_END
