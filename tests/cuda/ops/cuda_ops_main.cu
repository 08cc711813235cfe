// The GPU probe of test_cuda_ops (tests/cuda/ops/cuda_ops.hpp).
#include <cuda_runtime.h>

#include "cuda_ops.hpp"

int kumiki_test::cuda_ops::device_count() {
  int n = 0;
  if (cudaGetDeviceCount(&n) != cudaSuccess) {
    (void)cudaGetLastError();
    return 0;
  }
  return n;
}
