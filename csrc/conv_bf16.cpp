/* 2-D convolution on the bfloat16 GEMM (gemm_bf16.h), for autocast.
 *
 * What: the products of conv.cpp, per group g, over a chunk of images side by
 * side (image n's pixels are columns n*P .. n*P + P-1 of the product)
 *   y_g   = W_g col_g (+ b_g)               (OCg x nimg*P, into each image's block)
 *   dcol  = W_g^T dy_g, dx_g = col2im(dcol)  (rows x nimg*P)
 *   dW_g  = sum over chunks of dy_g col_g^T  (OCg x rows, depth nimg*P)
 * with every operand rounded to bfloat16 as it is packed and float32 sums.
 * dW_g is computed as its transpose, col_g dy_g^T: both operands arrive with
 * the depth (pixels) adjacent, which packs in contiguous runs for the GEMM's A
 * and as a transposition for its B panels, so the large operand (the columns,
 * rows = C*KH*KW) goes in as A and dy (OCg rows) as B.
 * The column matrix is never formed: the GEMM asks for the rows it packs
 * (pack_columns from the prepared copy of x), and dy is read in place where a
 * block lies in one image. Chunks bound the packed operands to a few MB.
 * Outputs: y and dx are rounded to bfloat16 as they are finished (in the
 * GEMM's tiles, per chunk of dx), as autocast returns them; dW's per-chunk
 * products are added up in double, so the weight gradient is a float32 sum
 * as accurate as conv.cpp's; db sums dy's bfloat16 values.
 * Layout: NCHW float32, w (OC, C/groups, KH, KW).
 * Threads: OpenMP inside the GEMM (its operands' rows are asked for from its
 * threads), readable_columns and col2im.
 */
#include <algorithm>
#include <cstring>
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

// The sum of the bfloat16 values of d[0..n): sixteen float lanes (so the loop
// vectorises), added up in double.
double bf16_sum(const float* __restrict d, index_t n) {
    float lane[16] = {};
    index_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int l = 0; l < 16; ++l) lane[l] += bf16_round(d[i + l]);
    double total = 0.0;
    for (; i < n; ++i) total += bf16_round(d[i]);
    for (float v : lane) total += v;
    return total;
}

// Images per product: bytes per image of what the product streams, near `bytes`
// (the packed columns: a few MB; the input gradient's columns: L2).
index_t chunk_images(const Conv& cv, index_t per_image, index_t bytes) {
    return std::clamp<index_t>(bytes / std::max<index_t>(1, per_image), 1, std::max<index_t>(1, cv.N));
}

// The column matrix of images [n0, ...) as a GEMM operand whose rows are its
// columns (pixels, the depth its rows): B^T of the forward product.
struct PixelRows {
    const Columns* cols;
    index_t j0;  // first pixel of the chunk (n0 * P)
};
StridedMatrix pixel_rows(const void* ctx, index_t i0, index_t ni, index_t K, float* scratch) {
    const auto& c = *static_cast<const PixelRows*>(ctx);
    const index_t P = c.cols->g.plane(), j = c.j0 + i0;
    if (c.cols->g.pointwise() && j % P + ni <= P)  // a 1x1 layer's image is its column matrix
        return StridedMatrix{c.cols->x + (j / P) * c.cols->img_stride + j % P, 1, P};
    pack_columns(*c.cols, 0, K, j, ni, scratch, ni);  // scratch[k][i]
    return StridedMatrix{scratch, 1, ni};
}

// The column matrix of images [n0, ...) with its rows as rows and the chunk's
// pixels as depth: B^T of the weight-gradient product.
StridedMatrix column_rows(const void* ctx, index_t i0, index_t ni, index_t K, float* scratch) {
    const auto& c = *static_cast<const PixelRows*>(ctx);
    pack_columns(*c.cols, i0, i0 + ni, c.j0, K, scratch, K);  // scratch[i][k]
    return StridedMatrix{scratch, K, 1};
}

