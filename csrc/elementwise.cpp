/* ReLU forward and backward, the in-place sum of gradients, and rounding to bfloat16.
 *
 * What: y = max(x, 0) (NaN passes through, as in PyTorch);
 *       dx = dy where y > 0, else 0;
 *       add_inplace: dst += src (autograd adds each new gradient of a leaf
 *       into its .grad; one thread managed ~25 GB/s, well under what the
 *       memory gives two);
 *       round_bf16_inplace: each x rounded to the nearest bfloat16 (ties to
 *       even, as torch's float -> bfloat16 conversion; NaN -> 0x7FC0), kept
 *       as float32: autocast's bf16 values in float32 storage.
 * Layout: any shape, C-contiguous float32, treated as one flat array.
 * Threads: OpenMP static split of the flat index range (small arrays stay on
 * one thread: waking the team costs more than the work).
 * Gradients: dx is written (returned new); add_inplace changes dst only.
 */
#include "kernels.h"

namespace fc {

namespace {

// The loops take their pointers as __restrict arguments so they vectorise
// (inside an OpenMP region the compiler cannot otherwise rule out aliasing).
void add_block(float* __restrict dst, const float* __restrict src, index_t n) {
    for (index_t i = 0; i < n; ++i) dst[i] += src[i];
}

}  // namespace

// bfloat16 is the upper half of a float32 (bf16_round_bits).
void round_bf16_block(std::uint32_t* __restrict u, index_t n) {
    for (index_t i = 0; i < n; ++i) u[i] = bf16_round_bits(u[i]);
}

py::array relu_forward(const py::array& x) {
    const char* fn = "relu_forward";
    const float* X = float_data(x, fn, "x");
    auto y = new_float(shape_of(x));
    float* Y = mut(y);
    const index_t n = x.size();
    {
        py::gil_scoped_release nogil;
        const bool stream = n * index_t(sizeof(float)) >= kStreamBytes;
        split(n, [&](index_t i, index_t m) {
            const float* x = X + i;
            write_run(Y + i, m, stream, [x](index_t j) { return x[j] < 0.f ? 0.f : x[j]; });
            if (stream) stream_fence();
        });
    }
    return std::move(y);
}

py::array relu_backward(const py::array& y, const py::array& dy) {
    const char* fn = "relu_backward";
    const float* Y = float_data(y, fn, "y");
    const float* DY = float_data(dy, fn, "dy");
    require_shape(dy, shape_of(y), fn, "dy");
    auto dx = new_float(shape_of(y));
    float* DX = mut(dx);
    const index_t n = y.size();
    {
        py::gil_scoped_release nogil;
        const bool stream = n * index_t(sizeof(float)) >= kStreamBytes;
        split(n, [&](index_t i, index_t m) {
            const float *y = Y + i, *dy = DY + i;
            write_run(DX + i, m, stream, [y, dy](index_t j) {
                const float g = dy[j];  // loaded unconditionally so the select vectorises
                return y[j] > 0.f ? g : 0.f;
            });
            if (stream) stream_fence();
        });
    }
    return std::move(dx);
}

void add_inplace(py::array dst, const py::array& src) {
    const char* fn = "add_inplace";
    float_data(src, fn, "src");
    float_data(dst, fn, "dst");
    require(dst.writeable(), fn, ": dst must be writeable");
    require_shape(src, shape_of(dst), fn, "src");
    const float* S = static_cast<const float*>(src.data());
    float* D = static_cast<float*>(dst.mutable_data());
    const index_t n = dst.size();
    // Overlap would make the result depend on the thread split.
    require(S + n <= D || D + n <= S || S == D, fn, ": src and dst overlap");
    py::gil_scoped_release nogil;
    split(n, [&](index_t i, index_t m) { add_block(D + i, S + i, m); });
}

void round_bf16_inplace(py::array x) {
    const char* fn = "round_bf16_inplace";
    float_data(x, fn, "x");
    require(x.writeable(), fn, ": x must be writeable");
    auto* U = static_cast<std::uint32_t*>(x.mutable_data());
    const index_t n = x.size();
    py::gil_scoped_release nogil;
    split(n, [&](index_t i, index_t m) { round_bf16_block(U + i, m); });
}

}  // namespace fc
