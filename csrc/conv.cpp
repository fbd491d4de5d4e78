/* 2-D convolution (cross-correlation, as in PyTorch) by im2col + GEMM.
 *
 * What: y[n, o] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x[n, g*Cg + c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
 * for output channel o in group g, with stride, zero padding, dilation and groups.
 * Per group the whole layer is the matrix product  Y_g = W_g * col_g, where
 * W_g is [OCg, Cg*KH*KW] (the weight as stored) and col_g the unfolded input.
 * Backward: dW_g = dY_g * col_g^T,  dcol_g = W_g^T * dY_g then col2im,  db = sum of dY.
 *
 * Layout: NCHW float32, w (OC, C/groups, KH, KW).
 * Threads: the GEMMs run on OpenBLAS's threads; im2col / col2im / the
 * reorders / the bias pass use OpenMP, never at the same time as a GEMM.
 * The batch is processed in chunks of nb images so the column buffer stays
 * bounded (kColumnBytes); the chunk size is picked per layer (see plan()).
 * 1x1 convolutions with stride 1 and no padding need no im2col: x itself is
 * the column matrix of each image, so the GEMMs read x directly.
 * Stride-1 3x3 and 5x5 layers with at least 16 input and output channels per group use
 * Winograd's F(2x2, KxK) instead (winograd.cpp): 2.25x / 2.8x fewer
 * multiplications, 1.2-1.5x faster than im2col here.
 * Gradients: conv2d_backward returns new dx, dw, db arrays (dw is summed over
 * the batch chunks internally); the autograd layer does the += into .grad.
 */
#include <algorithm>
#include <cstring>

#include "im2col.h"
#include "kernels.h"
#include "winograd.h"

