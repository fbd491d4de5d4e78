/* Batch normalisation (Ioffe & Szegedy 2015) for (N, C) and (N, C, H, W).
 *
 * What: per channel c, over the M = N*H*W values of that channel,
 *   train: mean = sum(x)/M, var = sum((x-mean)^2)/M (biased), then
 *   y = (x - mean) / sqrt(var + eps) * weight + bias
 *   eval:  the same with the given (running) mean and var.
 *   backward (training mode, batch statistics), xhat = (x - mean) * invstd:
 *     dbias = sum(dy), dweight = sum(dy * xhat),
 *     dx = weight * invstd * (dy - dbias/M - xhat * dweight/M)
 * Statistics are two-pass (mean first, then squared deviations): no
 * E[x^2] - E[x]^2 cancellation when |mean| >> std; float partial sums per
 * row in fixed lanes, added up in double (channel_sums).
 * weight / bias may be None (affine=False): 1 and 0.
 * Layout: x viewed as (N, C, S), S = product of the trailing dims (1 for 2-D);
 * channel c is N runs of S floats, c*S + n*C*S.
 * Threads: OpenMP over channels (statistics, backward) or over (n, c) rows
 * (eval); every output element has one writer.
 * Gradients: dx, dweight, dbias are returned new (the caller accumulates
 * parameter gradients into .grad).
 */
#include <algorithm>
#include <cmath>
#include <optional>

#include "kernels.h"

