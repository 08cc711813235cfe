// kumiki/optim/cuda/adamw.cuh: AdamW on the GPU: one fused kernel over a range of the arena per step,
// fp32 master weights for bf16 models, the CPU's (optim/cpu/adamw.hpp) arithmetic operation for operation.
#pragma once

#include <algorithm>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string_view>
#include <utility>
#include <vector>

#include <cuda_runtime.h>

#include "kumiki/config.hpp"
#include "kumiki/core/arena.hpp"
#include "kumiki/core/bf16.hpp"
#include "kumiki/core/buffer.hpp"
#include "kumiki/core/cuda/allocator.cuh"
#include "kumiki/core/cuda/check.cuh"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/ops/cuda/context.cuh"
#include "kumiki/optim/adamw.hpp"
#include "kumiki/optim/master.hpp"

KUMIKI_NAMESPACE_BEGIN
namespace optim {
namespace cuda_detail {

/// One tensor of a step: its first element in the flat (padding-free) numbering, its element offsets
/// in the parameter, gradient, moment (both moments share one layout), bf16 model and low-half arenas,
/// and its two per-step scalars. Entry `n` (one past the last tensor) only holds `first` = total elements.
struct AdamWSlot {
  std::uint64_t first;
  std::uint64_t p, g, m, b, l;
  float decay;          // 1 - lr_t wd_t
  float neg_step_size;  // -lr_t / (1 - beta1^t)
};

/// The scalars every tensor shares in a step (kernel parameters).
struct AdamWCommon {
  float beta1, beta2, one_minus_beta1, one_minus_beta2, bc2_sqrt, eps;
};

inline constexpr int adamw_threads = 256;
inline constexpr int adamw_per_thread = 4;
/// Consecutive flat elements one block handles per tile.
inline constexpr std::uint64_t adamw_tile = std::uint64_t{adamw_threads} * adamw_per_thread;
/// Most blocks a step launches (a grid-stride loop over tiles covers longer ranges).
inline constexpr std::uint64_t adamw_max_blocks = std::uint64_t{1} << 20;

/// The per-step tensor table: pinned host staging, its device copy, and an event recorded after the
/// last operation that read either (the copy, then the kernel). The host writes the staging only after
/// that event has completed, so a copy still in flight never sees a half-written table.
class AdamWTable {
 public:
  AdamWTable() = default;
  explicit AdamWTable(std::size_t slots) : device_(slots * sizeof(AdamWSlot)), slots_(slots) {
    KUMIKI_CUDA_CHECK(cudaEventCreateWithFlags(&done_, cudaEventDisableTiming));
    void* host = nullptr;
    cudaError_t const status = cudaMallocHost(&host, slots * sizeof(AdamWSlot));
    if (status != cudaSuccess) {
      (void)cudaEventDestroy(done_);
      done_ = nullptr;
      KUMIKI_CUDA_CHECK(status);
    }
    host_ = static_cast<AdamWSlot*>(host);
  }
  AdamWTable(AdamWTable&& o) noexcept
      : device_(std::move(o.device_)),
        host_(std::exchange(o.host_, nullptr)),
        slots_(std::exchange(o.slots_, 0)),
        done_(std::exchange(o.done_, nullptr)),
        pending_(std::exchange(o.pending_, false)) {}
  AdamWTable& operator=(AdamWTable&& o) noexcept {
    if (this != &o) {
      release();
      device_ = std::move(o.device_);
      host_ = std::exchange(o.host_, nullptr);
      slots_ = std::exchange(o.slots_, 0);
      done_ = std::exchange(o.done_, nullptr);
      pending_ = std::exchange(o.pending_, false);
    }
    return *this;
  }
  AdamWTable(AdamWTable const&) = delete;
  AdamWTable& operator=(AdamWTable const&) = delete;
  ~AdamWTable() { release(); }

  /// The host staging, once the previous step's copy and kernel are done with the table.
  AdamWSlot* staging() {
    if (pending_) {
      KUMIKI_CUDA_CHECK(cudaEventSynchronize(done_));
      pending_ = false;
    }
    return host_;
  }
  AdamWSlot const* device() const { return reinterpret_cast<AdamWSlot const*>(device_.data()); }