// dy of group g for images [n0, ...): element (channel, pixel n*P + p) at
// dy + n*img + channel*P + p. Two orientations: pixels as rows (B^T of the
// input-gradient product, depth = channels) or channels as rows (A of the
// weight-gradient product, depth = pixels). A view where the block lies in
// one image, else a copy.
struct GradRows {
    const float* dy;  // channel 0 of the group, image n0
    index_t img, P;
};
StridedMatrix grad_pixel_rows(const void* ctx, index_t i0, index_t ni, index_t K, float* scratch) {
    const auto& g = *static_cast<const GradRows*>(ctx);
    const index_t n = i0 / g.P, p = i0 % g.P;
    if (p + ni <= g.P) return StridedMatrix{g.dy + n * g.img + p, 1, g.P};
    for (index_t k = 0; k < K; ++k)
        for (index_t i = 0; i < ni; ++i) {
            const index_t j = i0 + i;
            scratch[k * ni + i] = g.dy[(j / g.P) * g.img + k * g.P + j % g.P];
        }
    return StridedMatrix{scratch, 1, ni};
}
StridedMatrix grad_channel_rows(const void* ctx, index_t i0, index_t ni, index_t K, float* scratch) {
    const auto& g = *static_cast<const GradRows*>(ctx);
    if (K == g.P) return StridedMatrix{g.dy + i0 * g.P, g.P, 1};  // one image
    for (index_t i = 0; i < ni; ++i)
        for (index_t n = 0; n < K / g.P; ++n)
            std::memcpy(scratch + i * K + n * g.P, g.dy + n * g.img + (i0 + i) * g.P,
                        static_cast<size_t>(g.P) * sizeof(float));
    return StridedMatrix{scratch, K, 1};
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
        const index_t chunk = chunk_images(cv, rows * P * 2, 8 << 20);
        std::vector<std::uint32_t> packed_w;
        for (index_t gi = 0; gi < cv.G; ++gi) {
            gemm_bf16_pack_a(cv.OCg, rows, Operand{StridedMatrix{W + gi * cv.OCg * rows, rows, 1}}, packed_w);
            const Columns cols = readable_columns(Columns{X + gi * cv.Cg * HW, cv.C * HW, cv.g}, cv.N, offsets);
            for (index_t n0 = 0; n0 < cv.N; n0 += chunk) {
                const index_t nimg = std::min(chunk, cv.N - n0);
                const PixelRows src{&cols, n0 * P};
                gemm_bf16_general(cv.OCg, nimg * P, rows, Operand{{}, nullptr, nullptr, packed_w.data()},
                                  Operand{{}, pixel_rows, &src},
                                  CTarget{Y + (n0 * cv.OC + gi * cv.OCg) * P, P, P, cv.OC * P, true}, false,
                                  B ? B + gi * cv.OCg : nullptr);
            }
        }
    }
    return std::move(y);
}

