// kumiki/core/tensor.hpp: non-owning, contiguous tensor views that carry element type and device.
#pragma once

#include <cstdint>
#include <type_traits>

#include "kumiki/config.hpp"
#include "kumiki/core/device.hpp"
#include "kumiki/core/dtype.hpp"
#include "kumiki/core/error.hpp"
#include "kumiki/core/shape.hpp"

KUMIKI_NAMESPACE_BEGIN

/// A typed view of contiguous row-major memory on device `D`. It owns nothing; the arena or buffer
/// it came from must outlive it. Element access through `operator()` is for host memory only.
/// \tparam T element type (`float`, `bf16`, `double`, integer types; const-qualified for read-only)
/// \tparam D device tag (`Cpu` or `Cuda`)
template <class T, DeviceTag D = Cpu>
class TensorView {
 public:
  using element_type = T;
  using device = D;
  static constexpr DType dtype = dtype_v<std::remove_const_t<T>>;

  constexpr TensorView() = default;
  constexpr TensorView(T* data, Shape shape) : data_(data), shape_(shape) {}
  // A mutable view converts to a read-only one.
  template <class U>
    requires(std::is_same_v<T const, U const> && std::is_const_v<T> && !std::is_const_v<U>)
  constexpr TensorView(TensorView<U, D> other) : data_(other.data()), shape_(other.shape()) {}

  constexpr T* data() const { return data_; }
  constexpr Shape const& shape() const { return shape_; }
  constexpr int rank() const { return shape_.rank(); }
  constexpr std::int64_t dim(int i) const { return shape_.dim(i); }
  constexpr std::int64_t numel() const { return shape_.numel(); }
  constexpr std::size_t bytes() const { return static_cast<std::size_t>(numel()) * sizeof(T); }
  constexpr bool empty() const { return numel() == 0; }

  /// Same memory, another shape with the same element count.
  TensorView reshape(Shape s) const {
    KUMIKI_CHECK(s.numel() == numel(), "reshape from ", shape_, " to ", s, " changes the element count");
    return TensorView(data_, s);
  }
  /// Rows [begin, end) of the outermost dimension.
  TensorView slice(std::int64_t begin, std::int64_t end) const {
    KUMIKI_CHECK(rank() >= 1 && 0 <= begin && begin <= end && end <= shape_[0], "slice [", begin, ", ", end,
                 ") out of range for shape ", shape_);
    Shape s = shape_;
    s = replace_front(s, end - begin);
    return TensorView(data_ + begin * shape_.stride(0), s);
  }
  /// The i-th sub-tensor along the outermost dimension.
  TensorView operator[](std::int64_t i) const {
    KUMIKI_CHECK(rank() >= 1 && 0 <= i && i < shape_[0], "index ", i, " out of range for shape ", shape_);
    return TensorView(data_ + i * shape_.stride(0), shape_.drop_front());
  }

  template <class... I>
    requires(std::is_same_v<D, Cpu> && (std::is_integral_v<I> && ...))
  T& operator()(I... idx) const {
    static_assert(sizeof...(I) >= 1 && sizeof...(I) <= Shape::max_rank);
    std::int64_t const ix[] = {static_cast<std::int64_t>(idx)...};
    std::int64_t off = 0;
    for (int k = 0; k < static_cast<int>(sizeof...(I)); ++k) off = off * shape_[k] + ix[k];
    return data_[off];
  }
  T* begin() const requires std::is_same_v<D, Cpu> { return data_; }
  T* end() const requires std::is_same_v<D, Cpu> { return data_ + numel(); }

 private:
  static Shape replace_front(Shape const& s, std::int64_t n) {
    std::int64_t dims[Shape::max_rank];
    for (int i = 0; i < s.rank(); ++i) dims[i] = s[i];
    dims[0] = n;
    return Shape::from_range(dims, dims + s.rank());
  }

  T* data_ = nullptr;
  Shape shape_{};
};

/// A type-erased view: what arenas, checkpoints and safetensors files hand around.
struct AnyView {
  void* data = nullptr;
  DType dtype = DType::f32;
  Shape shape{};
  DeviceKind device = DeviceKind::cpu;

  std::size_t bytes() const { return static_cast<std::size_t>(shape.numel()) * dtype_size(dtype); }

  template <class T, DeviceTag D = Cpu>
  TensorView<T, D> as() const {
    KUMIKI_CHECK(dtype_v<std::remove_const_t<T>> == dtype, "view holds ", dtype_name(dtype), ", requested ",
                 dtype_name(dtype_v<std::remove_const_t<T>>));
    KUMIKI_CHECK(D::kind == device, "view lives on ", device_name(device), ", requested ", D::name);
    return TensorView<T, D>(static_cast<T*>(data), shape);
  }
};

KUMIKI_NAMESPACE_END