  /// Queues the staging -> device copy on `stream`.
  void upload(cudaStream_t stream) {
    KUMIKI_CUDA_CHECK(cudaMemcpyAsync(device_.data(), host_, slots_ * sizeof(AdamWSlot), cudaMemcpyHostToDevice, stream));
    mark_in_use(stream);
  }
  /// Records that the work queued so far on `stream` reads the table.
  void mark_in_use(cudaStream_t stream) {
    KUMIKI_CUDA_CHECK(cudaEventRecord(done_, stream));
    pending_ = true;
  }

 private:
  void release() noexcept {
    if (pending_ && done_ != nullptr) (void)cudaEventSynchronize(done_);
    if (host_ != nullptr) (void)cudaFreeHost(host_);
    if (done_ != nullptr) (void)cudaEventDestroy(done_);
    host_ = nullptr;
    done_ = nullptr;
    pending_ = false;
    slots_ = 0;
    device_ = Buffer<Cuda>();
  }

  Buffer<Cuda> device_;
  AdamWSlot* host_ = nullptr;
  std::size_t slots_ = 0;
  cudaEvent_t done_ = nullptr;
  bool pending_ = false;
};

/// One element's update, the CPU's (optim/detail/adamw_kernel.hpp) operations in its order, each an
/// explicitly rounded fp32 operation (__fmul_rn, __fadd_rn, __fdiv_rn, __fsqrt_rn: IEEE round to
/// nearest, never contracted into an FMA, exact sqrt and division whatever -prec-div / -prec-sqrt):
///   m = m b1 + (1 - b1) g;  v = v b2 + ((1 - b2) g) g;  denom = sqrt(v) / sqrt(bc2) + eps
///   p = p decay + (neg_step_size m) / denom
/// Returns the new p. (Subnormals are kept, as on the CPU, unless the TU is built with -ftz=true /
/// --use_fast_math, which would flush them here and not there.)
__device__ __forceinline__ float adamw_element(float& p, float g, float& m, float& v, AdamWCommon const& s, float decay,
                                               float neg_step_size) {
  float const mk = __fadd_rn(__fmul_rn(m, s.beta1), __fmul_rn(s.one_minus_beta1, g));
  float const vk = __fadd_rn(__fmul_rn(v, s.beta2), __fmul_rn(__fmul_rn(s.one_minus_beta2, g), g));
  float const denom = __fadd_rn(__fdiv_rn(__fsqrt_rn(vk), s.bc2_sqrt), s.eps);
  float const pk = __fadd_rn(__fmul_rn(p, decay), __fdiv_rn(__fmul_rn(neg_step_size, mk), denom));
  m = mk;
  v = vk;
  p = pk;
  return pk;
}

/// Where a step reads and writes the weights: an fp32 arena `p`; the same plus its bf16 copy `b`; or
/// the two halves of each fp32 master (optim/master.hpp): the model's bf16 arena `b` and the low halves
/// `lo` (kept, like the moments, for the optimizer's range only: a ZeRO-1 shard).
enum class MasterStore : int { f32, f32_and_bf16, halves };

/// The fused AdamW pass over flat elements [begin, end) (tensor order, padding skipped).
/// Grid: blocks of 256 threads stride over tiles of 1024 consecutive flat elements; thread 0 finds the
/// tile's first tensor by binary search over the slots' `first`, then each thread takes elements
/// tile + k * 256 + threadIdx.x (k < 4, coalesced) and walks forward through the slots (tensors can
/// end inside a tile; empty tensors are stepped over).
template <MasterStore Store>
__global__ void __launch_bounds__(adamw_threads)
    adamw_kernel(float* __restrict__ p, float const* __restrict__ g, float* __restrict__ m, float* __restrict__ v,
                 bf16* __restrict__ b, std::uint16_t* __restrict__ lo, AdamWSlot const* __restrict__ slots,
                 std::uint32_t tensors, std::uint64_t begin, std::uint64_t end, AdamWCommon s) {
  __shared__ std::uint32_t tile_tensor;
  std::uint64_t const tiles = (end - begin + adamw_tile - 1) / adamw_tile;
  for (std::uint64_t tile = blockIdx.x; tile < tiles; tile += gridDim.x) {
    std::uint64_t const tile_begin = begin + tile * adamw_tile;
    if (threadIdx.x == 0) {
      // The last tensor i < tensors with first <= tile_begin (slots[0].first = 0 <= tile_begin). As
      // tile_begin < end <= slots[tensors].first, that tensor holds element tile_begin.
      std::uint32_t lo = 0, hi = tensors;
      while (hi - lo > 1) {
        std::uint32_t const mid = lo + (hi - lo) / 2;
        if (slots[mid].first <= tile_begin)
          lo = mid;
        else
          hi = mid;
      }
      tile_tensor = lo;
    }
    __syncthreads();
    std::uint32_t i = tile_tensor;
    AdamWSlot cur = slots[i];
    std::uint64_t next_first = slots[i + 1].first;
    for (int k = 0; k < adamw_per_thread; ++k) {
      std::uint64_t const e = tile_begin + static_cast<std::uint64_t>(k) * adamw_threads + threadIdx.x;
      if (e >= end) break;
      while (next_first <= e) {  // slots[tensors].first = total > e ends the walk
        ++i;
        cur = slots[i];
        next_first = slots[i + 1].first;
      }
      std::uint64_t const j = e - cur.first;
      float pk;
      if constexpr (Store == MasterStore::halves) pk = join_master(b[cur.b + j].bits, lo[cur.l + j]);
      else pk = p[cur.p + j];
      float mk = m[cur.m + j], vk = v[cur.m + j];
      float const out = adamw_element(pk, g[cur.g + j], mk, vk, s, cur.decay, cur.neg_step_size);
      m[cur.m + j] = mk;
      v[cur.m + j] = vk;
      if constexpr (Store == MasterStore::halves) {
        MasterHalves const h = split_master(out);
        b[cur.b + j] = bf16::from_bits(h.hi);
        lo[cur.l + j] = h.lo;
      } else {
        p[cur.p + j] = pk;
        if constexpr (Store == MasterStore::f32_and_bf16) b[cur.b + j] = bf16(out);
      }
    }
    __syncthreads();  // every thread has read tile_tensor before thread 0 writes the next tile's
  }
}

}  // namespace cuda_detail

/// AdamW on the GPU: one fused kernel over the optimizer's range of the arena per step, with the
/// interface and the results of AdamW<Cpu> (optim/cpu/adamw.hpp: the update, Megatron's no-decay rule,
/// parameter groups, ZeRO-1 ranges, bf16 master-weight copies).
///
/// Per element, with t = steps taken including this one, lr_t = lr lr_mult, wd_t = wd wd_mult:
///   m = beta1 m + (1 - beta1) g;  v = beta2 v + (1 - beta2) g^2
///   p = p (1 - lr_t wd_t) - lr_t / (1 - beta1^t) * m / (sqrt(v) / sqrt(1 - beta2^t) + eps)
/// in torch.optim.AdamW's operation order. The per-tensor scalars are computed on the host in double
/// exactly as AdamW<Cpu> computes them; the element update is the same sequence of correctly rounded
/// fp32 operations (no FMA contraction: cuda_detail::adamw_element), so GPU and CPU agree bit for bit
/// when the CPU build does not contract either. Each element is updated by one thread, independently
/// of the others: deterministic, whatever the grid.
///
/// A step queues on ctx.stream: one copy of the per-tensor table (pinned host staging -> device, 56
/// bytes a tensor) and one kernel. It never synchronizes, except that it waits for the previous step's
/// copy and kernel before rewriting the staging (long finished in a training loop).
template <>
class AdamW<Cuda> {
 public:
  /// As AdamW<Cpu>: `layout` is the layout of the (fp32) parameters; tensors get their group's
  /// multipliers, 1-D tensors and biases wd_mult 0; `range` restricts every step (a ZeRO-1 shard) and the
  /// moments are kept for it only, in shard_layout(layout, range). The moments are zeroed on the device
  /// (cudaMemset); the constructor waits for that, as the steps run on a stream that does not order
  /// after the legacy default stream.
  explicit AdamW(ArenaLayout const& layout, AdamWConfig config = {}, std::vector<ParamGroup> const& groups = {},
                 FlatRange range = {})
      : config_(config), range_(detail::clamp_range(range, layout.numel())), m_(shard_layout(layout, range_)), v_(m_.layout()),
        layout_(layout), table_(layout.size() + 1) {
    KUMIKI_CUDA_CHECK(cudaDeviceSynchronize());  // the moments' cudaMemset has landed
    for (auto const& e : layout.entries())
      KUMIKI_CHECK(e.dtype == DType::f32, "AdamW updates fp32 tensors; '", e.name, "' is ", dtype_name(e.dtype),
                   " (keep fp32 master weights: optim::master_layout)");
    KUMIKI_CHECK(config.beta1 >= 0.0f && config.beta1 < 1.0f && config.beta2 >= 0.0f && config.beta2 < 1.0f,
                 "AdamW betas must lie in [0, 1), got ", config.beta1, ", ", config.beta2);
    KUMIKI_CHECK(config.eps > 0.0f && config.weight_decay >= 0.0f, "AdamW needs eps > 0 and weight_decay >= 0");
    KUMIKI_CHECK(layout.size() < (std::size_t{1} << 31), "AdamW: ", layout.size(), " tensors");
    hyper_.resize(layout.size());
    for (std::size_t i = 0; i < layout.size(); ++i) {
      ArenaEntry const& e = layout[i];
      TensorHyper h;
      for (auto const& g : groups)
        if (g.match && g.match(e)) {
          h = TensorHyper{g.lr_mult, g.wd_mult};
          break;
        }
      if (megatron_no_decay(e)) h.wd_mult = 0.0f;
      hyper_[i] = h;
    }
    first_.resize(layout.size() + 1, 0);
    for (std::size_t i = 0; i < layout.size(); ++i) first_[i + 1] = first_[i] + layout[i].numel();
    moment_base_ = detail::moment_bases(layout, m_.layout(), range_);  // element k of tensor i: m_[base + k]
  }