py::tuple conv2d_backward_bf16(const py::array& x, const py::array& w, const py::array& dy,
                               const Pair& stride, const Pair& padding, const Pair& dilation,
                               index_t groups, bool need_dx, bool need_dw, bool need_db) {
    const char* fn = "conv2d_backward_bf16";
    const float* X = float_data(x, fn, "x");
    const float* W = float_data(w, fn, "w");
    const float* DY = float_data(dy, fn, "dy");
    const Conv cv = check(fn, x, w, stride, padding, dilation, groups);
    require_shape(dy, {cv.N, cv.OC, cv.g.OH, cv.g.OW}, fn, "dy");
    const index_t P = cv.g.plane(), rows = cv.g.rows(), HW = cv.g.H * cv.g.W;
    py::object dx_obj = py::none(), dw_obj = py::none(), db_obj = py::none();
    float* DX = nullptr;
    float* DW = nullptr;
    float* DB = nullptr;
    if (need_db) {
        auto a = new_float({cv.OC});
        DB = mut(a);
        db_obj = std::move(a);
    }
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
    if (cv.OC == 0 || cv.N == 0) {  // no products: every gradient is an empty sum
        if (DX) std::fill_n(DX, cv.N * cv.C * HW, 0.f);
        if (DW) std::fill_n(DW, cv.OC * rows, 0.f);
        if (DB) std::fill_n(DB, cv.OC, 0.f);
        return py::make_tuple(dx_obj, dw_obj, db_obj);
    }
    {
        py::gil_scoped_release nogil;
        std::vector<index_t> offsets;
        std::vector<float> dcol, part;
        std::vector<double> sum;
        std::vector<std::uint32_t> packed_wt;
        // dcol is written, then read back by col2im: chunks that keep it in L2.
        const index_t dx_chunk = chunk_images(cv, rows * P * 4, 1 << 20);
        // The weight gradient's packed columns (A): 2 MB stays near L2; 8 MB took 5-15%
        // longer on the 3x3 layers of BENCHMARKS.md's VGG-style network (Zen 5).
        const index_t dw_chunk = chunk_images(cv, rows * P * 2, 2 << 20);
        if (DB) {  // db = the sum of dy's bfloat16 values over images and pixels, in double
#pragma omp parallel for schedule(static)
            for (index_t oc = 0; oc < cv.OC; ++oc) {
                double total = 0.0;
                for (index_t n = 0; n < cv.N; ++n) total += bf16_sum(DY + (n * cv.OC + oc) * P, P);
                DB[oc] = static_cast<float>(total);
            }
        }
        for (index_t gi = 0; gi < cv.G; ++gi) {
            const float* Wg = W + gi * cv.OCg * rows;
            if (DX) {  // dcol = W_g^T dy_g, folded back onto x's planes
                gemm_bf16_pack_a(rows, cv.OCg, Operand{StridedMatrix{Wg, 1, rows}}, packed_wt);
                for (index_t n0 = 0; n0 < cv.N; n0 += dx_chunk) {
                    const index_t nimg = std::min(dx_chunk, cv.N - n0);
                    dcol.resize(static_cast<size_t>(rows * nimg * P));
                    const GradRows g{DY + (n0 * cv.OC + gi * cv.OCg) * P, cv.OC * P, P};
                    gemm_bf16_general(rows, nimg * P, cv.OCg, Operand{{}, nullptr, nullptr, packed_wt.data()},
                                      Operand{{}, grad_pixel_rows, &g}, CTarget{dcol.data(), nimg * P},
                                      false, nullptr);
                    float* dx = DX + n0 * cv.C * HW + gi * cv.Cg * HW;
                    col2im(dcol.data(), nimg, cv.C * HW, cv.g, dx, ColLayout{P, nimg * P});
#pragma omp parallel for schedule(static)
                    for (index_t t = 0; t < nimg * cv.Cg; ++t)  // the chunk's planes, still in L2
                        round_bf16_block(reinterpret_cast<std::uint32_t*>(dx + (t / cv.Cg) * cv.C * HW +
                                                                          (t % cv.Cg) * HW),
                                         HW);
                }
            }
            if (DW) {  // dW_g^T = sum over chunks of col_g dy_g^T: in float per chunk, in double across
                const Columns cols =
                    readable_columns(Columns{X + gi * cv.Cg * HW, cv.C * HW, cv.g}, cv.N, offsets);
                part.resize(static_cast<size_t>(rows * cv.OCg));
                sum.assign(static_cast<size_t>(rows * cv.OCg), 0.0);
                for (index_t n0 = 0; n0 < cv.N; n0 += dw_chunk) {
                    const index_t nimg = std::min(dw_chunk, cv.N - n0);
                    const GradRows g{DY + (n0 * cv.OC + gi * cv.OCg) * P, cv.OC * P, P};
                    const PixelRows src{&cols, n0 * P};
                    gemm_bf16_general(rows, cv.OCg, nimg * P, Operand{{}, column_rows, &src},
                                      Operand{{}, grad_channel_rows, &g}, CTarget{part.data(), cv.OCg},
                                      false, nullptr);
                    const index_t n = rows * cv.OCg;
#pragma omp parallel for schedule(static) if (n >= (index_t(1) << 16))
                    for (index_t i = 0; i < n; ++i) sum[i] += part[i];
                }
#pragma omp parallel for schedule(static)
                for (index_t oc = 0; oc < cv.OCg; ++oc)
                    for (index_t r = 0; r < rows; ++r)
                        DW[(gi * cv.OCg + oc) * rows + r] = static_cast<float>(sum[r * cv.OCg + oc]);
            }
        }
    }
    return py::make_tuple(dx_obj, dw_obj, db_obj);
}

}  // namespace fc
