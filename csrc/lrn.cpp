/* Local response normalisation across channels (PyTorch / Caffe semantics).
 *
 * What: with lo = size/2 channels before and hi = (size-1)/2 after,
 *   scale[c] = k + alpha/size * sum_{j=c-lo}^{c+hi} x[j]^2      (x[j] = 0 outside [0, C))
 *   y[c]     = x[c] * scale[c]^-beta
 * Backward (t[j] = dy[j] * y[j] / scale[j]; channel c is in the window of j
 * exactly when j lies in [c-hi, c+lo]):
 *   dx[c] = dy[c] * scale[c]^-beta - 2*alpha*beta/size * x[c] * sum_{j=c-hi}^{c+lo} t[j]
 * TensorFlow's depth_radius r is size = 2r+1 with alpha_tf = alpha/size.
 * Both passes walk the channels once per pixel and keep a running window sum
 * (add the channel entering the window, subtract the one leaving), in double
 * so the subtractions do not drift.
 * Layout: (N, C, *) float32, usually NCHW; S = product of the trailing dims.
 * Threads: OpenMP over (image, block of kBlock pixels); a block's running sums
 * are a small array so the loops over pixels vectorise and read x contiguously.
 * Gradients: dx is written (returned new).
 */
#include <algorithm>
#include <cmath>

#include "kernels.h"

namespace fc {

namespace {

constexpr index_t kBlock = 256;  // pixels handled together (running sums fit in L1)

// scale^-beta; beta = 0.75 (AlexNet, GoogLeNet) and 0.5 get a sqrt form that vectorises.
inline float neg_pow(float s, float beta) {
    if (beta == 0.75f) {
        const float r = std::sqrt(s);
        return 1.f / (r * std::sqrt(r));
    }
    if (beta == 0.5f) return 1.f / std::sqrt(s);
    return std::exp(-beta * std::log(s));
}

struct LrnShape {
    index_t N, C, S;
};

LrnShape check_lrn(const char* fn, const py::array& x, index_t size, float k) {
    require(x.ndim() >= 2, fn, ": x must be at least 2-D (N, C, ...), got shape ", shape_str(x));
    require(size >= 1, fn, ": size must be >= 1, got ", size);
    require(k >= 0.f, fn, ": k must be >= 0, got ", k);
    LrnShape s{x.shape(0), x.shape(1), 1};
    for (py::ssize_t i = 2; i < x.ndim(); ++i) s.S *= x.shape(i);
    return s;
}

}  // namespace

py::tuple lrn_forward(const py::array& x, index_t size, float alpha, float beta, float k) {
    const char* fn = "lrn_forward";
    const float* X = float_data(x, fn, "x");
    const LrnShape sh = check_lrn(fn, x, size, k);
    auto y = new_float(shape_of(x));
    auto scale = new_float(shape_of(x));
    float* Y = mut(y);
    float* SC = mut(scale);
    {
        py::gil_scoped_release nogil;
        const index_t C = sh.C, S = sh.S, lo = size / 2, hi = (size - 1) / 2;
        const index_t blocks = (S + kBlock - 1) / kBlock;
        const double a = static_cast<double>(alpha) / static_cast<double>(size);
#pragma omp parallel for schedule(static)
        for (index_t t = 0; t < sh.N * blocks; ++t) {
            const index_t n = t / blocks, p0 = (t % blocks) * kBlock, len = std::min(kBlock, S - p0);
            const float* xn = X + n * C * S + p0;
            float* yn = Y + n * C * S + p0;
            float* sn = SC + n * C * S + p0;
            double acc[kBlock];
            std::fill(acc, acc + len, 0.0);
            for (index_t j = 0; j <= std::min(hi, C - 1); ++j)  // window of channel 0: [-lo, hi]
                for (index_t p = 0; p < len; ++p) acc[p] += double(xn[j * S + p]) * xn[j * S + p];
            for (index_t c = 0; c < C; ++c) {
                const float* xc = xn + c * S;
                for (index_t p = 0; p < len; ++p) {
                    // max(): rounding in the running sum must not make the scale negative
                    const float s = static_cast<float>(k + a * std::max(acc[p], 0.0));
                    sn[c * S + p] = s;
                    yn[c * S + p] = xc[p] * neg_pow(s, beta);
                }
                // Slide the window from [c-lo, c+hi] to [c+1-lo, c+1+hi].
                if (c + hi + 1 < C) {
                    const float* in = xn + (c + hi + 1) * S;
                    for (index_t p = 0; p < len; ++p) acc[p] += double(in[p]) * in[p];
                }
                if (c - lo >= 0) {
                    const float* out = xn + (c - lo) * S;
                    for (index_t p = 0; p < len; ++p) acc[p] -= double(out[p]) * out[p];
                }
            }
        }
    }
    return py::make_tuple(y, scale);
}

py::array lrn_backward(const py::array& x, const py::array& y, const py::array& scale,
                       const py::array& dy, index_t size, float alpha, float beta, float k) {
    const char* fn = "lrn_backward";
    const float* X = float_data(x, fn, "x");
    const float* Y = float_data(y, fn, "y");
    const float* SC = float_data(scale, fn, "scale");
    const float* DY = float_data(dy, fn, "dy");
    const LrnShape sh = check_lrn(fn, x, size, k);
    const auto shape = shape_of(x);
    require_shape(y, shape, fn, "y");
    require_shape(scale, shape, fn, "scale");
    require_shape(dy, shape, fn, "dy");
    auto dx = new_float(shape);
    float* DX = mut(dx);
    {
        py::gil_scoped_release nogil;
        const index_t C = sh.C, S = sh.S, lo = size / 2, hi = (size - 1) / 2;
        const index_t blocks = (S + kBlock - 1) / kBlock;
        const double coef = 2.0 * alpha * beta / static_cast<double>(size);
#pragma omp parallel for schedule(static)
        for (index_t t = 0; t < sh.N * blocks; ++t) {
            const index_t n = t / blocks, p0 = (t % blocks) * kBlock, len = std::min(kBlock, S - p0);
            const index_t off = n * C * S + p0;
            const float *xn = X + off, *yn = Y + off, *sn = SC + off, *gn = DY + off;
            float* dn = DX + off;
            // t[j] = dy[j] * y[j] / scale[j], recomputed when it enters and leaves the window.
            auto term = [&](index_t j, index_t p) {
                return double(gn[j * S + p]) * yn[j * S + p] / sn[j * S + p];
            };
            double acc[kBlock];
            std::fill(acc, acc + len, 0.0);
            for (index_t j = 0; j <= std::min(lo, C - 1); ++j)  // channel 0 gathers [-hi, lo]
                for (index_t p = 0; p < len; ++p) acc[p] += term(j, p);
            for (index_t c = 0; c < C; ++c) {
                for (index_t p = 0; p < len; ++p) {
                    const index_t i = c * S + p;
                    dn[i] = static_cast<float>(gn[i] * neg_pow(sn[i], beta) - coef * xn[i] * acc[p]);
                }
                if (c + lo + 1 < C)
                    for (index_t p = 0; p < len; ++p) acc[p] += term(c + lo + 1, p);
                if (c - hi >= 0)
                    for (index_t p = 0; p < len; ++p) acc[p] -= term(c - hi, p);
            }
        }
    }
    return std::move(dx);
}

}  // namespace fc
