/* 2-D convolution (cross-correlation, as in PyTorch) as GEMMs over the column matrix.
 *
 * What: y[n, o] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x[n, g*Cg + c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
 * for output channel o in group g, with stride, zero padding, dilation and groups.
 * Per group the whole layer is the matrix product  Y_g = W_g * col_g, where
 * W_g is [OCg, Cg*KH*KW] (the weight as stored) and col_g the unfolded input,
 * one column per (image, output pixel).
 * Backward: dW_g = dY_g * col_g^T,  dcol_g = W_g^T * dY_g then col2im,  db = sum of dY.
 *
 * Routes: which kernel computes what. choose_route() below decides, from the
 * constants next to it; nothing else in this file picks a route.
 * rows = Cg*KH*KW, the column rows of one group; T = get_num_threads().
 *
 *   Winograd: KxK with K = 3 or 5, stride 1, dilation 1, Cg >= kWinogradMinInChannels (32),
 *             OCg >= kWinogradMinOutChannels (16), OH and OW >= kWinogradMinOutput (2)
 *     y, dx, dw  winograd_forward / winograd_backward (winograd.cpp, batched GEMMs on OpenBLAS)
 *   1x1, stride 1, no padding ("pointwise": x itself is the column matrix)
 *     y          gemm_columns (own kernels), reading x in place
 *     dw         rows <= kOwnKernelRowsDw (1024):   weight_grad_columns (own)
 *                otherwise                          blas_weight_grad_1x1 (OpenBLAS, batched per image)
 *     dx         rows <= kOwnKernelRowsDx1x1 (256): gemm_columns over dy (own)
 *                otherwise                          one sgemm_batch_strided (OpenBLAS)
 *   every other shape (columns read from the prepared copy of x, conv_columns.h)
 *     y          gemm_columns (own kernels)
 *     dw         rows <= kOwnKernelRowsDw (1024):   weight_grad_columns (own)
 *                otherwise                          blas_backward (OpenBLAS, per chunk of images)
 *     dx         rows <= kOwnKernelRowsDx (1024), N >= T: input_grad_columns (own, an image per thread)
 *                rows <= kOwnKernelRowsDx (1024), N <  T: gemm_columns + col2im per chunk of images (own)
 *                otherwise                          blas_backward (OpenBLAS + col2im, per chunk of images)
 *   db           with dw's dy panels when dw runs on weight_grad_columns, else a pass over dy
 *
 * Why: Winograd does 2.25x (3x3) / 2.8x (5x5) fewer multiplications, but its
 * many small GEMMs (inner size Cg or OCg) are efficient only with enough
 * channels. Our kernels (conv_gemm.cpp, microkernel.h) pack the columns
 * panel by panel straight from x or its prepared copy and write y in place,
 * bias included: no column matrix, no reorder, no separate bias or zeroing
 * pass. Deep layers (many column rows) make ordinary GEMMs for the backward
 * pass, where OpenBLAS's cache blocking beats our kernels' single level.
 * The measurements behind the thresholds are in BENCHMARKS.md ("Why the CPU
 * kernels are tuned as they are").
 *
 * Layout: NCHW float32, w (OC, C/groups, KH, KW).
 * Threads: OpenMP inside each kernel; OpenBLAS calls are made outside any
 * OpenMP region.
 * Gradients: conv2d_backward returns new dx, dw, db arrays; the autograd
 * layer does the += into .grad.
 */
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv_columns.h"
#include "conv_gemm.h"
#include "conv_shape.h"
#include "kernels.h"
#include "winograd.h"

