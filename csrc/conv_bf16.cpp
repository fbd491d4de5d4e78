/* 2-D convolution on the bfloat16 GEMM (gemm_bf16.h), for autocast.
 *
 * What: the products of conv.cpp (per group g and image n)
 *   y_n,g   = W_g col_n,g (+ b_g)            (OCg x P)
 *   dcol    = W_g^T dy_n,g, dx_n,g = col2im(dcol)
 *   dW_g    = sum_n dy_n,g col_n,g^T         (OCg x rows)
 * with every operand rounded to bfloat16 as it is packed and float32 sums.
 * The column matrix of an image is made explicitly (pack_all_columns from
 * the prepared copy of x; a 1x1 layer reads x itself), one image at a time,
 * so it stays in cache and its size is bounded by one image's.
 * Gradients: dx is written; dW's per-image products are added up in double,
 * so the weight gradient is a float32 sum as accurate as conv.cpp's. db is
 * not computed here (conv2d_backward's pass over dy gives it).
 * Layout: NCHW float32, w (OC, C/groups, KH, KW).
 * Threads: OpenMP inside the GEMM, the column packing and col2im.
 */
#include <vector>

#include "conv_columns.h"
#include "conv_shape.h"
#include "gemm_bf16.h"
#include "kernels.h"

namespace fc {

namespace {

// check_conv, and a bfloat16 GEMM in use.
Conv check(const char* fn, const py::array& x, const py::array& w, const Pair& stride,
           const Pair& padding, const Pair& dilation, index_t groups) {
    const Conv cv = check_conv(fn, x, w, stride, padding, dilation, groups);
    require(bf16_kernels() != "none", fn, ": no bfloat16 kernels in use on this CPU");
    return cv;
}

// The column matrix of image n, group gi ([rows][P]): x itself for a 1x1 layer, else buf.
const float* image_columns(const Columns& cols, const Conv& cv, const float* x, index_t n,
                           index_t gi, std::vector<float>& buf) {
    const index_t HW = cv.g.H * cv.g.W, P = cv.g.plane();
    if (cv.g.pointwise()) return x + n * cv.C * HW + gi * cv.Cg * HW;
    buf.resize(static_cast<size_t>(cv.g.rows() * P));
    pack_all_columns(cols, n * P, P, buf.data());
    return buf.data();
}

}  // namespace

py::array conv2d_forward_bf16(const py::array& x, const py::array& w,
                              const std::optional<py::array>& b, const Pair& stride,
                              const Pair& padding, const Pair& dilation, index_t groups) {
    const char* fn = "conv2d_forward_bf16";
    const float* X = float_data(x, fn, "x");
    const float* W = float_data(w, fn, "w");
    const Conv cv = check(fn, x, w, stride, padding, dilation, groups);
    const float* B = b ? channel_vec(b, cv.OC, fn, "b") : nullptr;
    const index_t P = cv.g.plane(), rows = cv.g.rows(), HW = cv.g.H * cv.g.W;
    auto y = new_float({cv.N, cv.OC, cv.g.OH, cv.g.OW});
    float* Y = mut(y);
    {
        py::gil_scoped_release nogil;
        std::vector<index_t> offsets;
        std::vector<float> buf;
        for (index_t gi = 0; gi < cv.G; ++gi) {
            const Columns cols =
                cv.g.pointwise() ? Columns{}
                                 : readable_columns(Columns{X + gi * cv.Cg * HW, cv.C * HW, cv.g},
                                                    cv.N, offsets);
            for (index_t n = 0; n < cv.N; ++n)
                gemm_bf16(cv.OCg, P, rows, StridedMatrix{W + gi * cv.OCg * rows, rows, 1},
                          StridedMatrix{image_columns(cols, cv, X, n, gi, buf), P, 1},
                          Y + (n * cv.OC + gi * cv.OCg) * P, P, false,
                          B ? B + gi * cv.OCg : nullptr);
        }
    }
    return std::move(y);
}

py::tuple conv2d_backward_bf16(const py::array& x, const py::array& w, const py::array& dy,
                               const Pair& stride, const Pair& padding, const Pair& dilation,
                               index_t groups, bool need_dx, bool need_dw) {
    const char* fn = "conv2d_backward_bf16";
    const float* X = float_data(x, fn, "x");
    const float* W = float_data(w, fn, "w");
    const float* DY = float_data(dy, fn, "dy");
    const Conv cv = check(fn, x, w, stride, padding, dilation, groups);
    require_shape(dy, {cv.N, cv.OC, cv.g.OH, cv.g.OW}, fn, "dy");
    const index_t P = cv.g.plane(), rows = cv.g.rows(), HW = cv.g.H * cv.g.W;
    py::object dx_obj = py::none(), dw_obj = py::none();
    float* DX = nullptr;
    float* DW = nullptr;
    if (need_dx) {
        auto a = new_float({cv.N, cv.C, cv.g.H, cv.g.W});
        DX = mut(a);
        dx_obj = std::move(a);
    }
    if (need_dw) {
        auto a = new_float({cv.OC, cv.Cg, cv.g.KH, cv.g.KW});
        DW = mut(a);
        dw_obj = std::move(a);
    }
    {
        py::gil_scoped_release nogil;
        std::vector<index_t> offsets;
        std::vector<float> buf, dcol, part;
        std::vector<double> sum;
        for (index_t gi = 0; gi < cv.G; ++gi) {
            const float* Wg = W + gi * cv.OCg * rows;
            if (DX) {  // dcol = W_g^T dy_n,g, folded back onto x's plane
                dcol.resize(static_cast<size_t>(rows * P));
                for (index_t n = 0; n < cv.N; ++n) {
                    gemm_bf16(rows, P, cv.OCg, StridedMatrix{Wg, 1, rows},
                              StridedMatrix{DY + (n * cv.OC + gi * cv.OCg) * P, P, 1}, dcol.data(),
                              P, false, nullptr);
                    col2im(dcol.data(), 1, cv.C * HW, cv.g, DX + n * cv.C * HW + gi * cv.Cg * HW,
                           ColLayout{rows * P, P});
                }
            }
            if (DW) {  // dW_g = sum_n dy_n,g col_n,g^T: per image in float, across images in double
                const Columns cols =
                    cv.g.pointwise() ? Columns{}
                                     : readable_columns(Columns{X + gi * cv.Cg * HW, cv.C * HW, cv.g},
                                                        cv.N, offsets);
                part.resize(static_cast<size_t>(cv.OCg * rows));
                sum.assign(static_cast<size_t>(cv.OCg * rows), 0.0);
                for (index_t n = 0; n < cv.N; ++n) {
                    const float* col = image_columns(cols, cv, X, n, gi, buf);
                    gemm_bf16(cv.OCg, rows, P, StridedMatrix{DY + (n * cv.OC + gi * cv.OCg) * P, P, 1},
                              StridedMatrix{col, 1, P}, part.data(), rows, false, nullptr);
                    for (size_t i = 0; i < sum.size(); ++i) sum[i] += part[i];
                }
                for (index_t i = 0; i < cv.OCg * rows; ++i)
                    DW[gi * cv.OCg * rows + i] = static_cast<float>(sum[i]);
            }
        }
    }
    return py::make_tuple(dx_obj, dw_obj);
}

}  // namespace fc