namespace fc {

namespace {

struct Conv {
    index_t N, C, OC, G, Cg, OCg;
    ConvGeom g;  // per-group geometry: g.C == Cg
    index_t HW() const { return g.H * g.W; }
    index_t P() const { return g.plane(); }
    index_t rows() const { return g.rows(); }
    bool pointwise() const {
        return g.KH == 1 && g.KW == 1 && g.SH == 1 && g.SW == 1 && g.PH == 0 && g.PW == 0;
    }
};

Conv check_conv(const char* fn, const py::array& x, const py::array& w, const Pair& stride,
                const Pair& padding, const Pair& dilation, index_t groups) {
    require_ndim(x, 4, fn, "x");
    require_ndim(w, 4, fn, "w");
    require(groups >= 1, fn, ": groups must be >= 1, got ", groups);
    Conv cv{};
    cv.N = x.shape(0);
    cv.C = x.shape(1);
    cv.OC = w.shape(0);
    cv.G = groups;
    require(cv.C % groups == 0, fn, ": groups=", groups, " does not divide the ", cv.C,
            " input channels of x ", shape_str(x));
    require(cv.OC % groups == 0, fn, ": groups=", groups, " does not divide the ", cv.OC,
            " output channels of w ", shape_str(w));
    cv.Cg = cv.C / groups;
    cv.OCg = cv.OC / groups;
    require(w.shape(1) == cv.Cg, fn, ": w ", shape_str(w), " expects ", w.shape(1) * groups,
            " input channels (groups=", groups, "), x ", shape_str(x), " has ", cv.C);
    cv.g = make_geom(fn, cv.Cg, x.shape(2), x.shape(3), w.shape(2), w.shape(3), stride, padding,
                     dilation);
    return cv;
}

// Upper bound for one chunk's column buffer in the batched plan: long enough
// GEMMs, and the buffer stays in the outer cache between im2col writing it and
// the GEMM reading it (measured: 16 MB beats 32 MB by 10-30% on the NIN layers).
constexpr index_t kColumnBytes = 16 << 20;
// The same per thread in the strided plan, where each thread's GEMM reads the
// columns of one image: a few images per thread keep them in the core's own L2
// cache (measured on the first layers of NIN and the tutorial network: 1 MB
// is 10-17% faster than 16 MB; going lower gains nothing).
constexpr index_t kColumnBytesPerThread = 1 << 20;

// How the batch is cut into GEMMs.
//  batched: per chunk of nb images one [rows, nb*P] column matrix and ONE GEMM
//           (W is packed once per chunk); the [OCg, nb*P] result is then
//           reordered into NCHW, and dy is reordered the other way for backward.
//  strided: per chunk one [rows, P] block per image and a batch of per-image
//           GEMMs that write NCHW directly (no reorder), spread by OpenBLAS over
//           the threads, one image per thread at a time.
// The per-image GEMMs repack W for every image, the single GEMM pays for the
// reorders of the OCg x P output of each image; so the strided plan wins when
// an image's output plane is not much smaller than a row of W (2P >= rows:
// first layers, large images) and the batched plan when W dominates (deep
// layers on small images). Measured on the NIN / CIFAR / GoogLeNet shapes: the
// better plan is 5-15% faster, the threshold sits where they are level.
struct Plan {
    bool batched;
    index_t nb;  // images per chunk
};

Plan plan(const Conv& cv) {
    Plan p;
    p.batched = 2 * cv.P() < cv.rows();
    const index_t per_image = std::max<index_t>(1, cv.rows() * cv.P() * index_t(sizeof(float)));
    index_t nb;
    if (p.batched) {
        nb = std::max<index_t>(1, kColumnBytes / per_image);
    } else {  // whole rounds of images for the threads
        const index_t T = blas_threads();
        nb = T * std::max<index_t>(1, kColumnBytesPerThread / per_image);
    }
    nb = std::min(nb, std::max<index_t>(cv.N, 1));
    if (p.batched) {  // equal chunks rather than a short last one
        const index_t chunks = (cv.N + nb - 1) / nb;
        nb = chunks ? (cv.N + chunks - 1) / chunks : 1;
    }
    p.nb = nb;
    return p;
}

// Winograd F(2x2, KxK) (winograd.cpp) for stride-1 3x3 and 5x5 layers with
// enough channels per group that its small GEMMs (inner size Cg or OCg) stay efficient,
// and an output at least one tile (2x2) wide.
bool use_winograd(const Conv& cv) {
    const ConvGeom& g = cv.g;
    return g.KH == g.KW && (g.KH == 3 || g.KH == 5) && g.SH == 1 && g.SW == 1 &&
           g.DH == 1 && g.DW == 1 && cv.Cg >= 16 && cv.OCg >= 16 && g.OH >= 2 && g.OW >= 2;
}

WinoConv wino_of(const Conv& cv) {
    return WinoConv{cv.N, cv.C, cv.OC, cv.g.H, cv.g.W, cv.g.KH, cv.g.PH, cv.g.PW, cv.G};
}

// dst[p] = src[p] + v; sizes by value so the loop vectorises (see im2col.cpp).
void add_row(float* __restrict dst, const float* __restrict src, float v, index_t n) {
    for (index_t p = 0; p < n; ++p) dst[p] = src[p] + v;
}

// y[n, o, :] = b[o] for every image n.
void fill_bias(float* y, const float* b, index_t N, index_t OC, index_t P) {
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < N * OC; ++t) std::fill_n(y + t * P, P, b[t % OC]);
}

// [OCg, nb*P] (GEMM output) -> y[n0 + i, g*OCg + o, :], plus bias.
void scatter_rows(const float* tmp, index_t nb, index_t OCg, index_t P, const float* bias, float* y,
                  index_t y_img_stride) {
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nb * OCg; ++t) {
        const index_t i = t / OCg, o = t % OCg;
        add_row(y + i * y_img_stride + o * P, tmp + o * nb * P + i * P, bias ? bias[o] : 0.f, P);
    }
}