namespace fc {

namespace {

// ---------------------------------------------------------------- routes

// The thresholds of the route table above.
constexpr index_t kWinogradMinInChannels = 32;   // Cg: below, the direct GEMMs are faster
constexpr index_t kWinogradMinOutChannels = 16;  // OCg
constexpr index_t kWinogradMinOutput = 2;        // OH and OW: at least one 2x2 output tile
constexpr index_t kOwnKernelRowsDw = 1024;       // dW on our kernels up to this many column rows
constexpr index_t kOwnKernelRowsDx1x1 = 256;     // dx of a 1x1 layer on our kernels up to this
constexpr index_t kOwnKernelRowsDx = 1024;       // dx of any other layer on our kernels up to this

struct Route {
    bool winograd;      // y, dx and dw on winograd.cpp
    bool own_dw;        // dW on weight_grad_columns, else OpenBLAS
    bool own_dx;        // dx on our kernels, else OpenBLAS
    bool dx_per_image;  // own dx of a layer that is not 1x1: input_grad_columns, else chunks + col2im
};

Route choose_route(const Conv& cv) {
    const ConvGeom& g = cv.g;
    Route r{};
    r.winograd = g.KH == g.KW && (g.KH == 3 || g.KH == 5) && g.SH == 1 && g.SW == 1 &&
                 g.DH == 1 && g.DW == 1 && cv.Cg >= kWinogradMinInChannels &&
                 cv.OCg >= kWinogradMinOutChannels && g.OH >= kWinogradMinOutput &&
                 g.OW >= kWinogradMinOutput;
    r.own_dw = cv.rows() <= kOwnKernelRowsDw;
    r.own_dx = cv.rows() <= (cv.pointwise() ? kOwnKernelRowsDx1x1 : kOwnKernelRowsDx);
    r.dx_per_image = cv.N >= get_num_threads();
    return r;
}


WinoConv wino_of(const Conv& cv) {
    return WinoConv{cv.N, cv.C, cv.OC, cv.g.H, cv.g.W, cv.g.KH, cv.g.PH, cv.g.PW, cv.G};
}

// The backward pass's column buffers (dcol = W^T dy, and the columns of
// OpenBLAS's weight gradient) hold this much per chunk of images, so that the
// next step finds them in cache.
constexpr index_t kColumnBytes = 4 << 20;

// x of group gi as the columns of its GEMM (readable_columns: x itself for
// 1x1 layers, else a prepared copy whose row offsets go into `offsets`).
Columns columns_of_x(const Conv& cv, const float* x, index_t gi, std::vector<index_t>& offsets) {
    return readable_columns(Columns{x + gi * cv.Cg * cv.HW(), cv.C * cv.HW(), cv.g}, cv.N, offsets);
}

// Images per chunk of a backward column buffer of kColumnBytes.
index_t images_per_column_chunk(const Conv& cv) {
    const index_t per_image = std::max<index_t>(1, cv.rows() * cv.P() * index_t(sizeof(float)));
    return std::clamp<index_t>(kColumnBytes / per_image, 1, std::max<index_t>(cv.N, 1));
}

// dy of group gi as the columns of dcol = W^T dy: a 1x1 geometry over OCg channels.
Columns columns_of_dy(const Conv& cv, const float* dy, index_t gi) {
    const ConvGeom& g = cv.g;
    const ConvGeom pointwise{cv.OCg, g.OH, g.OW, 1, 1, 1, 1, 0, 0, 1, 1, g.OH, g.OW};
    return Columns{dy + gi * cv.OCg * cv.P(), cv.OC * cv.P(), pointwise};
}

// Column rows per batched item of the OpenBLAS weight gradient (a multiple of every kernel's
// row unroll).
constexpr index_t kDwRowBlock = 128;

// Partial products of one batched call stay under this size.
constexpr index_t kPartialBytes = 8 << 20;

// dW_g = sum over images of dy_g x_g^T for a 1x1 layer through OpenBLAS: one
// batched GEMM writes each image's product to its own partial, and the
// partials are added in image order (the same result for any thread count).
void blas_weight_grad_1x1(const Conv& cv, const float* x, const float* dy, float* dw) {
    const index_t P = cv.P(), rows = cv.rows(), y_img = cv.OC * P, x_img = cv.C * cv.HW();
    const index_t MN = cv.OCg * rows;
    const index_t group = std::clamp<index_t>(kPartialBytes / (MN * index_t(sizeof(float))), 1,
                                              std::max<index_t>(cv.N, 1));
    float* partial = scratch(Slot::dw_partials).get(MN * group);
    std::fill(dw, dw + MN, 0.f);
    for (index_t n0 = 0; n0 < cv.N; n0 += group) {
        const index_t nb = std::min(group, cv.N - n0);
        sgemm_batch_strided(false, true, cv.OCg, rows, P, 1.f, dy + n0 * y_img, P, y_img,
                            x + n0 * x_img, P, x_img, 0.f, partial, rows, MN, nb);
#pragma omp parallel for schedule(static)
        for (index_t j = 0; j < MN; ++j) {
            float s = dw[j];
            for (index_t i = 0; i < nb; ++i) s += partial[i * MN + j];
            dw[j] = s;
        }
    }
}

// dy[n0 + i, g*OCg + o, :] -> out[o][i*P : (i+1)*P], the layout of one GEMM
// over a chunk's columns.
void gather_rows(const float* dy, index_t nb, index_t OCg, index_t P, index_t dy_img_stride,
                 float* out) {
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nb * OCg; ++t) {
        const index_t o = t / nb, i = t % nb;
        std::memcpy(out + o * nb * P + i * P, dy + i * dy_img_stride + o * P, P * sizeof(float));
    }
}

// The backward pass of group gi of a deep layer (not 1x1) through OpenBLAS,
// one GEMM per chunk of images over all its columns: dW_g += dy_g col_g^T
// (into dw, when given) and dcol_g = W_g^T dy_g, then col2im (into dx).
void blas_backward(const Conv& cv, const Columns& cols, index_t gi, const float* Wt, const float* DY,
                   float* dx, float* dw) {
    const index_t P = cv.P(), rows = cv.rows(), y_img = cv.OC * P, x_img = cv.C * cv.HW();
    const index_t nb_max = images_per_column_chunk(cv);
    float* col = scratch(Slot::columns).get(rows * nb_max * P);
    float* dyr = scratch(Slot::gathered_dy).get(cv.OCg * nb_max * P);
    const float* wg = Wt + gi * cv.OCg * rows;
    if (dw) std::fill(dw, dw + cv.OCg * rows, 0.f);
    for (index_t n0 = 0; n0 < cv.N; n0 += nb_max) {
        const index_t nb = std::min(nb_max, cv.N - n0), J = nb * P;
        gather_rows(DY + n0 * y_img + gi * cv.OCg * P, nb, cv.OCg, P, y_img, dyr);
        if (dw) {
            // One batched item per fixed block of column rows: OpenBLAS runs each item on one
            // thread, so no block's sums depend on how many threads there are (a plain sgemm
            // splits the product by the thread count, and its edge kernels round differently).
            pack_all_columns(cols, n0 * P, J, col);
            const index_t full = rows / kDwRowBlock, tail = rows % kDwRowBlock;
            sgemm_batch_strided(false, true, cv.OCg, kDwRowBlock, J, 1.f, dyr, J, 0, col, J,
                                kDwRowBlock * J, 1.f, dw, rows, kDwRowBlock, full);
            if (tail)
                sgemm_batch_strided(false, true, cv.OCg, tail, J, 1.f, dyr, J, 0,
                                    col + full * kDwRowBlock * J, J, 0, 1.f,
                                    dw + full * kDwRowBlock, rows, 0, 1);
        }
        if (dx) {
            sgemm(true, false, rows, J, cv.OCg, 1.f, wg, rows, dyr, J, 0.f, col, J);
            col2im(col, nb, x_img, cv.g, dx + n0 * x_img + gi * cv.Cg * cv.HW(), ColLayout{P, J});
        }
    }
}

}  // namespace

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
    if (choose_route(cv).winograd) {
        winograd_forward(wino_of(cv), X, Wt, B, Y);
        return std::move(y);
    }
    // y_g = W_g col_g (+ b_g), straight into y.
    const index_t rows = cv.rows();
    std::vector<index_t> offsets;
    for (index_t gi = 0; gi < cv.G; ++gi)
        gemm_columns(MatrixView{Wt + gi * cv.OCg * rows, rows, 1}, cv.OCg,
                     columns_of_x(cv, X, gi, offsets),
                     cv.N, B ? B + gi * cv.OCg : nullptr,
                     ColumnOutput{Y + gi * cv.OCg * cv.P(), cv.OC * cv.P()});
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

    if (cv.OC == 0 || cv.N == 0) {  // no products: dx (a sum over no outputs) is zero
        if (DX) std::fill_n(DX, cv.N * cv.C * cv.HW(), 0.f);
        if (DW) std::fill_n(DW, cv.OC * cv.Cg * cv.g.KH * cv.g.KW, 0.f);
        if (DB) std::fill_n(DB, cv.OC, 0.f);
        return py::make_tuple(dx_obj, dw_obj, db_obj);
    }
    {
        py::gil_scoped_release nogil;
        const index_t P = cv.P(), rows = cv.rows(), HW = cv.HW();
        const index_t x_img = cv.C * HW, y_img = cv.OC * P;

        const Route route = choose_route(cv);
        const bool db_with_dw = DB && DW && !route.winograd && route.own_dw;  // from dW's dy panels
        if (DB && !db_with_dw) {  // db[o] = sum over n, p of dy; double accumulators for long sums
#pragma omp parallel for schedule(static)
            for (index_t o = 0; o < cv.OC; ++o) {
                double s = 0;
                for (index_t n = 0; n < cv.N; ++n) s += sum_floats(DY + n * y_img + o * P, P);
                DB[o] = static_cast<float>(s);
            }
        }
        if ((DX || DW) && route.winograd) {
            winograd_backward(wino_of(cv), X, Wt, DY, DX, DW);
        } else {
            std::vector<index_t> offsets;
            for (index_t gi = 0; gi < cv.G; ++gi) {
                const float* dyg = DY + gi * cv.OCg * P;
                float* dwg = DW ? DW + gi * cv.OCg * rows : nullptr;
                float* dxg = DX ? DX + gi * cv.Cg * HW : nullptr;
                const bool blas_dw = dwg && !route.own_dw, blas_dx = dxg && !route.own_dx;
                const Columns cols = dwg ? columns_of_x(cv, X, gi, offsets) : Columns{};
                const MatrixView w_t{Wt + gi * cv.OCg * rows, 1, rows};
                // dW_g = dy_g col_g^T
                if (dwg && route.own_dw)
                    weight_grad_columns(dyg, y_img, cv.OCg, cols, cv.N, dwg, rows,
                                        db_with_dw ? DB + gi * cv.OCg : nullptr);
                if (cv.pointwise()) {  // dx_g = W_g^T dy_g: the columns are dx itself
                    if (blas_dw) blas_weight_grad_1x1(cv, cols.x, dyg, dwg);
                    if (blas_dx)
                        sgemm_batch_strided(true, false, rows, P, cv.OCg, 1.f, w_t.data, rows, 0,
                                            dyg, P, y_img, 0.f, dxg, P, x_img, cv.N);
                    else if (dxg)
                        gemm_columns(w_t, rows, columns_of_dy(cv, DY, gi), cv.N, nullptr,
                                     ColumnOutput{dxg, x_img});
                    continue;
                }
                if (blas_dw || blas_dx)
                    blas_backward(cv, cols, gi, Wt, DY, blas_dx ? DX : nullptr, blas_dw ? dwg : nullptr);
                if (!dxg || blas_dx) continue;
                if (route.dx_per_image) {  // col2im(W_g^T dy_g), an image per thread, banded
                    input_grad_columns(w_t, columns_of_dy(cv, DY, gi), cv.g, cv.N, dxg, x_img);
                    continue;
                }
                // Fewer images than threads: dcol_g = W_g^T dy_g per chunk of images, then col2im.
                const index_t nb_max = images_per_column_chunk(cv);
                float* col = scratch(Slot::columns).get(rows * nb_max * P);
                for (index_t n0 = 0; n0 < cv.N; n0 += nb_max) {
                    const index_t nb = std::min(nb_max, cv.N - n0);
                    gemm_columns(w_t, rows, columns_of_dy(cv, DY + n0 * y_img, gi), nb, nullptr,
                                 ColumnOutput{col, rows * P});
                    col2im(col, nb, x_img, cv.g, dxg + n0 * x_img, ColLayout{rows * P, P});
                }
            }
        }
    }
    return py::make_tuple(dx_obj, dw_obj, db_obj);
}

}  // namespace fc
