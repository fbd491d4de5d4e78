/* Declarations of every Python-facing kernel; bindings.cpp exposes them. */
#pragma once

#include <optional>

#include <cstring>

#include "common.h"

namespace fc {

// Bumped whenever a signature or a semantic of this module changes;
// fastconv/backend/cpu.py refuses to run against a different value.
constexpr int kAbiVersion = 12;

// alloc.cpp
py::dict cache_info();
void empty_cache();

// blas.cpp
py::dict load_blas(const std::string& path);
py::dict blas_info();
py::array gemm(const py::array& a, const py::array& b, bool trans_a, bool trans_b);

// runtime.cpp
py::dict cpu_features();
void set_num_threads(int n);
int get_num_threads();

// conv.cpp
py::array conv2d_forward(const py::array& x, const py::array& w, const std::optional<py::array>& b,
                         const Pair& stride, const Pair& padding, const Pair& dilation,
                         index_t groups);
py::tuple conv2d_backward(const py::array& x, const py::array& w, const py::array& dy,
                          const Pair& stride, const Pair& padding, const Pair& dilation,
                          index_t groups, bool need_dx, bool need_dw, bool need_db);

// gemm_bf16.cpp, conv_bf16.cpp (the bfloat16 products of autocast)
py::array gemm_bf16_py(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                       const std::optional<py::array>& bias, const std::optional<py::array>& out);
py::array conv2d_forward_bf16(const py::array& x, const py::array& w,
                              const std::optional<py::array>& b, const Pair& stride,
                              const Pair& padding, const Pair& dilation, index_t groups, bool relu);
py::tuple conv2d_backward_bf16(const py::array& x, const py::array& w, const py::array& dy,
                               const Pair& stride, const Pair& padding, const Pair& dilation,
                               index_t groups, bool need_dx, bool need_dw, bool need_db);

// pool.cpp
py::tuple max_pool2d_forward(const py::array& x, const Pair& kernel, const Pair& stride,
                             const Pair& padding, bool ceil_mode, const Pair& dilation);
py::array max_pool2d_backward(const py::array& dy, const py::array& indices,
                              const std::vector<index_t>& x_shape);
py::tuple adaptive_max_pool2d_forward(const py::array& x, const Pair& output_size);
py::array avg_pool2d_forward(const py::array& x, const Pair& kernel, const Pair& stride,
                             const Pair& padding, bool ceil_mode, bool count_include_pad);
py::array avg_pool2d_backward(const py::array& dy, const std::vector<index_t>& x_shape,
                              const Pair& kernel, const Pair& stride, const Pair& padding,
                              bool ceil_mode, bool count_include_pad);

// lrn.cpp
py::tuple lrn_forward(const py::array& x, index_t size, float alpha, float beta, float k);
py::array lrn_backward(const py::array& x, const py::array& y, const py::array& scale,
                       const py::array& dy, index_t size, float alpha, float beta, float k);

// batchnorm.cpp
py::tuple batch_norm_forward_train(const py::array& x, const std::optional<py::array>& weight,
                                   const std::optional<py::array>& bias, float eps);
py::array batch_norm_forward_eval(const py::array& x, const py::array& mean, const py::array& var,
                                  const std::optional<py::array>& weight,
                                  const std::optional<py::array>& bias, float eps);
py::tuple batch_norm_backward(const py::array& x, const std::optional<py::array>& weight,
                              const py::array& mean, const py::array& var, float eps,
                              const py::array& dy);
py::tuple batch_norm_max_pool2d_forward(const py::array& x, const std::optional<py::array>& weight,
                                        const std::optional<py::array>& bias, float eps, const Pair& kernel,
                                        const Pair& stride, const Pair& padding, bool ceil_mode,
                                        const Pair& dilation);
py::tuple batch_norm_max_pool2d_backward(const py::array& x, const std::optional<py::array>& weight,
                                         const py::array& mean, const py::array& var, float eps,
                                         const py::array& dy, const py::array& indices);

// random.cpp
py::array random_uniform(const std::vector<index_t>& shape, std::uint64_t seed, std::uint64_t offset);
py::tuple dropout_forward(const py::array& x, double p, std::uint64_t seed);
py::array dropout_backward(const py::array& dy, const py::array& mask);

// elementwise.cpp
py::array relu_forward(const py::array& x);
py::array relu_backward(const py::array& y, const py::array& dy);
void round_bf16_inplace(py::array x);
// The same on n floats seen as their bits, single-threaded (inside other kernels).
void round_bf16_block(std::uint32_t* u, index_t n);

// The bits of float32 b rounded to bfloat16, as a float32: add half an ulp of
// bfloat16 (minus one when the kept part is even, so ties go to even), then
// drop the lower half; NaN -> 0x7FC00000. Branch-free, so loops vectorise.
inline std::uint32_t bf16_round_bits(std::uint32_t b) {
    const std::uint32_t r = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
    return (b & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC00000u : r;
}

// x rounded to the nearest bfloat16, as a float32 (bf16_round_bits).
inline float bf16_round(float x) {
    std::uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    b = bf16_round_bits(b);
    std::memcpy(&x, &b, sizeof b);
    return x;
}
void add_inplace(py::array dst, const py::array& src);

// activation.cpp
py::array leaky_relu_forward(const py::array& x, float negative_slope);
py::array leaky_relu_backward(const py::array& x, const py::array& dy, float negative_slope);
py::array elu_forward(const py::array& x, float alpha);
py::array elu_backward(const py::array& x, const py::array& dy, float alpha);
py::array gelu_forward(const py::array& x, bool tanh_approximation);
py::array gelu_backward(const py::array& x, const py::array& dy, bool tanh_approximation);
py::array silu_forward(const py::array& x);
py::array silu_backward(const py::array& x, const py::array& dy);
py::array sigmoid_forward(const py::array& x);
py::array sigmoid_backward(const py::array& y, const py::array& dy);
py::array tanh_forward(const py::array& x);
py::array tanh_backward(const py::array& y, const py::array& dy);

// norm_layer.cpp
py::tuple group_norm_forward(const py::array& x, const std::optional<py::array>& weight,
                             const std::optional<py::array>& bias, index_t groups, float eps);
py::tuple group_norm_backward(const py::array& x, const std::optional<py::array>& weight,
                              const py::array& mean, const py::array& rstd, const py::array& dy,
                              index_t groups, bool need_dx, bool need_dparams);

// pad.cpp
py::array pad_forward(const py::array& x, const std::vector<std::optional<py::array>>& index,
                      float value);
py::array pad_backward(const py::array& dy, const std::vector<index_t>& x_shape,
                       const std::vector<std::optional<py::array>>& index);

// resize.cpp
py::array interpolate_forward(const py::array& x, const py::array& h_index,
                              const std::optional<py::array>& h_weight, const py::array& w_index,
                              const std::optional<py::array>& w_weight);
py::array interpolate_backward(const py::array& dy, const std::vector<index_t>& x_shape,
                               const py::array& h_index, const std::optional<py::array>& h_weight,
                               const py::array& w_index, const std::optional<py::array>& w_weight);

// loss.cpp
py::tuple softmax_cross_entropy_forward(const py::array& logits, const py::array& target,
                                        float label_smoothing);
py::array softmax_cross_entropy_backward(const py::array& prob, const py::array& target,
                                         float label_smoothing, float dloss);

}  // namespace fc