// dy[n0 + i, g*OCg + o, :] -> [OCg, nb*P], the inverse reorder.
void gather_rows(const float* dy, index_t nb, index_t OCg, index_t P, index_t dy_img_stride,
                 float* out) {
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nb * OCg; ++t) {
        const index_t o = t / nb, i = t % nb;
        std::memcpy(out + o * nb * P + i * P, dy + i * dy_img_stride + o * P, P * sizeof(float));
    }
}

// Partial products of one batched call stay under this size (see below).
constexpr index_t kPartialBytes = 8 << 20;

// dW (M x N, contiguous) += sum over i < nb of A_i B_i^T, with A_i (M x K) at
// a + i * a_stride and B_i (N x K) at b + i * b_stride: the weight gradient summed
// over images. One batched GEMM writes each image's product to its own partial
// buffer, then the partials are added in image order (the same result for any
// thread count). A loop of per-image GEMMs into dW would synchronise the
// threads once per image, which on a loaded machine costs milliseconds each.
void sum_nt_products_over_images(index_t M, index_t N, index_t K, const float* a, index_t lda,
                                 index_t a_stride, const float* b, index_t ldb, index_t b_stride,
                                 index_t nb, float* dw) {
    const index_t MN = M * N;
    const index_t group = std::max<index_t>(
        1, std::min<index_t>(nb, kPartialBytes / std::max<index_t>(1, MN * index_t(sizeof(float)))));
    float* partial = scratch(2).get(group * MN);
    for (index_t i0 = 0; i0 < nb; i0 += group) {
        const index_t count = std::min(group, nb - i0);
        sgemm_batch_strided(false, true, M, N, K, 1.f, a + i0 * a_stride, lda, a_stride,
                            b + i0 * b_stride, ldb, b_stride, 0.f, partial, N, MN, count);
#pragma omp parallel for schedule(static)
        for (index_t j = 0; j < MN; ++j) {
            float s = dw[j];
            for (index_t i = 0; i < count; ++i) s += partial[i * MN + j];
            dw[j] = s;
        }
    }
}

}  // namespace

// ---------------------------------------------------------------- forward

