/* Local response normalisation across channels (PyTorch / Caffe semantics).
 *
 * What: with lo = size/2 channels before and hi = (size-1)/2 after,
 *   scale[c] = k + alpha/size * sum_{j=c-lo}^{c+hi} x[j]^2      (x[j] = 0 outside [0, C))
 *   y[c]     = x[c] * scale[c]^-beta
 * Backward (t[j] = dy[j] * y[j] / scale[j]; channel c is in the window of j
 * exactly when j lies in [c-hi, c+lo]):
 *   dx[c] = dy[c] * scale[c]^-beta - 2*alpha*beta/size * x[c] * sum_{j=c-hi}^{c+lo} t[j]
 * TensorFlow's depth_radius r is size = 2r+1 with alpha_tf = alpha/size.
 * x^2 is the float32 square as PyTorch forms it: inf once it passes float's range
 * (|x| > 1.8e19); that window's scale is then inf and its y = x * 0.
 * Non-finite values follow PyTorch's autograd of x / (k + alpha * avg(x^2))^beta:
 * where scale = inf its t is 0 for beta <= 1 but NaN for beta > 1 (0 * inf^(beta-1)),
 * and beta = 0 has no t at all (pow's gradient at exponent 0 is 0): dx = dy + 0 * x.
 * Window sums without subtraction (van Herk / Gil-Werman): cut the channels, padded
 * with zeros, into runs of `size`; a window starts inside one run and ends inside the
 * next, so its sum is the suffix sum of the first run from its start plus the prefix
 * sum of the next run up to its end. That is three additions per element, like a
 * running sum (add the entering channel, subtract the leaving one), but nothing is
 * ever subtracted: each output depends on its own window only (an inf or NaN, or a
 * huge value whose subtraction would cancel the small ones, never leaves a trace
 * in the windows after it), and every sum is exact to a few roundings (in double).
 * Layout: (N, C, *) float32, usually NCHW; S = product of the trailing dims.
 * Threads: OpenMP over (image, block of kBlock pixels); a block's sums are small
 * arrays so the loops over pixels vectorise and read x contiguously.
 * Gradients: dx is written (returned new).
 */
#include <algorithm>
#include <cmath>
#include <vector>

#include "kernels.h"