  AdamWConfig const& config() const { return config_; }
  /// The layout of the parameters (and gradients) the optimizer updates.
  ArenaLayout const& layout() const { return layout_; }
  /// Multipliers in effect for tensor `i` (after groups and the no-decay rule).
  TensorHyper const& hyper(std::size_t i) const { return hyper_.at(i); }
  /// The elements each step updates.
  FlatRange range() const { return range_; }
  TensorHyper const& hyper(std::string_view name) const { return hyper_.at(layout().index_of(name)); }
  /// Overrides one tensor's multipliers (no no-decay rule applied).
  void set_hyper(std::string_view name, TensorHyper h) { hyper_.at(layout().index_of(name)) = h; }

  /// Optimizer state: first and second moments (in shard_layout(layout(), range()): the parameters' own
  /// layout unless a range cuts it) and steps taken.
  Arena<Cuda> const& exp_avg() const { return m_; }
  Arena<Cuda> const& exp_avg_sq() const { return v_; }
  Arena<Cuda>& exp_avg() { return m_; }
  Arena<Cuda>& exp_avg_sq() { return v_; }
  std::int64_t step_count() const { return step_; }
  void set_step_count(std::int64_t s) {
    KUMIKI_CHECK(s >= 0, "AdamW step count must be >= 0, got ", s);
    step_ = s;
  }