namespace fc {

namespace {

constexpr index_t kParallelMin = 1 << 15;  // elements below which one thread is faster

struct BnShape {
    index_t N, C, S;
    index_t M() const { return N * S; }
};

BnShape check_bn(const char* fn, const py::array& x) {
    require(x.ndim() >= 2, fn, ": x must be (N, C) or (N, C, H, W), got shape ", shape_str(x));
    BnShape s{x.shape(0), x.shape(1), 1};
    for (py::ssize_t i = 2; i < x.ndim(); ++i) s.S *= x.shape(i);
    return s;
}

constexpr int kLanes = 16;  // independent float partial sums per row

// Sums over channel c of (N, C, S) data: for each row (n, c) of S values, kLanes float
// partial sums (independent chains, so the loop vectorises and does not wait on one
// adder; their order is fixed, so the result does not depend on the machine), added up
// in double with the rest of the row and across rows. f(off) is the float term of
// element off; k sums at once (f writes terms[0..k)).
template <int k, typename F>
inline void channel_sums(const BnShape& s, index_t c, F f, double* out) {
    for (int j = 0; j < k; ++j) out[j] = 0;
    for (index_t n = 0; n < s.N; ++n) {
        const index_t off = (n * s.C + c) * s.S;
        float lane[k][kLanes] = {};
        index_t i = 0;
        for (; i + kLanes <= s.S; i += kLanes)
            for (int l = 0; l < kLanes; ++l) {
                float t[k];
                f(off + i + l, t);
                for (int j = 0; j < k; ++j) lane[j][l] += t[j];
            }
        for (int j = 0; j < k; ++j)
            for (int l = 0; l < kLanes; ++l) out[j] += lane[j][l];
        for (; i < s.S; ++i) {
            float t[k];
            f(off + i, t);
            for (int j = 0; j < k; ++j) out[j] += t[j];
        }
    }
}

}  // namespace

py::tuple batch_norm_forward_train(const py::array& x, const std::optional<py::array>& weight,
                                   const std::optional<py::array>& bias, float eps) {
    const char* fn = "batch_norm_forward_train";
    const float* X = float_data(x, fn, "x");
    const BnShape s = check_bn(fn, x);
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* B = channel_vec(bias, s.C, fn, "bias");
    require(eps >= 0.f, fn, ": eps must be >= 0, got ", eps);
    auto y = new_float(shape_of(x));
    auto mean = new_float({s.C});
    auto var = new_float({s.C});
    float *Y = mut(y), *MEAN = mut(mean), *VAR = mut(var);
    {
        py::gil_scoped_release nogil;
        const double M = static_cast<double>(s.M());
#pragma omp parallel for schedule(static) if (s.M() * s.C > kParallelMin)
        for (index_t c = 0; c < s.C; ++c) {
            double sum, sq;
            channel_sums<1>(s, c, [X](index_t i, float* t) { t[0] = X[i]; }, &sum);
            const double mu = sum / M;
            const float muf = static_cast<float>(mu);
            channel_sums<1>(s, c, [X, muf](index_t i, float* t) {
                const float d = X[i] - muf;
                t[0] = d * d;
            }, &sq);
            const double v2 = sq / M;
            MEAN[c] = static_cast<float>(mu);
            VAR[c] = static_cast<float>(v2);
            // y = x * a + b_shift with the per-channel constants folded in
            const double invstd = 1.0 / std::sqrt(v2 + eps);
            const double a = (Wt ? Wt[c] : 1.0) * invstd;
            const float af = static_cast<float>(a);
            const float bf = static_cast<float>((B ? B[c] : 0.0) - mu * a);
            for (index_t n = 0; n < s.N; ++n) {
                const index_t off = (n * s.C + c) * s.S;
                for (index_t i = 0; i < s.S; ++i) Y[off + i] = X[off + i] * af + bf;
            }
        }
    }
    return py::make_tuple(y, mean, var);
}

py::array batch_norm_forward_eval(const py::array& x, const py::array& mean, const py::array& var,
                                  const std::optional<py::array>& weight,
                                  const std::optional<py::array>& bias, float eps) {
    const char* fn = "batch_norm_forward_eval";
    const float* X = float_data(x, fn, "x");
    const BnShape s = check_bn(fn, x);
    const float* MEAN = channel_vec(mean, s.C, fn, "mean");
    const float* VAR = channel_vec(var, s.C, fn, "var");
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* B = channel_vec(bias, s.C, fn, "bias");
    require(eps >= 0.f, fn, ": eps must be >= 0, got ", eps);
    auto y = new_float(shape_of(x));
    float* Y = mut(y);
    {
        py::gil_scoped_release nogil;
        std::vector<float> a(s.C), b(s.C);
        for (index_t c = 0; c < s.C; ++c) {
            const double sc = (Wt ? Wt[c] : 1.0) / std::sqrt(double(VAR[c]) + eps);
            a[c] = static_cast<float>(sc);
            b[c] = static_cast<float>((B ? B[c] : 0.0) - MEAN[c] * sc);
        }
        const bool big = s.M() * s.C > kParallelMin;
        if (s.S == 1) {  // (N, C): rows of C, vectorise along C
#pragma omp parallel for schedule(static) if (big)
            for (index_t n = 0; n < s.N; ++n)
                for (index_t c = 0; c < s.C; ++c) Y[n * s.C + c] = X[n * s.C + c] * a[c] + b[c];
        } else {
#pragma omp parallel for schedule(static) if (big)
            for (index_t t = 0; t < s.N * s.C; ++t) {
                const float ac = a[t % s.C], bc = b[t % s.C];
                for (index_t i = 0; i < s.S; ++i) Y[t * s.S + i] = X[t * s.S + i] * ac + bc;
            }
        }
    }
    return std::move(y);
}

py::tuple batch_norm_backward(const py::array& x, const std::optional<py::array>& weight,
                              const py::array& mean, const py::array& var, float eps,
                              const py::array& dy) {
    const char* fn = "batch_norm_backward";
    const float* X = float_data(x, fn, "x");
    const float* DY = float_data(dy, fn, "dy");
    const BnShape s = check_bn(fn, x);
    require_shape(dy, shape_of(x), fn, "dy");
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* MEAN = channel_vec(mean, s.C, fn, "mean");
    const float* VAR = channel_vec(var, s.C, fn, "var");
    auto dx = new_float(shape_of(x));
    auto dweight = new_float({s.C});
    auto dbias = new_float({s.C});
    float *DX = mut(dx), *DW = mut(dweight), *DB = mut(dbias);
    {
        py::gil_scoped_release nogil;
        const double M = static_cast<double>(s.M());
#pragma omp parallel for schedule(static) if (s.M() * s.C > kParallelMin)
        for (index_t c = 0; c < s.C; ++c) {
            const double mu = MEAN[c], invstd = 1.0 / std::sqrt(double(VAR[c]) + eps);
            const float muf = static_cast<float>(mu);
            double sums[2];  // sum(dy), sum(dy * (x - mean))
            channel_sums<2>(s, c, [X, DY, muf](index_t i, float* t) {
                t[0] = DY[i];
                t[1] = DY[i] * (X[i] - muf);
            }, sums);
            const double sum_dy = sums[0], sum_dy_xc = sums[1];
            DB[c] = static_cast<float>(sum_dy);
            DW[c] = static_cast<float>(sum_dy_xc * invstd);
            // dx = k * (dy - mean(dy)) - k * xc * invstd^2 * mean(dy * xc), k = weight * invstd
            const double k = (Wt ? Wt[c] : 1.0) * invstd;
            const float kf = static_cast<float>(k);
            const float mean_dy = static_cast<float>(sum_dy / M);
            const float slope = static_cast<float>(invstd * invstd * sum_dy_xc / M);
            for (index_t n = 0; n < s.N; ++n) {
                const index_t off = (n * s.C + c) * s.S;
                for (index_t i = 0; i < s.S; ++i) {
                    const float xc = X[off + i] - muf;
                    DX[off + i] = kf * (DY[off + i] - mean_dy - xc * slope);
                }
            }
        }
    }
    return py::make_tuple(dx, dweight, dbias);
}

}  // namespace fc
