/* Batch normalisation (Ioffe & Szegedy 2015) for (N, C) and (N, C, H, W).
 *
 * What: per channel c, over the M = N*H*W values of that channel,
 *   train: mean = sum(x)/M, var = sum((x-mean)^2)/M (biased), then
 *   y = (x - mean) / sqrt(var + eps) * weight + bias
 *   eval:  the same with the given (running) mean and var.
 *   backward (training mode, batch statistics), xhat = (x - mean) * invstd:
 *     dbias = sum(dy), dweight = sum(dy * xhat),
 *     dx = weight * invstd * (dy - dbias/M - xhat * dweight/M)
 * Statistics without E[x^2] - E[x]^2 cancellation when |mean| >> std: each
 * row (n, c) gives its sum and its squared deviations from its own mean (two
 * passes over the row, in L1), combined per channel in double as Chan, Golub
 * & LeVeque (1979) do; float partial sums per row in fixed lanes (row_sum).
 * weight / bias may be None (affine=False): 1 and 0.
 * Layout: x viewed as (N, C, S), S = product of the trailing dims (1 for 2-D);
 * channel c is N runs of S floats, c*S + n*C*S.
 * Threads: OpenMP over (n, c) rows in memory order, so each thread streams
 * through a contiguous block (a channel's rows lie a whole image apart);
 * per-row sums go to a table added up per channel in a fixed order, so
 * results do not depend on the thread count. Every output element has one
 * writer.
 * Gradients: dx, dweight, dbias are returned new (the caller accumulates
 * parameter gradients into .grad).
 */
#include <algorithm>
#include <atomic>
#include <cmath>
#include <optional>
#include <vector>

#include "kernels.h"
#include "pool.h"

