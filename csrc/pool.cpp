/* Max and average pooling over 2-D windows (PyTorch semantics).
 *
 * What: for each output pixel the window rows oh*SH - PH + kh*DH (kh < KH)
 * and columns likewise, clipped to the input (dilation D: max pooling only).
 *   adaptive max: the window of output (oh, ow) is rows [oh*H/OH, ceil((oh+1)*H/OH))
 *        and columns likewise (PyTorch's adaptive windows); indices as max.
 *   max: y = the largest value; indices = its flat offset ih*W + iw in the
 *        input plane (int32), or -1 (and y = -inf) for a dilated window whose
 *        taps all miss the input. Ties: the first maximum in row-major scan order
 *        of the window wins; padding never wins; a NaN wins (it propagates).
 *   avg: y = sum / divisor, divisor = window area including padding (but not
 *        the part past the padded edge that ceil_mode adds) when
 *        count_include_pad, else the number of real input pixels.
 * Output size: floor((H + 2P - D(K-1) - 1) / S) + 1, or ceil with ceil_mode where the
 * last window must still start inside the input or the left padding.
 * Layout: NCHW float32; every (n, c) plane is independent.
 * The max-pool plane loop (pool_plane.inc) is compiled for AVX2+FMA and for the
 * x86-64 baseline; the convolution's instruction-set choice picks one.
 * Threads: OpenMP over the N*C planes; in the backward passes each thread
 * owns whole dx planes, so the scatter needs no atomics.
 * Gradients: dx is written (each plane zeroed, then filled), not added to.
 */
#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "kernels.h"
#include "microkernel.h"
#include "pool.h"

