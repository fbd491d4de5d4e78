/* Resizing of (N, C, H, W) maps: nearest and bilinear interpolation
 * (interpolate / Upsample), forward and backward.
 *
 * What: the source positions come in per-axis tables (fastconv/ops/upsample.py
 * builds them with PyTorch's rules for each mode and align_corners):
 * output row oh reads input rows h0 = h_index[oh] and h1 = min(h0 + 1, H - 1)
 * (h1 = h0 when OH = H: PyTorch copies an axis that keeps its size)
 * with weights 1 - lh and lh = h_weight[oh]; columns likewise.
 *   nearest (no weights):  y[oh, ow] = x[h0, w0]
 *   bilinear:  y = (1 - lh) ((1 - lw) x[h0, w0] + lw x[h0, w1])
 *                  + lh ((1 - lw) x[h1, w0] + lw x[h1, w1])
 *   backward: each dy[oh, ow] is added to the (up to four) inputs it read,
 *   with the same weights.
 * Layout: NCHW float32; every (n, c) plane is independent.
 * Threads: forward, OpenMP over (plane, output row); backward, over planes:
 * each thread owns whole dx planes and adds into them in order (no atomics,
 * the same dx on every run).
 * Gradients: dx is written (each plane zeroed, then filled), not added to.
 */
#include <algorithm>
#include <cstdint>
#include <optional>

#include "kernels.h"