  /// One update with the configured weight decay.
  void step(ops::Ctx<Cuda>& ctx, Arena<Cuda>& params, Arena<Cuda> const& grads, float lr) {
    step(ctx, params, grads, lr, config_.weight_decay);
  }

  /// One update with weight decay `wd`. When `model_bf16` is given, `params` are the fp32 master
  /// weights and the updated values are also written, rounded to nearest even, into that bf16 arena
  /// (same names and shapes, bf16 dtypes) in the same pass.
  void step(ops::Ctx<Cuda>& ctx, Arena<Cuda>& params, Arena<Cuda> const& grads, float lr, float wd,
            Arena<Cuda>* model_bf16 = nullptr) {
    KUMIKI_CHECK(params.layout() == layout(), "AdamW: the parameter arena's layout differs from the optimizer's");
    if (model_bf16 == nullptr) return launch<cuda_detail::MasterStore::f32>(ctx, &params, grads, nullptr, nullptr, lr, wd);
    check_bf16_twin(model_bf16->layout());
    launch<cuda_detail::MasterStore::f32_and_bf16>(ctx, &params, grads, model_bf16, nullptr, lr, wd);
  }

  /// One update of fp32 master weights kept as two halves (optim/master.hpp): `hi`, the bf16 model arena
  /// (the optimizer's names and shapes, bf16 dtypes), and `lo`, the low halves of the optimizer's range,
  /// in shard_layout(hi.layout(), range()) (hi's own layout for the whole range). Each element's master
  /// is joined, updated as step() updates it, and split back into both: 16 bytes of state a parameter
  /// with the gradient and the moments, or with a ZeRO-1 range 2 + 4 + (2 + 8) / ranks on each rank.
  void step_halves(ops::Ctx<Cuda>& ctx, Arena<Cuda>& hi, Arena<Cuda>& lo, Arena<Cuda> const& grads, float lr, float wd) {
    check_bf16_twin(hi.layout());
    if (!(hi.layout() == low_of_)) {  // the names and shapes, derived once per weight layout, not every step
      low_of_ = hi.layout();
      low_layout_ = shard_layout(low_of_, range_);
    }
    KUMIKI_CHECK(lo.layout() == low_layout_,
                 "AdamW: the low halves' arena must have shard_layout(the bf16 model arena's layout, range())");
    // The positions from the arenas' own offsets (== compares names, dtypes and shapes only): an arena
    // re-aligns a layout made for a smaller alignment.
    low_base_ = detail::moment_bases(hi.layout(), lo.layout(), range_);
    launch<cuda_detail::MasterStore::halves>(ctx, nullptr, grads, &hi, reinterpret_cast<std::uint16_t*>(lo.data()), lr, wd);
  }