namespace fc {

namespace {

struct PoolGeom {
    index_t N, C, H, W, KH, KW, SH, SW, PH, PW, OH, OW, DH = 1, DW = 1;
};

// floor(a / b) for b > 0 (C++'s / truncates toward zero; a is negative when the kernel is
// longer than the padded input)
inline index_t floor_div(index_t a, index_t b) { return a >= 0 ? a / b : -((-a + b - 1) / b); }

index_t pool_out(index_t size, index_t k, index_t s, index_t p, bool ceil_mode, index_t d = 1) {
    const index_t span = size + 2 * p - d * (k - 1) - 1;
    if (!ceil_mode) return floor_div(span, s) + 1;
    index_t out = floor_div(span + s - 1, s) + 1;
    if ((out - 1) * s >= size + p) --out;  // the last window must start inside input or left pad
    return out;
}

PoolGeom check_pool(const char* fn, const std::vector<index_t>& x_shape, const Pair& kernel,
                    const Pair& stride, const Pair& padding, bool ceil_mode,
                    const Pair& dilation = {1, 1}) {
    require(x_shape.size() == 4, fn, ": input must be 4-D (N, C, H, W), got shape ",
            shape_str(x_shape));
    for (index_t s : x_shape) require(s >= 0, fn, ": negative size in shape ", shape_str(x_shape));
    require_pair(kernel, 1, fn, "kernel");
    require_pair(stride, 1, fn, "stride");
    require_pair(padding, 0, fn, "padding");
    require_pair(dilation, 1, fn, "dilation");
    PoolGeom g{x_shape[0], x_shape[1], x_shape[2], x_shape[3], kernel.first, kernel.second,
               stride.first, stride.second, padding.first, padding.second, 0, 0,
               dilation.first, dilation.second};
    // PyTorch's rule: only the output size counts. In ceil mode the last window may reach
    // past the padded input; the kernels skip every tap outside the input.
    g.OH = pool_out(g.H, g.KH, g.SH, g.PH, ceil_mode, g.DH);
    g.OW = pool_out(g.W, g.KW, g.SW, g.PW, ceil_mode, g.DW);
    require(g.OH >= 1 && g.OW >= 1, fn, ": kernel (", g.KH, ", ", g.KW, ") with dilation (",
            g.DH, ", ", g.DW, ") leaves no output for the padded input (", g.H + 2 * g.PH, ", ",
            g.W + 2 * g.PW, ")");
    return g;
}

// Output columns [lo, hi) whose window column ow*S - P + k lies inside [0, size).
inline void valid_columns(index_t k, index_t size, index_t S, index_t P, index_t out, index_t& lo,
                          index_t& hi) {
    auto first_at_least = [S](index_t t) { return t <= 0 ? 0 : (t + S - 1) / S; };
    lo = std::min(out, first_at_least(P - k));
    hi = std::max(lo, std::min(out, first_at_least(size + P - k)));
}

// First of start, start + d, start + 2d, ... that is >= 0: a window's first row or
// column inside the input (or past it, when none of its taps is), as PyTorch finds it.
inline index_t first_tap(index_t start, index_t d) {
    return start >= 0 ? start : start + (-start + d - 1) / d * d;
}

// The taps k in [tap_begin, tap_end) of a window starting at `start` (dilation d, K taps)
// are those inside [0, size).
inline index_t tap_begin(index_t start, index_t d) { return start >= 0 ? 0 : (-start + d - 1) / d; }
inline index_t tap_end(index_t start, index_t d, index_t K, index_t size) {
    return start > size - 1 ? 0 : std::min(K, (size - 1 - start) / d + 1);
}

// One plane being pooled: its geometry (pool.h) and where it is read and written.
struct MaxPlane : MaxPoolPlanes {
    const float* x;
    float* y;
    std::int32_t* idx;
};

#pragma GCC push_options
#pragma GCC optimize("no-trapping-math")  // else GCC keeps the compares and selects scalar
namespace baseline {
#include "pool_plane.inc"
}  // namespace baseline

#if defined(__x86_64__) || defined(__i386__)
#pragma GCC target("avx2,fma")
namespace avx2 {
#include "pool_plane.inc"
}  // namespace avx2
#endif
#pragma GCC pop_options

// Adaptive windows along one axis: output i covers [start[i], end[i]).
void adaptive_windows(index_t size, index_t out, std::vector<index_t>& start,
                      std::vector<index_t>& end) {
    start.resize(out);
    end.resize(out);
    for (index_t i = 0; i < out; ++i) {
        start[i] = i * size / out;
        end[i] = ((i + 1) * size + out - 1) / out;
    }
}

}  // namespace

// ---------------------------------------------------------------- max pooling

MaxPoolPlanes max_pool_planes(const char* fn, const std::vector<index_t>& x_shape, const Pair& kernel,
                              const Pair& stride, const Pair& padding, bool ceil_mode, const Pair& dilation) {
    const PoolGeom g = check_pool(fn, x_shape, kernel, stride, padding, ceil_mode, dilation);
    require(g.H * g.W <= std::numeric_limits<std::int32_t>::max(), fn,
            ": plane too large for int32 indices");
    // inside for every tap: inside for the first and for the last
    index_t lo0, hi0, lo1, hi1;
    valid_columns(0, g.W, g.SW, g.PW, g.OW, lo0, hi0);
    valid_columns((g.KW - 1) * g.DW, g.W, g.SW, g.PW, g.OW, lo1, hi1);
    const index_t lo = std::max(lo0, lo1), hi = std::max(lo, std::min(hi0, hi1));
    MaxPoolPlanes p{g.H, g.W, g.OH, g.OW, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, lo, hi,
                    baseline::max_pool_plane};
#if defined(__x86_64__) || defined(__i386__)
    if (avx2_loops()) p.plane = avx2::max_pool_plane;
#endif
    return p;
}

bool max_unpool_plane(const float* dy, const std::int32_t* idx, index_t OHW, float* dx, index_t HW) {
    bool ok = true;
    std::fill(dx, dx + HW, 0.f);
    for (index_t o = 0; o < OHW; ++o) {
        const index_t k = idx[o];
        if (k == -1) continue;  // a window without input pixels
        if (k < 0 || k >= HW) {  // never write outside the plane
            ok = false;
            continue;
        }
        dx[k] += dy[o];
    }
    return ok;
}

py::tuple max_pool2d_forward(const py::array& x, const Pair& kernel, const Pair& stride,
                             const Pair& padding, bool ceil_mode, const Pair& dilation) {
    const char* fn = "max_pool2d_forward";
    const float* X = float_data(x, fn, "x");
    const std::vector<index_t> shape = shape_of(x);
    const MaxPoolPlanes pool = max_pool_planes(fn, shape, kernel, stride, padding, ceil_mode, dilation);
    auto y = new_float({shape[0], shape[1], pool.OH, pool.OW});
    auto idx = new_int32({shape[0], shape[1], pool.OH, pool.OW});
    float* Y = mut(y);
    std::int32_t* I = idx.mutable_data();
    {
        py::gil_scoped_release nogil;
        const index_t HW = pool.H * pool.W, OHW = pool.OH * pool.OW;
#pragma omp parallel for schedule(static)
        for (index_t t = 0; t < shape[0] * shape[1]; ++t) pool(X + t * HW, Y + t * OHW, I + t * OHW);
    }
    return py::make_tuple(y, idx);
}

py::array max_pool2d_backward(const py::array& dy, const py::array& indices,
                              const std::vector<index_t>& x_shape) {
    const char* fn = "max_pool2d_backward";
    const float* DY = float_data(dy, fn, "dy");
    const std::int32_t* I = int_data<std::int32_t>(indices, fn, "indices", "int32");
    require(x_shape.size() == 4, fn, ": x_shape must have 4 entries, got ", shape_str(x_shape));
    for (index_t s : x_shape) require(s >= 0, fn, ": negative size in x_shape ", shape_str(x_shape));
    require_ndim(dy, 4, fn, "dy");
    require(dy.shape(0) == x_shape[0] && dy.shape(1) == x_shape[1], fn, ": dy ", shape_str(dy),
            " does not match x_shape ", shape_str(x_shape), " in N and C");
    require_shape(indices, shape_of(dy), fn, "indices");
    const index_t NC = x_shape[0] * x_shape[1], HW = x_shape[2] * x_shape[3];
    const index_t OHW = dy.shape(2) * dy.shape(3);
    auto dx = new_float(x_shape);
    float* DX = mut(dx);
    bool bad = false;
    {
        py::gil_scoped_release nogil;
#pragma omp parallel for schedule(static) reduction(|| : bad)
        for (index_t t = 0; t < NC; ++t)
            bad = !max_unpool_plane(DY + t * OHW, I + t * OHW, OHW, DX + t * HW, HW) || bad;
    }
    require(!bad, fn, ": indices out of range for input planes of ", x_shape[2], "x", x_shape[3]);
    return std::move(dx);
}

py::tuple adaptive_max_pool2d_forward(const py::array& x, const Pair& output_size) {
    const char* fn = "adaptive_max_pool2d_forward";
    const float* X = float_data(x, fn, "x");
    require_ndim(x, 4, fn, "x");
    require_pair(output_size, 1, fn, "output_size");
    const index_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
    const index_t OH = output_size.first, OW = output_size.second;
    require(H * W <= std::numeric_limits<std::int32_t>::max(), fn,
            ": plane too large for int32 indices");
    require((H > 0 && W > 0) || N * C == 0, fn, ": x ", shape_str(x),
            " has an empty plane: no window has a maximum");
    auto y = new_float({N, C, OH, OW});
    auto idx = new_int32({N, C, OH, OW});
    float* Y = mut(y);
    std::int32_t* I = idx.mutable_data();
    {
        py::gil_scoped_release nogil;
        std::vector<index_t> hs, he, ws, we;
        adaptive_windows(H, OH, hs, he);
        adaptive_windows(W, OW, ws, we);
        const index_t HW = H * W, OHW = OH * OW;
#pragma omp parallel for schedule(static)
        for (index_t t = 0; t < N * C; ++t) {
            const float* xp = X + t * HW;
            for (index_t oh = 0; oh < OH; ++oh)
                for (index_t ow = 0; ow < OW; ++ow) {
                    float best = -std::numeric_limits<float>::infinity();
                    index_t arg = hs[oh] * W + ws[ow];
                    for (index_t ih = hs[oh]; ih < he[oh]; ++ih)
                        for (index_t iw = ws[ow]; iw < we[ow]; ++iw) {
                            const float v = xp[ih * W + iw];
                            if (v > best || v != v) {  // the first maximum; a NaN wins
                                best = v;
                                arg = ih * W + iw;
                            }
                        }
                    Y[t * OHW + oh * OW + ow] = best;
                    I[t * OHW + oh * OW + ow] = static_cast<std::int32_t>(arg);
                }
        }
    }
    return py::make_tuple(y, idx);
}

// ---------------------------------------------------------------- average pooling
//
// Separable: a window's sum is the sum, over its columns, of the column sums over its rows,
// and PyTorch's divisor (either rule) is a row count times a column count. So each output
// row first adds its window's input rows into one row of W column sums (whole rows at a time,
// vectorised), then takes each window's few columns from it; backward runs the same steps in
// reverse. Visiting every tap per output instead was 4x slower (scalar, strided loads).

namespace {

// One axis of the windows: output o covers input [lo[o], hi[o]) (clipped to the input; empty
// for a window wholly in the padding), and contributes the factor count[o] to the divisor.
struct AvgAxis {
    std::vector<index_t> lo, hi, count;
    // input position i lies in the windows of outputs [first[i], last[i]) (lo and hi grow
    // with the output, so those are contiguous)
    std::vector<index_t> first, last;
};

AvgAxis avg_axis(index_t size, index_t K, index_t S, index_t P, index_t out,
                 bool count_include_pad) {
    AvgAxis a;
    for (index_t o = 0; o < out; ++o) {
        const index_t start = o * S - P;
        const index_t lo = std::max<index_t>(start, 0), hi = std::max(lo, std::min(start + K, size));
        a.lo.push_back(lo);
        a.hi.push_back(hi);
        // with padding: the window up to the padded edge (not the part ceil_mode adds)
        a.count.push_back(count_include_pad ? std::max<index_t>(0, std::min(start + K, size + P) - start)
                                            : hi - lo);
    }
    for (index_t i = 0, f = 0, l = 0; i < size; ++i) {
        while (f < out && a.hi[f] <= i) ++f;
        while (l < out && a.lo[l] <= i) ++l;
        a.first.push_back(f);
        a.last.push_back(std::max(f, l));
    }
    return a;
}

}  // namespace

py::array avg_pool2d_forward(const py::array& x, const Pair& kernel, const Pair& stride,
                             const Pair& padding, bool ceil_mode, bool count_include_pad) {
    const char* fn = "avg_pool2d_forward";
    const float* X = float_data(x, fn, "x");
    const PoolGeom g = check_pool(fn, shape_of(x), kernel, stride, padding, ceil_mode);
    auto y = new_float({g.N, g.C, g.OH, g.OW});
    float* Y = mut(y);
    {
        py::gil_scoped_release nogil;
        const AvgAxis rows = avg_axis(g.H, g.KH, g.SH, g.PH, g.OH, count_include_pad);
        const AvgAxis cols = avg_axis(g.W, g.KW, g.SW, g.PW, g.OW, count_include_pad);
        const index_t W = g.W, HW = g.H * W, OHW = g.OH * g.OW;
#pragma omp parallel
        {
            std::vector<float> colsum(static_cast<size_t>(W));
            float* __restrict c = colsum.data();
#pragma omp for schedule(static)
            for (index_t t = 0; t < g.N * g.C; ++t) {
                const float* xp = X + t * HW;
                float* yp = Y + t * OHW;
                for (index_t oh = 0; oh < g.OH; ++oh) {
                    std::fill(c, c + W, 0.f);
                    for (index_t ih = rows.lo[oh]; ih < rows.hi[oh]; ++ih) {
                        const float* __restrict r = xp + ih * W;
#pragma omp simd
                        for (index_t iw = 0; iw < W; ++iw) c[iw] += r[iw];
                    }
                    for (index_t ow = 0; ow < g.OW; ++ow) {
                        float s = 0.f;
                        for (index_t iw = cols.lo[ow]; iw < cols.hi[ow]; ++iw) s += c[iw];
                        const index_t div = rows.count[oh] * cols.count[ow];
                        yp[oh * g.OW + ow] = div > 0 ? s / static_cast<float>(div) : 0.f;
                    }
                }
            }
        }
    }
    return std::move(y);
}

py::array avg_pool2d_backward(const py::array& dy, const std::vector<index_t>& x_shape,
                              const Pair& kernel, const Pair& stride, const Pair& padding,
                              bool ceil_mode, bool count_include_pad) {
    const char* fn = "avg_pool2d_backward";
    const float* DY = float_data(dy, fn, "dy");
    const PoolGeom g = check_pool(fn, x_shape, kernel, stride, padding, ceil_mode);
    require_shape(dy, {g.N, g.C, g.OH, g.OW}, fn, "dy");
    auto dx = new_float(x_shape);
    float* DX = mut(dx);
    {
        py::gil_scoped_release nogil;
        const AvgAxis rows = avg_axis(g.H, g.KH, g.SH, g.PH, g.OH, count_include_pad);
        const AvgAxis cols = avg_axis(g.W, g.KW, g.SW, g.PW, g.OW, count_include_pad);
        const index_t W = g.W, HW = g.H * W, OW = g.OW, OHW = g.OH * OW;
#pragma omp parallel
        {
            // each output row's gradients spread over the input columns of its windows
            std::vector<float> scaled(static_cast<size_t>(OW)), spread(static_cast<size_t>(g.OH * W));
            float* __restrict v = scaled.data();
            float* __restrict c = spread.data();
#pragma omp for schedule(static)
            for (index_t t = 0; t < g.N * g.C; ++t) {
                const float* gp = DY + t * OHW;
                for (index_t oh = 0; oh < g.OH; ++oh) {
                    for (index_t ow = 0; ow < OW; ++ow) {
                        const index_t div = rows.count[oh] * cols.count[ow];
                        v[ow] = div > 0 ? gp[oh * OW + ow] / static_cast<float>(div) : 0.f;
                    }
                    for (index_t iw = 0; iw < W; ++iw) {
                        float s = 0.f;
                        for (index_t ow = cols.first[iw]; ow < cols.last[iw]; ++ow) s += v[ow];
                        c[oh * W + iw] = s;
                    }
                }
                // each input row: the sum of the spread rows of the windows it lies in,
                // written once
                for (index_t ih = 0; ih < g.H; ++ih) {
                    float* __restrict r = DX + t * HW + ih * W;
                    const index_t a = rows.first[ih], b = rows.last[ih];
                    if (a == b) {
                        std::fill(r, r + W, 0.f);
                        continue;
                    }
                    std::copy(c + a * W, c + (a + 1) * W, r);
                    for (index_t oh = a + 1; oh < b; ++oh) {
                        const float* __restrict src = c + oh * W;
#pragma omp simd
                        for (index_t iw = 0; iw < W; ++iw) r[iw] += src[iw];
                    }
                }
            }
        }
    }
    return std::move(dx);
}

}  // namespace fc