py::array conv2d_forward(const py::array& x, const py::array& w, const std::optional<py::array>& b,
                         const Pair& stride, const Pair& padding, const Pair& dilation,
                         index_t groups) {
    const char* fn = "conv2d_forward";
    const float* X = float_data(x, fn, "x");
    const float* Wt = float_data(w, fn, "w");
    const Conv cv = check_conv(fn, x, w, stride, padding, dilation, groups);
    const float* B = nullptr;
    if (b) {
        B = float_data(*b, fn, "b");
        require_shape(*b, {cv.OC}, fn, "b");
    }
    auto y = new_float({cv.N, cv.OC, cv.g.OH, cv.g.OW});
    float* Y = mut(y);
    if (cv.N == 0 || cv.OC == 0) return std::move(y);

    py::gil_scoped_release nogil;
    const index_t P = cv.P(), rows = cv.rows(), HW = cv.HW();
    const index_t x_img = cv.C * HW, y_img = cv.OC * P;

    if (cv.pointwise()) {  // y[n, g] = W_g x[n, g] (+ b): x is already the column matrix
        // With a bias, y starts as b and the GEMMs add to it (beta = 1): that
        // takes the place of BLAS's own pass zeroing y, not an extra pass.
        if (B) fill_bias(Y, B, cv.N, cv.OC, P);
        for (index_t gi = 0; gi < cv.G; ++gi)
            sgemm_batch_strided(false, false, cv.OCg, P, cv.Cg, 1.f, Wt + gi * cv.OCg * rows, rows,
                                0, X + gi * cv.Cg * HW, P, x_img, B ? 1.f : 0.f,
                                Y + gi * cv.OCg * P, P, y_img, cv.N);
        return std::move(y);
    }

    if (use_winograd(cv)) {
        winograd_forward(wino_of(cv), X, Wt, B, Y);
        return std::move(y);
    }

    const Plan pl = plan(cv);
    const index_t nb_max = pl.nb;
    if (pl.batched) {  // bias added while reordering the GEMM output into NCHW
        float* col = scratch(0).get(rows * nb_max * P);
        float* tmp = scratch(1).get(cv.OCg * nb_max * P);
        for (index_t n0 = 0; n0 < cv.N; n0 += nb_max) {
            const index_t nb = std::min(nb_max, cv.N - n0);
            for (index_t gi = 0; gi < cv.G; ++gi) {
                im2col(X + n0 * x_img + gi * cv.Cg * HW, nb, x_img, cv.g, col, ColLayout{P, nb * P});
                sgemm(false, false, cv.OCg, nb * P, rows, 1.f, Wt + gi * cv.OCg * rows, rows, col,
                      nb * P, 0.f, tmp, nb * P);
                scatter_rows(tmp, nb, cv.OCg, P, B ? B + gi * cv.OCg : nullptr,
                             Y + n0 * y_img + gi * cv.OCg * P, y_img);
            }
        }
        return std::move(y);
    }

    // Per-image GEMMs writing NCHW directly. The bias rides along as one more
    // GEMM row: W gets a column b and each image's columns a row of ones, which
    // saves a whole extra pass over y (first layers: y is 20-60x larger than x).
    const index_t K = B ? rows + 1 : rows;
    float* col = scratch(0).get(K * nb_max * P);
    if (B) {
        for (index_t i = 0; i < nb_max; ++i) std::fill_n(col + (i * K + rows) * P, P, 1.f);
    }
    float* wb = B ? scratch(1).get(cv.OC * K) : nullptr;
    if (B) {
        for (index_t o = 0; o < cv.OC; ++o) {
            std::copy_n(Wt + o * rows, rows, wb + o * K);
            wb[o * K + rows] = B[o];
        }
    }
    const float* w_rows = B ? wb : Wt;
    for (index_t n0 = 0; n0 < cv.N; n0 += nb_max) {
        const index_t nb = std::min(nb_max, cv.N - n0);
        for (index_t gi = 0; gi < cv.G; ++gi) {
            im2col(X + n0 * x_img + gi * cv.Cg * HW, nb, x_img, cv.g, col, ColLayout{K * P, P});
            sgemm_batch_strided(false, false, cv.OCg, P, K, 1.f, w_rows + gi * cv.OCg * K, K, 0,
                                col, P, K * P, 0.f, Y + n0 * y_img + gi * cv.OCg * P, P, y_img, nb);
        }
    }
    return std::move(y);
}

// ---------------------------------------------------------------- backward