namespace fc {

namespace {

constexpr index_t kBlock = 256;  // pixels handled together (their window sums stay in cache)

// x^2 rounded to float as PyTorch forms it (inf past float's range), summed in double.
inline double square(float v) { return static_cast<double>(v * v); }

// For each c in [0, C): emit(c, a, b) with a[p] + b[p] (p < len) the sum of term(j, p) over
// the channels j in [c - before, c - before + size) that lie in [0, C), by the runs of the
// header, in padded channels u = j + before. For c in run [r0, r0 + size): a = suffix row
// c - r0, the sum over u in [c, r0 + size); b = prefix, the sum over u in [r0 + size, c + size).
// suffix holds size * kBlock doubles, prefix kBlock.
template <class Term, class Emit>
void window_sums(index_t C, index_t size, index_t before, index_t len, double* suffix,
                 double* prefix, Term term, Emit emit) {
    for (index_t r0 = 0; r0 < C; r0 += size) {  // outputs c = r0 + i, i < size
        for (index_t i = size - 1; i >= 0; --i) {
            double* row = suffix + i * kBlock;
            const double* next = i + 1 < size ? row + kBlock : nullptr;
            const index_t j = r0 + i - before;
            if (j >= 0 && j < C) {
                if (next)
                    for (index_t p = 0; p < len; ++p) row[p] = next[p] + term(j, p);
                else
                    for (index_t p = 0; p < len; ++p) row[p] = term(j, p);
            } else {
                for (index_t p = 0; p < len; ++p) row[p] = next ? next[p] : 0.0;
            }
        }
        std::fill(prefix, prefix + len, 0.0);
        for (index_t i = 0; i < size && r0 + i < C; ++i) {
            emit(r0 + i, suffix + i * kBlock, prefix);  // the window's sum: the two added
            const index_t j = r0 + size + i - before;  // enters the prefix for output c + 1
            if (j >= 0 && j < C)
                for (index_t p = 0; p < len; ++p) prefix[p] += term(j, p);
        }
    }
}

// scale^-beta; beta = 0.75 (AlexNet, GoogLeNet) and 0.5 get a sqrt form that vectorises.
// Other betas take pow, which gives 1 for beta = 0 whatever the scale (inf and NaN too), as
// PyTorch's pow does (exp(-beta * log(s)) would give NaN there).
inline float neg_pow(float s, float beta) {
    if (beta == 0.75f) {
        const float r = std::sqrt(s);
        return 1.f / (r * std::sqrt(r));
    }
    if (beta == 0.5f) return 1.f / std::sqrt(s);
    return std::pow(s, -beta);
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
        // A window reaching past both ends holds the same channels with lo, hi <= C - 1.
        const index_t lo_w = std::min(lo, std::max<index_t>(C - 1, 0));
        const index_t w = lo_w + std::min(hi, std::max<index_t>(C - 1, 0)) + 1;
#pragma omp parallel
        {
            std::vector<double> suffix(w * kBlock), prefix(kBlock);
#pragma omp for schedule(static)
            for (index_t t = 0; t < sh.N * blocks; ++t) {
                const index_t n = t / blocks, p0 = (t % blocks) * kBlock;
                const index_t len = std::min(kBlock, S - p0);
                const float* xn = X + n * C * S + p0;
                float* yn = Y + n * C * S + p0;
                float* sn = SC + n * C * S + p0;
                // The closures copy what they use: for all the compiler knows, a float
                // captured by reference could be overwritten by the stores to y, and
                // reloading it would keep the loops over pixels from vectorising.
                window_sums(
                    C, w, lo_w, len, suffix.data(), prefix.data(),
                    [=](index_t j, index_t p) { return square(xn[j * S + p]); },
                    [=](index_t c, const double* __restrict part, const double* __restrict rest) {
                        const float* __restrict xc = xn + c * S;
                        float* __restrict sc = sn + c * S;
                        float* __restrict yc = yn + c * S;
                        for (index_t p = 0; p < len; ++p) {
                            const float s = static_cast<float>(k + a * (part[p] + rest[p]));
                            sc[p] = s;
                            yc[p] = xc[p] * neg_pow(s, beta);
                        }
                    });
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
        const index_t hi_w = std::min(hi, std::max<index_t>(C - 1, 0));  // as in lrn_forward
        const index_t w = hi_w + std::min(lo, std::max<index_t>(C - 1, 0)) + 1;
        const bool steep = beta > 1.f;
        const index_t total = beta == 0.f ? sh.N * C * S : 0;  // y = x: dx = dy + 0 * x
#pragma omp parallel for schedule(static) if (total > (1 << 15))
        for (index_t i = 0; i < total; ++i) DX[i] = DY[i] + 0.f * X[i];
#pragma omp parallel if (beta != 0.f)
        if (beta != 0.f) {
            std::vector<double> suffix(w * kBlock), prefix(kBlock);
#pragma omp for schedule(static)
            for (index_t t = 0; t < sh.N * blocks; ++t) {
                const index_t n = t / blocks, p0 = (t % blocks) * kBlock;
                const index_t len = std::min(kBlock, S - p0);
                const index_t off = n * C * S + p0;
                const float *xn = X + off, *yn = Y + off, *sn = SC + off, *gn = DY + off;
                float* dn = DX + off;
                // channel c gathers t[j] = dy[j] * y[j] / scale[j] over [c-hi, c+lo]
                // (closures by value, as in lrn_forward)
                window_sums(
                    C, w, hi_w, len, suffix.data(), prefix.data(),
                    [=](index_t j, index_t p) {
                        const index_t i = j * S + p;
                        const double v = double(gn[i]) * yn[i] / sn[i];
                        return steep && sn[i] == HUGE_VALF ? NAN : v;
                    },
                    [=](index_t c, const double* __restrict part, const double* __restrict rest) {
                        const float* __restrict xc = xn + c * S;
                        const float* __restrict sc = sn + c * S;
                        const float* __restrict gc = gn + c * S;
                        float* __restrict dc = dn + c * S;
                        for (index_t p = 0; p < len; ++p)
                            dc[p] = static_cast<float>(gc[p] * neg_pow(sc[p], beta) -
                                                       coef * xc[p] * (part[p] + rest[p]));
                    });
            }
        }
    }
    return std::move(dx);
}

}  // namespace fc
