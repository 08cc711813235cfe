// CUDA runtime test: kumiki's host/device code gives the same bits on the GPU as on the CPU.
// Exits 77 (CTest: skipped) with a message when no GPU is present.
#include <cuda_bf16.h>

#include <cstdio>
#include <cstring>
#include <vector>

#include "kumiki/cuda.cuh"

namespace {

__global__ void convert_kernel(float const* in, unsigned short* ours, unsigned short* theirs, int n) {
  int const i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    ours[i] = kumiki::bf16(in[i]).bits;
    __nv_bfloat16 const h = __float2bfloat16_rn(in[i]);
    theirs[i] = *reinterpret_cast<unsigned short const*>(&h);
  }
}

__global__ void philox_kernel(kumiki::PhiloxStream s, unsigned* words, float* normals, int n) {
  int const i = blockIdx.x * blockDim.x + threadIdx.x;
  if (i < n) {
    words[i] = s.u32(static_cast<std::uint64_t>(i));
    normals[i] = s.normal(static_cast<std::uint64_t>(i));
  }
}

int failures = 0;
void expect(bool ok, char const* what) {
  std::printf("%s: %s\n", ok ? "ok  " : "FAIL", what);
  if (!ok) ++failures;
}

}  // namespace

int main() {
  int devices = 0;
  cudaError_t const probe = cudaGetDeviceCount(&devices);
  if (probe != cudaSuccess || devices == 0) {
    // Why, in CUDA's words: no driver, a driver older than the runtime, no device ...
    std::printf("SKIPPED: no CUDA GPU visible on this machine (cudaGetDeviceCount: %s%s%s); the CUDA runtime test "
                "needs one\n",
                probe == cudaSuccess ? "0 devices" : cudaGetErrorName(probe), probe == cudaSuccess ? "" : ", ",
                probe == cudaSuccess ? "" : cudaGetErrorString(probe));
    (void)cudaGetLastError();
    return 77;
  }
  constexpr int n = 1 << 20;
  std::vector<float> in(n);
  for (int i = 0; i < n; ++i) {
    std::uint32_t const bits = static_cast<std::uint32_t>(i) * 4099u + (i % 7 == 0 ? 0x8000u : 0u);
    std::memcpy(&in[static_cast<std::size_t>(i)], &bits, 4);
  }
  kumiki::Buffer<kumiki::Cuda> d_in(n * 4), d_ours(n * 2), d_theirs(n * 2), d_words(n * 4), d_normals(n * 4);
  KUMIKI_CUDA_CHECK(cudaMemcpy(d_in.data(), in.data(), n * 4, cudaMemcpyHostToDevice));
  convert_kernel<<<(n + 255) / 256, 256>>>(reinterpret_cast<float*>(d_in.data()),
                                           reinterpret_cast<unsigned short*>(d_ours.data()),
                                           reinterpret_cast<unsigned short*>(d_theirs.data()), n);
  KUMIKI_CUDA_CHECK(cudaGetLastError());
  std::vector<unsigned short> ours(n), theirs(n);
  KUMIKI_CUDA_CHECK(cudaMemcpy(ours.data(), d_ours.data(), n * 2, cudaMemcpyDeviceToHost));
  KUMIKI_CUDA_CHECK(cudaMemcpy(theirs.data(), d_theirs.data(), n * 2, cudaMemcpyDeviceToHost));
  int host_mismatch = 0;
  for (int i = 0; i < n; ++i) host_mismatch += ours[static_cast<std::size_t>(i)] != kumiki::bf16(in[static_cast<std::size_t>(i)]).bits;
  expect(ours == theirs, "device bf16(float) == __float2bfloat16_rn (cvt.rn.bf16.f32)");
  expect(host_mismatch == 0, "device bf16(float) == host bf16(float)");

  kumiki::PhiloxStream const s{20251126, 5};
  philox_kernel<<<(n + 255) / 256, 256>>>(s, reinterpret_cast<unsigned*>(d_words.data()),
                                          reinterpret_cast<float*>(d_normals.data()), n);
  KUMIKI_CUDA_CHECK(cudaGetLastError());
  std::vector<unsigned> words(n);
  std::vector<float> normals(n);
  KUMIKI_CUDA_CHECK(cudaMemcpy(words.data(), d_words.data(), n * 4, cudaMemcpyDeviceToHost));
  KUMIKI_CUDA_CHECK(cudaMemcpy(normals.data(), d_normals.data(), n * 4, cudaMemcpyDeviceToHost));
  int word_mismatch = 0, normal_mismatch = 0;
  for (int i = 0; i < n; ++i) {
    word_mismatch += words[static_cast<std::size_t>(i)] != s.u32(static_cast<std::uint64_t>(i));
    normal_mismatch += normals[static_cast<std::size_t>(i)] != s.normal(static_cast<std::uint64_t>(i));
  }
  expect(word_mismatch == 0, "device Philox words == host Philox words");
  std::printf("normal samples differing from host in the last bit: %d of %d\n", normal_mismatch, n);
  expect(normal_mismatch <= n / 100000, "device normal samples == host (libm vs CUDA double log/sincos)");

  kumiki::ArenaLayout layout;
  layout.add("w", kumiki::DType::f32, {1000});
  layout.add("b", kumiki::DType::bf16, {3});
  kumiki::Arena<kumiki::Cuda> arena(layout);
  expect(reinterpret_cast<std::uintptr_t>(arena.get<kumiki::bf16>("b").data()) % 64 == 0, "device arena slots aligned");
  std::printf("%d failure(s)\n", failures);
  return failures == 0 ? 0 : 1;
}