py::tuple conv2d_backward(const py::array& x, const py::array& w, const py::array& dy,
                          const Pair& stride, const Pair& padding, const Pair& dilation,
                          index_t groups, bool need_dx, bool need_dw, bool need_db) {
    const char* fn = "conv2d_backward";
    const float* X = float_data(x, fn, "x");
    const float* Wt = float_data(w, fn, "w");
    const float* DY = float_data(dy, fn, "dy");
    const Conv cv = check_conv(fn, x, w, stride, padding, dilation, groups);
    require_shape(dy, {cv.N, cv.OC, cv.g.OH, cv.g.OW}, fn, "dy");

    py::object dx_obj = py::none(), dw_obj = py::none(), db_obj = py::none();
    float *DX = nullptr, *DW = nullptr, *DB = nullptr;
    if (need_dx) {
        auto a = new_float({cv.N, cv.C, cv.g.H, cv.g.W});
        DX = mut(a);
        dx_obj = a;
    }
    if (need_dw) {
        auto a = new_float({cv.OC, cv.Cg, cv.g.KH, cv.g.KW});
        DW = mut(a);
        dw_obj = a;
    }
    if (need_db) {
        auto a = new_float({cv.OC});
        DB = mut(a);
        db_obj = a;
    }

    {
        py::gil_scoped_release nogil;
        const index_t P = cv.P(), rows = cv.rows(), HW = cv.HW();
        const index_t x_img = cv.C * HW, y_img = cv.OC * P;

        if (DB) {  // db[o] = sum over n, p of dy; double accumulators for long sums
#pragma omp parallel for schedule(static)
            for (index_t o = 0; o < cv.OC; ++o) {
                double s = 0;
                for (index_t n = 0; n < cv.N; ++n) s += sum_floats(DY + n * y_img + o * P, P);
                DB[o] = static_cast<float>(s);
            }
        }
        if (DW && !use_winograd(cv)) std::fill(DW, DW + cv.OC * rows, 0.f);  // GEMMs add into it

        if ((DX || DW) && use_winograd(cv)) {
            winograd_backward(wino_of(cv), X, Wt, DY, DX, DW);
        } else if (cv.pointwise()) {
            for (index_t gi = 0; gi < cv.G; ++gi) {
                const float* wg = Wt + gi * cv.OCg * rows;
                if (DX)  // dx[n, g] = W_g^T dy[n, g]
                    sgemm_batch_strided(true, false, cv.Cg, P, cv.OCg, 1.f, wg, rows, 0,
                                        DY + gi * cv.OCg * P, P, y_img, 0.f, DX + gi * cv.Cg * HW,
                                        P, x_img, cv.N);
                if (DW)  // dW_g = sum over n of dy[n, g] x[n, g]^T
                    sum_nt_products_over_images(cv.OCg, cv.Cg, P, DY + gi * cv.OCg * P, P, y_img,
                                                X + gi * cv.Cg * HW, P, x_img, cv.N,
                                                DW + gi * cv.OCg * rows);
            }
        } else if (DX || DW) {
            const Plan pl = plan(cv);
            const index_t nb_max = pl.nb;
            const bool batched = pl.batched;
            float* col = scratch(0).get(rows * nb_max * P);
            float* dyr = batched ? scratch(1).get(cv.OCg * nb_max * P) : nullptr;
            for (index_t n0 = 0; n0 < cv.N; n0 += nb_max) {
                const index_t nb = std::min(nb_max, cv.N - n0);
                for (index_t gi = 0; gi < cv.G; ++gi) {
                    const float* xg = X + n0 * x_img + gi * cv.Cg * HW;
                    const float* wg = Wt + gi * cv.OCg * rows;
                    const float* dyg = DY + n0 * y_img + gi * cv.OCg * P;
                    float* dwg = DW ? DW + gi * cv.OCg * rows : nullptr;
                    float* dxg = DX ? DX + n0 * x_img + gi * cv.Cg * HW : nullptr;
                    if (batched) {
                        const ColLayout lay{P, nb * P};
                        gather_rows(dyg, nb, cv.OCg, P, y_img, dyr);
                        if (dwg) {
                            im2col(xg, nb, x_img, cv.g, col, lay);
                            sgemm(false, true, cv.OCg, rows, nb * P, 1.f, dyr, nb * P, col, nb * P,
                                  1.f, dwg, rows);
                        }
                        if (dxg) {
                            sgemm(true, false, rows, nb * P, cv.OCg, 1.f, wg, rows, dyr, nb * P,
                                  0.f, col, nb * P);
                            col2im(col, nb, x_img, cv.g, dxg, lay);
                        }
                    } else {
                        const ColLayout lay{rows * P, P};
                        if (dwg) {
                            im2col(xg, nb, x_img, cv.g, col, lay);
                            sum_nt_products_over_images(cv.OCg, rows, P, dyg, P, y_img, col, P,
                                                        rows * P, nb, dwg);
                        }
                        if (dxg) {
                            sgemm_batch_strided(true, false, rows, P, cv.OCg, 1.f, wg, rows, 0, dyg,
                                                P, y_img, 0.f, col, P, rows * P, nb);
                            col2im(col, nb, x_img, cv.g, dxg, lay);
                        }
                    }
                }
            }
        }
    }
    return py::make_tuple(dx_obj, dw_obj, db_obj);
}

}  // namespace fc