 private:
  /// Queues one step: the tensor table (per-tensor scalars in double, as AdamW<Cpu> computes them) and
  /// the kernel reading the weights as `Store` says.
  template <cuda_detail::MasterStore Store>
  void launch(ops::Ctx<Cuda>& ctx, Arena<Cuda>* params, Arena<Cuda> const& grads, Arena<Cuda>* model_bf16,
              std::uint16_t* lo, float lr, float wd) {
    ArenaLayout const& L = layout();
    KUMIKI_CHECK(grads.layout() == L, "AdamW: the gradient arena's layout differs from the optimizer's");
    // Every arena is indexed by its own offsets: layout() may have been made for another alignment (an
    // Arena<Cuda> re-aligns it to 256 bytes), and == compares names, dtypes and shapes only.
    ArenaLayout const* const PL = params != nullptr ? &params->layout() : nullptr;
    float* const p = params != nullptr ? reinterpret_cast<float*>(params->data()) : nullptr;
    ++step_;
    double const bc1 = 1.0 - std::pow(static_cast<double>(config_.beta1), static_cast<double>(step_));
    double const bc2 = 1.0 - std::pow(static_cast<double>(config_.beta2), static_cast<double>(step_));
    cuda_detail::AdamWCommon common;
    common.beta1 = config_.beta1;
    common.beta2 = config_.beta2;
    common.one_minus_beta1 = static_cast<float>(1.0 - static_cast<double>(config_.beta1));
    common.one_minus_beta2 = static_cast<float>(1.0 - static_cast<double>(config_.beta2));
    common.bc2_sqrt = static_cast<float>(std::sqrt(bc2));
    common.eps = config_.eps;

    std::uint64_t const count = range_.end - range_.begin;
    if (count == 0) return;

    ArenaLayout const& GL = grads.layout();
    ArenaLayout const* const BL = model_bf16 != nullptr ? &model_bf16->layout() : nullptr;
    cuda_detail::AdamWSlot* const slots = table_.staging();
    for (std::size_t i = 0; i < L.size(); ++i) {
      double const lr_t = static_cast<double>(lr) * static_cast<double>(hyper_[i].lr_mult);
      double const wd_t = static_cast<double>(wd) * static_cast<double>(hyper_[i].wd_mult);
      cuda_detail::AdamWSlot& s = slots[i];
      s.first = first_[i];
      s.p = PL != nullptr ? (*PL)[i].offset / sizeof(float) : 0;  // offsets: multiples of the alignment (>= 256)
      s.g = GL[i].offset / sizeof(float);
      // m_ and v_ share one layout. A negative base (a cut tensor's piece) becomes its value modulo 2^64,
      // and the kernel's unsigned base + k lands on the element exactly.
      s.m = static_cast<std::uint64_t>(moment_base_[i]);
      s.b = BL != nullptr ? (*BL)[i].offset / sizeof(bf16) : 0;
      s.l = lo != nullptr ? static_cast<std::uint64_t>(low_base_[i]) : 0;  // as s.m, modulo 2^64
      s.decay = static_cast<float>(1.0 - lr_t * wd_t);
      s.neg_step_size = static_cast<float>(-(lr_t / bc1));
    }
    slots[L.size()] = cuda_detail::AdamWSlot{first_.back(), 0, 0, 0, 0, 0, 0.0f, 0.0f};
    table_.upload(ctx.stream);

    std::uint64_t const tiles = (count + cuda_detail::adamw_tile - 1) / cuda_detail::adamw_tile;
    unsigned const grid = static_cast<unsigned>(std::min(tiles, cuda_detail::adamw_max_blocks));
    cuda_detail::adamw_kernel<Store><<<grid, cuda_detail::adamw_threads, 0, ctx.stream>>>(
        p, reinterpret_cast<float const*>(grads.data()), reinterpret_cast<float*>(m_.data()),
        reinterpret_cast<float*>(v_.data()), model_bf16 != nullptr ? reinterpret_cast<bf16*>(model_bf16->data()) : nullptr,
        lo, table_.device(), static_cast<std::uint32_t>(L.size()), range_.begin, range_.end, common);
    KUMIKI_CUDA_CHECK(cudaGetLastError());
    table_.mark_in_use(ctx.stream);
  }

