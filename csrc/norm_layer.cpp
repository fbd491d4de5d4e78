/* Group normalisation (Wu & He 2018), which is also layer normalisation
 * (Ba et al. 2016): layer_norm over the last dims of x is group_norm of x
 * viewed as (rows, K) with one group, a K-wide "channel" axis and S = 1.
 *
 * What: x viewed as (N, C, S), S = product of the trailing dims; the C
 * channels of a sample form G groups of C/G consecutive channels, so group
 * (n, g) is one contiguous row of K = C/G * S values. Per row, over its K values:
 *   mean = sum(x) / K, var = sum((x - mean)^2) / K (biased, two passes),
 *   rstd = 1 / sqrt(var + eps),  y = (x - mean) * rstd * weight[c] + bias[c]
 * Backward, with xhat = (x - mean) * rstd and g = dy * weight[c]:
 *   dx = rstd * (g - mean_row(g) - xhat * mean_row(g * xhat))
 *   dweight[c] = sum over n, s of dy * xhat,  dbias[c] = sum over n, s of dy
 * weight / bias may be None (1 and 0). Sums are float partials combined in double.
 * Layout: C-contiguous float32; mean and rstd are (N * G,) in row order.
 * Threads: OpenMP over rows (statistics, y, dx); over blocks of channels for
 * dweight / dbias, so each is summed by one thread in a fixed order.
 * Gradients: dx, dweight, dbias are returned new (the caller accumulates
 * parameter gradients into .grad).
 */
#include <algorithm>
#include <cmath>
#include <optional>

#include "kernels.h"

namespace fc {

namespace {

constexpr index_t kChannelBlock = 64;      // channels whose parameter sums one thread owns

struct GroupShape {
    index_t N, C, S, G;
    index_t Cg() const { return C / G; }   // channels per group
    index_t K() const { return Cg() * S; }  // values per row
    index_t rows() const { return N * G; }
};

GroupShape check_group(const char* fn, const py::array& x, index_t groups) {
    require(x.ndim() >= 2, fn, ": x must be (N, C, *), got shape ", shape_str(x));
    GroupShape s{x.shape(0), x.shape(1), 1, groups};
    for (py::ssize_t i = 2; i < x.ndim(); ++i) s.S *= x.shape(i);
    require(groups >= 1 && s.C % groups == 0, fn, ": groups must be >= 1 and divide the ",
            s.C, " channels of x ", shape_str(x), ", got ", groups);
    return s;
}

// sum((x - mean)^2) over n floats, in 16 float partials (vectorises) combined in double.
double sum_sq_dev(const float* __restrict x, index_t n, float mean) {
    float acc[16] = {};
    index_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; ++k) {
            const float d = x[i + k] - mean;
            acc[k] += d * d;
        }
    double s = 0;
    for (int k = 0; k < 16; ++k) s += acc[k];
    for (; i < n; ++i) s += double(x[i] - mean) * (x[i] - mean);
    return s;
}

// (sum(dy), sum(dy * (x - mean))) over n floats, in 8 float partials each (vectorises).
void dy_sums(const float* __restrict x, const float* __restrict dy, index_t n, float mean,
             double& sum_dy, double& sum_dy_xc) {
    float a[8] = {}, b[8] = {};
    index_t i = 0;
    for (; i + 8 <= n; i += 8)
        for (int k = 0; k < 8; ++k) {
            a[k] += dy[i + k];
            b[k] += dy[i + k] * (x[i + k] - mean);
        }
    sum_dy = sum_dy_xc = 0;
    for (int k = 0; k < 8; ++k) {
        sum_dy += a[k];
        sum_dy_xc += b[k];
    }
    for (; i < n; ++i) {
        sum_dy += dy[i];
        sum_dy_xc += double(dy[i]) * (x[i] - mean);
    }
}

// (sum(g), sum(g * xhat)) over one row, g = dy * weight[c], xhat = (x - mean) * rstd.
void row_grad_sums(const float* __restrict x, const float* __restrict dy, const float* w,
                   index_t Cg, index_t S, float mean, float rstd, double& sum_g,
                   double& sum_gx) {
    if (!w) {  // one run over the whole row
        dy_sums(x, dy, Cg * S, mean, sum_g, sum_gx);
        sum_gx *= rstd;
        return;
    }
    sum_g = sum_gx = 0;
    if (S == 1) {  // layer norm: a weight per element
        float a[8] = {}, b[8] = {};
        index_t j = 0;
        for (; j + 8 <= Cg; j += 8)
            for (int k = 0; k < 8; ++k) {
                const float g = dy[j + k] * w[j + k];
                a[k] += g;
                b[k] += g * (x[j + k] - mean);
            }
        for (int k = 0; k < 8; ++k) {
            sum_g += a[k];
            sum_gx += b[k];
        }
        for (; j < Cg; ++j) {
            const float g = dy[j] * w[j];
            sum_g += g;
            sum_gx += double(g) * (x[j] - mean);
        }
    } else {
        for (index_t j = 0; j < Cg; ++j) {
            double a, b;
            dy_sums(x + j * S, dy + j * S, S, mean, a, b);
            sum_g += a * w[j];
            sum_gx += b * w[j];
        }
    }
    sum_gx *= rstd;
}

}  // namespace