namespace fc {

namespace {

struct Axis {
    index_t size = 0, out = 0;
    std::vector<index_t> i0, i1;  // the two source positions of each output position
    std::vector<float> l0, l1;    // their weights (l1 = 0 for nearest)
};

Axis make_axis(const char* fn, const char* name, index_t size, const py::array& index,
               const std::optional<py::array>& weight) {
    Axis a;
    a.size = size;
    const std::int64_t* I = int_data<std::int64_t>(index, fn, name, "int64");
    require(index.ndim() == 1, fn, ": ", name, " must be 1-D, got shape ", shape_str(index));
    a.out = index.shape(0);
    const float* L = nullptr;
    if (weight) {
        L = float_data(*weight, fn, "weight");
        require_shape(*weight, {a.out}, fn, "weight");
    }
    a.i0.resize(a.out);
    a.i1.resize(a.out);
    a.l0.resize(a.out);
    a.l1.resize(a.out);
    for (index_t o = 0; o < a.out; ++o) {
        require(I[o] >= 0 && I[o] < size, fn, ": ", name, "[", o, "] = ", I[o],
                " is outside [0, ", size, ")");
        a.i0[o] = I[o];
        // An axis that keeps its size is copied: the second tap (weight 0) is the first one,
        // as in PyTorch, so that an inf or NaN does not reach the output before it.
        a.i1[o] = a.out == size ? I[o] : std::min<index_t>(I[o] + 1, size - 1);
        a.l1[o] = L ? L[o] : 0.f;
        a.l0[o] = 1.f - a.l1[o];
    }
    return a;
}

void check_weights(const char* fn, const std::optional<py::array>& h_weight,
                   const std::optional<py::array>& w_weight) {
    require(h_weight.has_value() == w_weight.has_value(), fn,
            ": give both h_weight and w_weight (bilinear) or neither (nearest)");
}

}  // namespace

py::array interpolate_forward(const py::array& x, const py::array& h_index,
                              const std::optional<py::array>& h_weight, const py::array& w_index,
                              const std::optional<py::array>& w_weight) {
    const char* fn = "interpolate_forward";
    const float* X = float_data(x, fn, "x");
    require_ndim(x, 4, fn, "x");
    check_weights(fn, h_weight, w_weight);
    const index_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
    const Axis ah = make_axis(fn, "h_index", H, h_index, h_weight);
    const Axis aw = make_axis(fn, "w_index", W, w_index, w_weight);
    const bool linear = h_weight.has_value();
    const index_t OH = ah.out, OW = aw.out;
    auto y = new_float({N, C, OH, OW});
    float* Y = mut(y);
    {
        py::gil_scoped_release nogil;
        const index_t rows = N * C * OH;
        const index_t *w0 = aw.i0.data(), *w1 = aw.i1.data();
        const float *lw0 = aw.l0.data(), *lw1 = aw.l1.data();
#pragma omp parallel for schedule(static) if (rows * OW > (1 << 15))
        for (index_t r = 0; r < rows; ++r) {
            const index_t oh = r % OH, plane = r / OH;
            const float* r0 = X + (plane * H + ah.i0[oh]) * W;
            float* yr = Y + r * OW;
            if (!linear) {
                for (index_t ow = 0; ow < OW; ++ow) yr[ow] = r0[w0[ow]];
                continue;
            }
            const float* r1 = X + (plane * H + ah.i1[oh]) * W;
            const float lh0 = ah.l0[oh], lh1 = ah.l1[oh];
            for (index_t ow = 0; ow < OW; ++ow)
                yr[ow] = lh0 * (lw0[ow] * r0[w0[ow]] + lw1[ow] * r0[w1[ow]]) +
                         lh1 * (lw0[ow] * r1[w0[ow]] + lw1[ow] * r1[w1[ow]]);
        }
    }
    return std::move(y);
}

py::array interpolate_backward(const py::array& dy, const std::vector<index_t>& x_shape,
                               const py::array& h_index, const std::optional<py::array>& h_weight,
                               const py::array& w_index,
                               const std::optional<py::array>& w_weight) {
    const char* fn = "interpolate_backward";
    const float* DY = float_data(dy, fn, "dy");
    require(x_shape.size() == 4, fn, ": x_shape must have 4 entries, got ", shape_str(x_shape));
    for (index_t s : x_shape) require(s >= 0, fn, ": negative size in x_shape ", shape_str(x_shape));
    check_weights(fn, h_weight, w_weight);
    const index_t N = x_shape[0], C = x_shape[1], H = x_shape[2], W = x_shape[3];
    const Axis ah = make_axis(fn, "h_index", H, h_index, h_weight);
    const Axis aw = make_axis(fn, "w_index", W, w_index, w_weight);
    const bool linear = h_weight.has_value();
    const index_t OH = ah.out, OW = aw.out;
    require_shape(dy, {N, C, OH, OW}, fn, "dy");
    auto dx = new_float(x_shape);
    float* DX = mut(dx);
    {
        py::gil_scoped_release nogil;
        const index_t *w0 = aw.i0.data(), *w1 = aw.i1.data();
        const float *lw0 = aw.l0.data(), *lw1 = aw.l1.data();
#pragma omp parallel for schedule(static) if (N * C * OH * OW > (1 << 15))
        for (index_t plane = 0; plane < N * C; ++plane) {
            float* d = DX + plane * H * W;
            std::fill(d, d + H * W, 0.f);
            for (index_t oh = 0; oh < OH; ++oh) {
                const float* g = DY + (plane * OH + oh) * OW;
                float* d0 = d + ah.i0[oh] * W;
                if (!linear) {
                    for (index_t ow = 0; ow < OW; ++ow) d0[w0[ow]] += g[ow];
                    continue;
                }
                float* d1 = d + ah.i1[oh] * W;
                const float lh0 = ah.l0[oh], lh1 = ah.l1[oh];
                for (index_t ow = 0; ow < OW; ++ow) {
                    const float g0 = lh0 * g[ow], g1 = lh1 * g[ow];
                    d0[w0[ow]] += g0 * lw0[ow];
                    d0[w1[ow]] += g0 * lw1[ow];
                    d1[w0[ow]] += g1 * lw0[ow];
                    d1[w1[ow]] += g1 * lw1[ow];
                }
            }
        }
    }
    return std::move(dx);
}

}  // namespace fc