  void check_bf16_twin(ArenaLayout const& b) const {
    ArenaLayout const& L = layout();
    KUMIKI_CHECK(b.size() == L.size(), "AdamW: the bf16 model arena has ", b.size(), " tensors, the master ", L.size());
    for (std::size_t i = 0; i < L.size(); ++i) {
      KUMIKI_CHECK(b[i].name == L[i].name && b[i].shape == L[i].shape, "AdamW: bf16 model tensor ", i, " ('", b[i].name,
                   "') does not match master tensor '", L[i].name, "'");
      KUMIKI_CHECK(b[i].dtype == DType::bf16, "AdamW: model tensor '", b[i].name, "' is ", dtype_name(b[i].dtype),
                   ", expected bf16");
    }
  }

  AdamWConfig config_;
  FlatRange range_;
  Arena<Cuda> m_, v_;
  ArenaLayout layout_;
  std::int64_t step_ = 0;
  std::vector<TensorHyper> hyper_;
  std::vector<std::size_t> first_;            // flat index of each tensor's first element (+ the total)
  std::vector<std::int64_t> moment_base_;     // per tensor: element index in m_ / v_ of its element 0
  ArenaLayout low_of_, low_layout_;           // step_halves: the bf16 weights' layout, its low halves' shard
  std::vector<std::int64_t> low_base_;        // the same as moment_base_ in those low halves
  cuda_detail::AdamWTable table_;  // per-step tensor table (staging, device copy, in-use event)
};

}  // namespace optim
KUMIKI_NAMESPACE_END
