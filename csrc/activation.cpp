/* Smooth and leaky activations: leaky ReLU, ELU, GELU (exact and tanh form),
 * SiLU, sigmoid and tanh, forward and backward.
 *
 * What (PyTorch's definitions):
 *   leaky_relu  y = x > 0 ? x : slope * x          dx = dy * (x > 0 ? 1 : slope)
 *   elu         y = x > 0 ? x : alpha (e^x - 1)    dx = dy * (x > 0 ? 1 : alpha e^x)
 *   gelu        y = x Phi(x)                       dx = dy * (Phi(x) + x phi(x))
 *   gelu tanh   y = x/2 (1 + tanh(u)), u = sqrt(2/pi) (x + 0.044715 x^3)
 *   silu        y = x s, s = sigmoid(x)            dx = dy * s (1 + x (1 - s))
 *   sigmoid     y = 1 / (1 + e^-x)                 dx = dy * y (1 - y)   (from y)
 *   tanh        y = tanh(x)                        dx = dy * (1 - y^2)   (from y)
 * The backward passes take the forward's input x, except sigmoid and tanh,
 * which take its output y. Precision: float32 throughout, within a few ulp of
 * the float64 functions (the exp and erfc approximations are in activation.inc).
 * Layout: any shape, C-contiguous float32, treated as one flat array.
 * Threads: OpenMP over chunks of kChunk elements (small arrays on one thread).
 * The loops are compiled twice, for AVX2+FMA and for the x86-64 baseline, and
 * the convolution's instruction-set choice (microkernel.h, FASTCONV_ISA) picks one.
 * Gradients: dx is written (returned new).
 */
#include <cmath>
#include <cstdint>
#include <cstring>
#include <string>

#include "kernels.h"
#include "microkernel.h"

namespace fc {

namespace {

enum class Act { leaky_relu, elu, gelu, gelu_tanh, silu, sigmoid, tanh };

// The element functions must inline into the loops, or the loops do not vectorise.
#define FC_ACT_INLINE inline __attribute__((always_inline))

// No floating-point exception flags are read anywhere, and without
// -fno-trapping-math GCC will not turn the selects of these loops into vector
// blends (a compare may raise a flag), so none of them would vectorise.
#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")
namespace baseline {
#include "activation.inc"
}  // namespace baseline

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "activation.inc"
}  // namespace avx2
#endif
#pragma GCC pop_options

constexpr index_t kChunk = 1 << 13;        // elements per OpenMP work item

py::array forward(Act act, const char* fn, const py::array& x, float p) {
    const float* X = float_data(x, fn, "x");
    auto y = new_float(shape_of(x));
    float* Y = mut(y);
    const index_t n = x.size();
    const bool wide = avx2_loops();
    {
        py::gil_scoped_release nogil;
        const index_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (index_t c = 0; c < chunks; ++c) {
            const index_t b = c * kChunk, m = std::min(kChunk, n - b);
#if defined(__x86_64__) || defined(__i386__)
            if (wide) {
                avx2::forward_loop(act, X + b, Y + b, m, p);
                continue;
            }
#endif
            baseline::forward_loop(act, X + b, Y + b, m, p);
        }
    }
    return std::move(y);
}

py::array backward(Act act, const char* fn, const char* saved_name, const py::array& s,
                   const py::array& dy, float p) {
    const float* S = float_data(s, fn, saved_name);
    const float* DY = float_data(dy, fn, "dy");
    require_shape(dy, shape_of(s), fn, "dy");
    auto dx = new_float(shape_of(s));
    float* DX = mut(dx);
    const index_t n = s.size();
    const bool wide = avx2_loops();
    {
        py::gil_scoped_release nogil;
        const index_t chunks = (n + kChunk - 1) / kChunk;
#pragma omp parallel for schedule(static) if (n > kParallelMin)
        for (index_t c = 0; c < chunks; ++c) {
            const index_t b = c * kChunk, m = std::min(kChunk, n - b);
#if defined(__x86_64__) || defined(__i386__)
            if (wide) {
                avx2::backward_loop(act, S + b, DY + b, DX + b, m, p);
                continue;
            }
#endif
            baseline::backward_loop(act, S + b, DY + b, DX + b, m, p);
        }
    }
    return std::move(dx);
}

}  // namespace

py::array leaky_relu_forward(const py::array& x, float negative_slope) {
    return forward(Act::leaky_relu, "leaky_relu_forward", x, negative_slope);
}

py::array leaky_relu_backward(const py::array& x, const py::array& dy, float negative_slope) {
    return backward(Act::leaky_relu, "leaky_relu_backward", "x", x, dy, negative_slope);
}

py::array elu_forward(const py::array& x, float alpha) {
    return forward(Act::elu, "elu_forward", x, alpha);
}

py::array elu_backward(const py::array& x, const py::array& dy, float alpha) {
    return backward(Act::elu, "elu_backward", "x", x, dy, alpha);
}

py::array gelu_forward(const py::array& x, bool tanh_approximation) {
    return forward(tanh_approximation ? Act::gelu_tanh : Act::gelu, "gelu_forward", x, 0.f);
}

py::array gelu_backward(const py::array& x, const py::array& dy, bool tanh_approximation) {
    return backward(tanh_approximation ? Act::gelu_tanh : Act::gelu, "gelu_backward", "x", x, dy,
                    0.f);
}

py::array silu_forward(const py::array& x) { return forward(Act::silu, "silu_forward", x, 0.f); }

py::array silu_backward(const py::array& x, const py::array& dy) {
    return backward(Act::silu, "silu_backward", "x", x, dy, 0.f);
}

py::array sigmoid_forward(const py::array& x) {
    return forward(Act::sigmoid, "sigmoid_forward", x, 0.f);
}

py::array sigmoid_backward(const py::array& y, const py::array& dy) {
    return backward(Act::sigmoid, "sigmoid_backward", "y", y, dy, 0.f);
}

py::array tanh_forward(const py::array& x) { return forward(Act::tanh, "tanh_forward", x, 0.f); }

py::array tanh_backward(const py::array& y, const py::array& dy) {
    return backward(Act::tanh, "tanh_backward", "y", y, dy, 0.f);
}

}  // namespace fc