py::tuple group_norm_forward(const py::array& x, const std::optional<py::array>& weight,
                             const std::optional<py::array>& bias, index_t groups, float eps) {
    const char* fn = "group_norm_forward";
    const float* X = float_data(x, fn, "x");
    const GroupShape s = check_group(fn, x, groups);
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* B = channel_vec(bias, s.C, fn, "bias");
    require(eps >= 0.f, fn, ": eps must be >= 0, got ", eps);
    auto y = new_float(shape_of(x));
    auto mean = new_float({s.rows()});
    auto rstd = new_float({s.rows()});
    float *Y = mut(y), *MEAN = mut(mean), *RSTD = mut(rstd);
    {
        py::gil_scoped_release nogil;
        const index_t K = s.K(), Cg = s.Cg(), S = s.S;
#pragma omp parallel for schedule(static) if (s.rows() * K > kParallelMin)
        for (index_t r = 0; r < s.rows(); ++r) {
            const float* xr = X + r * K;
            float* yr = Y + r * K;
            const float mu = K ? static_cast<float>(sum_floats(xr, K) / K) : 0.f;
            const double var = K ? sum_sq_dev(xr, K, mu) / K : 0.0;
            const float rs = static_cast<float>(1.0 / std::sqrt(var + eps));
            MEAN[r] = mu;
            RSTD[r] = rs;
            const index_t c0 = (r % s.G) * Cg;
            if (S == 1) {  // layer norm: an affine pair per element; one vector loop per case
                const float *w = Wt ? Wt + c0 : nullptr, *b = B ? B + c0 : nullptr;
                if (w && b)
                    for (index_t j = 0; j < Cg; ++j) yr[j] = (xr[j] - mu) * rs * w[j] + b[j];
                else if (w)
                    for (index_t j = 0; j < Cg; ++j) yr[j] = (xr[j] - mu) * rs * w[j];
                else if (b)
                    for (index_t j = 0; j < Cg; ++j) yr[j] = (xr[j] - mu) * rs + b[j];
                else
                    for (index_t j = 0; j < Cg; ++j) yr[j] = (xr[j] - mu) * rs;
                continue;
            }
            for (index_t j = 0; j < Cg; ++j) {
                const float a = rs * (Wt ? Wt[c0 + j] : 1.f);
                const float b = (B ? B[c0 + j] : 0.f) - mu * a;
                const float* xs = xr + j * S;
                float* ys = yr + j * S;
                for (index_t i = 0; i < S; ++i) ys[i] = xs[i] * a + b;
            }
        }
    }
    return py::make_tuple(y, mean, rstd);
}

