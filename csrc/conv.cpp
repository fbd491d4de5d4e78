/* 2-D convolution (cross-correlation, as in PyTorch) by im2col + GEMM.
 *
 * What: y[n, o] = b[o] + sum_{c, kh, kw} w[o, c, kh, kw] * x[n, g*Cg + c, oh*SH - PH + kh*DH, ow*SW - PW + kw*DW]
 * for output channel o in group g, with stride, zero padding, dilation and groups.
 * Per group the whole layer is the matrix product  Y_g = W_g * col_g, where
 * W_g is [OCg, Cg*KH*KW] (the weight as stored) and col_g the unfolded input,
 * one column per (image, output pixel).
 * Backward: dW_g = dY_g * col_g^T,  dcol_g = W_g^T * dY_g then col2im,  db = sum of dY.
 *
 * Layout: NCHW float32, w (OC, C/groups, KH, KW).
 * The products run on our own kernels (conv_gemm.cpp, microkernel.h), which
 * pack the columns tile by tile straight from x and write y in place, bias
 * included: no column matrix, no reorder, no separate bias or zeroing pass.
 * 1x1 convolutions with stride 1 and no padding have x itself as the column
 * matrix, and their dx needs no col2im.
 * Stride-1 3x3 and 5x5 layers with at least 16 input and output channels per group use
 * Winograd's F(2x2, KxK) instead (winograd.cpp): 2.25x / 2.8x fewer
 * multiplications, on OpenBLAS's GEMMs.
 * Gradients: conv2d_backward returns new dx, dw, db arrays; the autograd
 * layer does the += into .grad.
 */
#include <algorithm>
#include <cstring>
#include <vector>

#include "conv_gemm.h"
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
    bool pointwise() const { return g.pointwise(); }
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

// The input gradient's column buffer (dcol = W^T dy) holds this much per
// chunk of images, so that col2im finds it in cache.
constexpr index_t kColumnBytes = 4 << 20;

// x of group gi as the columns of its GEMM: x itself for 1x1 layers, else a
// prepared (padded, phase-split) copy in scratch slot 7, with its row
// offsets in `offsets` (cv.rows() entries).
Columns columns_of_x(const Conv& cv, const float* x, index_t gi, std::vector<index_t>& offsets) {
    const Columns cols{x + gi * cv.Cg * cv.HW(), cv.C * cv.HW(), cv.g};
    if (cv.pointwise()) return cols;
    offsets.resize(cv.rows());
    return prepare_columns(cols, cv.N, scratch(7).get(prepared_size(cols, cv.N)), offsets.data());
}

// dy of group gi as the columns of dcol = W^T dy: a 1x1 geometry over OCg channels.
Columns columns_of_dy(const Conv& cv, const float* dy, index_t gi) {
    const ConvGeom& g = cv.g;
    const ConvGeom pointwise{cv.OCg, g.OH, g.OW, 1, 1, 1, 1, 0, 0, 1, 1, g.OH, g.OW};
    return Columns{dy + gi * cv.OCg * cv.P(), cv.OC * cv.P(), pointwise};
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
    if (use_winograd(cv)) {
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

    {
        py::gil_scoped_release nogil;
        const index_t P = cv.P(), rows = cv.rows(), HW = cv.HW();
        const index_t x_img = cv.C * HW, y_img = cv.OC * P;

        const bool db_with_dw = DB && DW && !use_winograd(cv);  // from dW's dy panels
        if (DB && !db_with_dw) {  // db[o] = sum over n, p of dy; double accumulators for long sums
#pragma omp parallel for schedule(static)
            for (index_t o = 0; o < cv.OC; ++o) {
                double s = 0;
                for (index_t n = 0; n < cv.N; ++n) s += sum_floats(DY + n * y_img + o * P, P);
                DB[o] = static_cast<float>(s);
            }
        }
        if ((DX || DW) && use_winograd(cv)) {
            winograd_backward(wino_of(cv), X, Wt, DY, DX, DW);
        } else {
            // dW_g = dy_g col_g^T
            std::vector<index_t> offsets;
            for (index_t gi = 0; DW && gi < cv.G; ++gi)
                weight_grad_columns(DY + gi * cv.OCg * P, y_img, cv.OCg,
                                    columns_of_x(cv, X, gi, offsets),
                                    cv.N, DW + gi * cv.OCg * rows, rows,
                                    db_with_dw ? DB + gi * cv.OCg : nullptr);
            // dcol_g = W_g^T dy_g, then col2im; for 1x1 layers dcol is dx.
            auto w_t = [&](index_t gi) { return MatrixView{Wt + gi * cv.OCg * rows, 1, rows}; };
            if (DX && cv.pointwise()) {
                for (index_t gi = 0; gi < cv.G; ++gi)
                    gemm_columns(w_t(gi), rows, columns_of_dy(cv, DY, gi), cv.N, nullptr,
                                 ColumnOutput{DX + gi * cv.Cg * HW, x_img});
            } else if (DX) {
                const index_t per_image = std::max<index_t>(1, rows * P * index_t(sizeof(float)));
                const index_t nb_max =
                    std::clamp<index_t>(kColumnBytes / per_image, 1, std::max<index_t>(cv.N, 1));
                float* col = scratch(0).get(rows * nb_max * P);
                for (index_t n0 = 0; n0 < cv.N; n0 += nb_max) {
                    const index_t nb = std::min(nb_max, cv.N - n0);
                    for (index_t gi = 0; gi < cv.G; ++gi) {
                        gemm_columns(w_t(gi), rows, columns_of_dy(cv, DY + n0 * y_img, gi), nb,
                                     nullptr, ColumnOutput{col, rows * P});
                        col2im(col, nb, x_img, cv.g, DX + n0 * x_img + gi * cv.Cg * HW,
                               ColLayout{rows * P, P});
                    }
                }
            }
        }
    }
    return py::make_tuple(dx_obj, dw_obj, db_obj);
}

}  // namespace fc