namespace fc {

namespace {

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

// The sum of f(i) over one row of S values: kLanes float partial sums (independent
// chains, so the loop vectorises and does not wait on one adder; their order is fixed,
// so the result does not depend on the machine), added up in double with the rest.
template <typename F>
inline double row_sum(index_t S, F f) {
    float lane[kLanes] = {};
    index_t i = 0;
    for (; i + kLanes <= S; i += kLanes)
        for (int l = 0; l < kLanes; ++l) lane[l] += f(i + l);
    double out = 0.0;
    for (int l = 0; l < kLanes; ++l) out += lane[l];
    for (; i < S; ++i) out += f(i);
    return out;
}

// Two sums per row (n, c), f(t, out) writing row t's, the rows split over the threads in
// memory order; sums[2 * (n * C + c) + j].
template <typename F>
std::vector<double> row_pairs(const BnShape& s, F f) {
    const index_t rows = s.N * s.C;
    std::vector<double> sums(static_cast<size_t>(2 * rows));
#pragma omp parallel for schedule(static) if (s.M() * s.C > kParallelMin)
    for (index_t t = 0; t < rows; ++t) f(t, &sums[2 * t]);
    return sums;
}

// y[t * S + i] = f(t, i) over every row t, split over the threads in memory order.
template <typename F>
void each_row(const BnShape& s, float* y, F f) {
    const bool stream = s.M() * s.C * index_t(sizeof(float)) >= kStreamBytes;
#pragma omp parallel if (s.M() * s.C > kParallelMin)
    {
#pragma omp for schedule(static)
        for (index_t t = 0; t < s.N * s.C; ++t)
            write_run(y + t * s.S, s.S, stream, [&](index_t i) { return f(t, i); });
        if (stream) stream_fence();
    }
}

// The batch statistics of x: MEAN, VAR (biased) per channel, and y = x * a + b with the
// constants folded in.
void train_statistics(const float* X, const BnShape& s, const float* Wt, const float* B, float eps,
                      float* MEAN, float* VAR, std::vector<float>& a, std::vector<float>& b) {
    // Per row: its sum and its squared deviations from its own mean.
    const std::vector<double> sums = row_pairs(s, [&](index_t t, double* out) {
        const float* x = X + t * s.S;
        out[0] = row_sum(s.S, [x](index_t i) { return x[i]; });
        const float mu = static_cast<float>(out[0] / static_cast<double>(s.S));
        out[1] = row_sum(s.S, [x, mu](index_t i) { return (x[i] - mu) * (x[i] - mu); });
    });
    // Per channel, rows in image order: mean, then M2 = sum of each row's M2 and
    // S * (its mean - the mean)^2.
    a.resize(s.C);
    b.resize(s.C);
    const double M = static_cast<double>(s.M()), S = static_cast<double>(s.S);
    for (index_t c = 0; c < s.C; ++c) {
        double sum = 0.0, m2 = 0.0;
        for (index_t n = 0; n < s.N; ++n) sum += sums[2 * (n * s.C + c)];
        const double mu = sum / M;
        for (index_t n = 0; n < s.N; ++n) {
            const double d = sums[2 * (n * s.C + c)] / S - mu;
            m2 += sums[2 * (n * s.C + c) + 1] + S * d * d;
        }
        const double v2 = m2 / M, invstd = 1.0 / std::sqrt(v2 + eps);
        MEAN[c] = static_cast<float>(mu);
        VAR[c] = static_cast<float>(v2);
        const double sc = (Wt ? Wt[c] : 1.0) * invstd;
        a[c] = static_cast<float>(sc);
        b[c] = static_cast<float>((B ? B[c] : 0.0) - mu * sc);
    }
}

inline float normalised(float x, float a, float b) { return x * a + b; }

// The backward's per-channel constants from the rows' sum(dy) and sum(dy * (x - mean)),
// dy_row(t) giving row t of dy: DW, DB, and
// dx = k * (dy - mean(dy)) - k * xc * invstd^2 * mean(dy * xc), k = weight * invstd.
struct BackwardConstants {
    std::vector<float> k, mean_dy, slope;
    float dx(float dy, float x, float mean, index_t c) const { return k[c] * (dy - mean_dy[c] - (x - mean) * slope[c]); }
};
template <typename Row>
BackwardConstants backward_constants(const float* X, const BnShape& s, const float* Wt, const float* MEAN,
                                     const float* VAR, float eps, float* DW, float* DB, Row dy_row) {
    const std::vector<double> sums = row_pairs(s, [&](index_t t, double* out) {
        const float* x = X + t * s.S;
        const float* d = dy_row(t);
        const float muf = MEAN[t % s.C];
        out[0] = row_sum(s.S, [d](index_t i) { return d[i]; });
        out[1] = row_sum(s.S, [x, d, muf](index_t i) { return d[i] * (x[i] - muf); });
    });
    BackwardConstants k{std::vector<float>(s.C), std::vector<float>(s.C), std::vector<float>(s.C)};
    const double M = static_cast<double>(s.M());
    for (index_t c = 0; c < s.C; ++c) {
        double sum_dy = 0.0, sum_dy_xc = 0.0;  // rows in image order
        for (index_t n = 0; n < s.N; ++n) {
            sum_dy += sums[2 * (n * s.C + c)];
            sum_dy_xc += sums[2 * (n * s.C + c) + 1];
        }
        const double invstd = 1.0 / std::sqrt(double(VAR[c]) + eps);
        DB[c] = static_cast<float>(sum_dy);
        DW[c] = static_cast<float>(sum_dy_xc * invstd);
        k.k[c] = static_cast<float>((Wt ? Wt[c] : 1.0) * invstd);
        k.mean_dy[c] = static_cast<float>(sum_dy / M);
        k.slope[c] = static_cast<float>(invstd * invstd * sum_dy_xc / M);
    }
    return k;
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
        std::vector<float> a, b;
        train_statistics(X, s, Wt, B, eps, MEAN, VAR, a, b);
        each_row(s, Y, [&](index_t t, index_t i) { return normalised(X[t * s.S + i], a[t % s.C], b[t % s.C]); });
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
        const BackwardConstants k = backward_constants(X, s, Wt, MEAN, VAR, eps, DW, DB,
                                                       [&](index_t t) { return DY + t * s.S; });
        each_row(s, DX, [&](index_t t, index_t i) {
            const index_t c = t % s.C, off = t * s.S + i;
            return k.dx(DY[off], X[off], MEAN[c], c);
        });
    }
    return py::make_tuple(dx, dweight, dbias);
}

// ---- batch norm, then max pooling: the normalised values are pooled as each plane is made
// (in L1), never stored; the backward rebuilds each plane's dy from the pooled gradient the
// same way (max_unpool_plane), so values and gradients are those of the two ops bit for bit.

py::tuple batch_norm_max_pool2d_forward(const py::array& x, const std::optional<py::array>& weight,
                                        const std::optional<py::array>& bias, float eps, const Pair& kernel,
                                        const Pair& stride, const Pair& padding, bool ceil_mode,
                                        const Pair& dilation) {
    const char* fn = "batch_norm_max_pool2d_forward";
    const float* X = float_data(x, fn, "x");
    require_ndim(x, 4, fn, "x");
    const BnShape s = check_bn(fn, x);
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* B = channel_vec(bias, s.C, fn, "bias");
    require(eps >= 0.f, fn, ": eps must be >= 0, got ", eps);
    const MaxPoolPlanes pool = max_pool_planes(fn, shape_of(x), kernel, stride, padding, ceil_mode, dilation);
    auto y = new_float({s.N, s.C, pool.OH, pool.OW});
    auto idx = new_int32({s.N, s.C, pool.OH, pool.OW});
    auto mean = new_float({s.C});
    auto var = new_float({s.C});
    float *Y = mut(y), *MEAN = mut(mean), *VAR = mut(var);
    std::int32_t* I = idx.mutable_data();
    {
        py::gil_scoped_release nogil;
        std::vector<float> a, b;
        train_statistics(X, s, Wt, B, eps, MEAN, VAR, a, b);
        const index_t OHW = pool.OH * pool.OW;
#pragma omp parallel if (s.M() * s.C > kParallelMin)
        {
            std::vector<float> plane(static_cast<size_t>(s.S));
#pragma omp for schedule(static)
            for (index_t t = 0; t < s.N * s.C; ++t) {
                const float* x = X + t * s.S;
                const float at = a[t % s.C], bt = b[t % s.C];
                for (index_t i = 0; i < s.S; ++i) plane[i] = normalised(x[i], at, bt);
                pool(plane.data(), Y + t * OHW, I + t * OHW);
            }
        }
    }
    return py::make_tuple(y, idx, mean, var);
}

py::tuple batch_norm_max_pool2d_backward(const py::array& x, const std::optional<py::array>& weight,
                                         const py::array& mean, const py::array& var, float eps,
                                         const py::array& dy, const py::array& indices) {
    const char* fn = "batch_norm_max_pool2d_backward";
    const float* X = float_data(x, fn, "x");
    require_ndim(x, 4, fn, "x");
    const BnShape s = check_bn(fn, x);
    const float* DY = float_data(dy, fn, "dy");
    require_ndim(dy, 4, fn, "dy");
    require(dy.shape(0) == s.N && dy.shape(1) == s.C, fn, ": dy ", shape_str(dy), " does not match x ",
            shape_str(x), " in N and C");
    const std::int32_t* I = int_data<std::int32_t>(indices, fn, "indices", "int32");
    require_shape(indices, shape_of(dy), fn, "indices");
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* MEAN = channel_vec(mean, s.C, fn, "mean");
    const float* VAR = channel_vec(var, s.C, fn, "var");
    const index_t OHW = dy.shape(2) * dy.shape(3);
    auto dx = new_float(shape_of(x));
    auto dweight = new_float({s.C});
    auto dbias = new_float({s.C});
    float *DX = mut(dx), *DW = mut(dweight), *DB = mut(dbias);
    std::atomic<bool> bad{false};  // an index off its plane (never written through)
    {
        py::gil_scoped_release nogil;
        auto dy_row = [&](index_t t) {  // the plane's dy, in this thread's buffer
            static thread_local std::vector<float> d;
            d.resize(static_cast<size_t>(s.S));
            if (!max_unpool_plane(DY + t * OHW, I + t * OHW, OHW, d.data(), s.S)) bad = true;
            return d.data();
        };
        const BackwardConstants k = backward_constants(X, s, Wt, MEAN, VAR, eps, DW, DB, dy_row);
        if (!bad) {
            const bool stream = s.M() * s.C * index_t(sizeof(float)) >= kStreamBytes;
#pragma omp parallel if (s.M() * s.C > kParallelMin)
            {
#pragma omp for schedule(static)
                for (index_t t = 0; t < s.N * s.C; ++t) {
                    const float* d = dy_row(t);
                    const float* x = X + t * s.S;
                    const index_t c = t % s.C;
                    write_run(DX + t * s.S, s.S, stream, [&](index_t i) { return k.dx(d[i], x[i], MEAN[c], c); });
                }
                if (stream) stream_fence();
            }
        }
    }
    require(!bad, fn, ": indices out of range for input planes of ", x.shape(2), "x", x.shape(3));
    return py::make_tuple(dx, dweight, dbias);
}

}  // namespace fc