py::tuple group_norm_backward(const py::array& x, const std::optional<py::array>& weight,
                              const py::array& mean, const py::array& rstd, const py::array& dy,
                              index_t groups, bool need_dx, bool need_dparams) {
    const char* fn = "group_norm_backward";
    const float* X = float_data(x, fn, "x");
    const float* DY = float_data(dy, fn, "dy");
    const GroupShape s = check_group(fn, x, groups);
    require_shape(dy, shape_of(x), fn, "dy");
    const float* Wt = channel_vec(weight, s.C, fn, "weight");
    const float* MEAN = float_data(mean, fn, "mean");
    const float* RSTD = float_data(rstd, fn, "rstd");
    require_shape(mean, {s.rows()}, fn, "mean");
    require_shape(rstd, {s.rows()}, fn, "rstd");
    py::object dx = py::none(), dweight = py::none(), dbias = py::none();
    float *DX = nullptr, *DW = nullptr, *DB = nullptr;
    if (need_dx) {
        auto a = new_float(shape_of(x));
        DX = mut(a);
        dx = a;
    }
    if (need_dparams) {
        auto a = new_float({s.C}), b = new_float({s.C});
        DW = mut(a);
        DB = mut(b);
        dweight = a;
        dbias = b;
    }
    {
        py::gil_scoped_release nogil;
        const index_t K = s.K(), Cg = s.Cg(), S = s.S;
        const bool big = s.rows() * K > kParallelMin;
        if (DX) {
#pragma omp parallel for schedule(static) if (big)
            for (index_t r = 0; r < s.rows(); ++r) {
                const float *xr = X + r * K, *dr = DY + r * K;
                float* out = DX + r * K;
                const float mu = MEAN[r], rs = RSTD[r];
                const index_t c0 = (r % s.G) * Cg;
                double sum_g, sum_gx;
                row_grad_sums(xr, dr, Wt ? Wt + c0 : nullptr, Cg, S, mu, rs, sum_g, sum_gx);
                const float mean_g = K ? static_cast<float>(sum_g / K) : 0.f;
                const float mean_gx = K ? static_cast<float>(sum_gx / K) : 0.f;
                if (S == 1) {  // layer norm: a weight per element, or none
                    if (Wt) {
                        const float* w = Wt + c0;
                        for (index_t j = 0; j < Cg; ++j)
                            out[j] = rs * (dr[j] * w[j] - mean_g - (xr[j] - mu) * rs * mean_gx);
                    } else {
                        for (index_t j = 0; j < Cg; ++j)
                            out[j] = rs * (dr[j] - mean_g - (xr[j] - mu) * rs * mean_gx);
                    }
                    continue;
                }
                for (index_t j = 0; j < Cg; ++j) {
                    const float wc = Wt ? Wt[c0 + j] : 1.f;
                    const float *xs = xr + j * S, *ds = dr + j * S;
                    float* o = out + j * S;
                    for (index_t i = 0; i < S; ++i) {
                        const float xhat = (xs[i] - mu) * rs;
                        o[i] = rs * (ds[i] * wc - mean_g - xhat * mean_gx);
                    }
                }
            }
        }
        if (DW) {
            const index_t blocks = (s.C + kChannelBlock - 1) / kChannelBlock;
#pragma omp parallel for schedule(static) if (big)
            for (index_t blk = 0; blk < blocks; ++blk) {
                const index_t c_begin = blk * kChannelBlock;
                const index_t c_end = std::min(s.C, c_begin + kChannelBlock);
                double acc_w[kChannelBlock] = {}, acc_b[kChannelBlock] = {};
                for (index_t n = 0; n < s.N; ++n) {
                    if (S == 1 && s.G == 1) {  // layer norm: one row per n, channels adjacent
                        const float mu = MEAN[n], rs = RSTD[n];
                        const float *xs = X + n * s.C, *ds = DY + n * s.C;
                        for (index_t c = c_begin; c < c_end; ++c) {
                            acc_w[c - c_begin] += ds[c] * ((xs[c] - mu) * rs);
                            acc_b[c - c_begin] += ds[c];
                        }
                        continue;
                    }
                    for (index_t c = c_begin; c < c_end; ++c) {
                        const index_t r = n * s.G + c / Cg;
                        double a, b;
                        dy_sums(X + (n * s.C + c) * S, DY + (n * s.C + c) * S, S, MEAN[r], a, b);
                        acc_w[c - c_begin] += b * RSTD[r];
                        acc_b[c - c_begin] += a;
                    }
                }
                for (index_t c = c_begin; c < c_end; ++c) {
                    DW[c] = static_cast<float>(acc_w[c - c_begin]);
                    DB[c] = static_cast<float>(acc_b[c - c_begin]);
                }
            }
        }
    }
    return py::make_tuple(dx, dweight, dbias);
}

}  // namespace fc
