/* im2col / col2im: the unfolding that turns a convolution into one GEMM.
 *
 * What: im2col copies every receptive field of an NCHW image into a column,
 *   col[(c*KH + kh)*KW + kw][oh*OW + ow] = x[c][oh*SH - PH + kh*DH][ow*SW - PW + kw*DW]
 * (zero where the index falls into the padding); col2im is its adjoint and
 * sums the columns back onto the pixels they came from (the input gradient).
 * Layout: x NCHW float32; columns as in im2col.h (all images side by side,
 * or one [rows, OH*OW] block per image).
 * Padding: with PH or PW > 0 the chunk is first copied into a zero-bordered
 * buffer (Hp = H + 2PH, Wp = W + 2PW), so the copy loops below have no bounds
 * tests at all; col2im accumulates into such a buffer and crops it at the end.
 * The padded copy costs one pass over x, a KH*KW-th of the column traffic.
 * Threads: OpenMP. im2col splits over column rows (each task copies that row
 * for all nb images); col2im splits over (image, channel) planes, so each
 * input pixel is owned by one thread and needs no atomics.
 * Gradients: col2im writes dx (every plane is overwritten), it does not add to it.
 */
#include "im2col.h"

#include <algorithm>
#include <cstring>

#include "kernels.h"

namespace fc {

namespace {

// The input as the copy loops see it: planes of Hp x Wp floats, `plane`
// floats apart within an image and `img` floats apart between images.
struct Source {
    const float* data;
    index_t img, Hp, Wp;
};

// Copy x (nb images, g.C channels, H x W) into `buf` with a zero border of PH / PW.
Source pad_input(const float* x, index_t nb, index_t x_img_stride, const ConvGeom& g, float* buf) {
    const index_t Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW, HWp = Hp * Wp;
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nb * g.C; ++t) {
        const float* src = x + (t / g.C) * x_img_stride + (t % g.C) * g.H * g.W;
        float* dst = buf + t * HWp;
        std::fill(dst, dst + g.PH * Wp, 0.f);
        for (index_t h = 0; h < g.H; ++h) {
            float* row = dst + (h + g.PH) * Wp;
            std::fill(row, row + g.PW, 0.f);
            std::memcpy(row + g.PW, src + h * g.W, g.W * sizeof(float));
            std::fill(row + g.PW + g.W, row + Wp, 0.f);
        }
        std::fill(dst + (g.PH + g.H) * Wp, dst + HWp, 0.f);
    }
    return Source{buf, g.C * HWp, Hp, Wp};
}

// The inner loops live in helpers that take every size by value: inside an
// OpenMP region, shared variables are reached through a pointer, and without
// strict aliasing (Python's default CFLAGS) the compiler would reload them
// after every float store and not vectorise.

// One column row for nb images: OH runs of OW values; `in` steps in_row per
// output row and SW per output column.
void unfold_row(float* __restrict out, index_t out_img, const float* __restrict in, index_t in_img,
                index_t nb, index_t OH, index_t OW, index_t in_row, index_t SW) {
    for (index_t i = 0; i < nb; ++i) {
        float* o = out + i * out_img;
        const float* s = in + i * in_img;
        for (index_t oh = 0; oh < OH; ++oh, o += OW, s += in_row) {
            if (SW == 1)
                for (index_t ow = 0; ow < OW; ++ow) o[ow] = s[ow];
            else
                for (index_t ow = 0; ow < OW; ++ow) o[ow] = s[ow * SW];
        }
    }
}

// Adds the KH*KW column rows of one channel of one image back onto its
// (padded) plane d; rows are row_stride apart in col.
void fold_plane(float* __restrict d, const float* __restrict col, index_t row_stride, index_t KH,
                index_t KW, index_t DH, index_t DW, index_t Wp, index_t OH, index_t OW, index_t SH,
                index_t SW) {
    for (index_t kh = 0; kh < KH; ++kh)
        for (index_t kw = 0; kw < KW; ++kw) {
            const float* s = col + (kh * KW + kw) * row_stride;
            float* dp = d + kh * DH * Wp + kw * DW;
            for (index_t oh = 0; oh < OH; ++oh, s += OW, dp += SH * Wp) {
                if (SW == 1)
                    for (index_t ow = 0; ow < OW; ++ow) dp[ow] += s[ow];
                else
                    for (index_t ow = 0; ow < OW; ++ow) dp[ow * SW] += s[ow];
            }
        }
}

}  // namespace

void im2col(const float* x, index_t nb, index_t x_img_stride, const ConvGeom& g, float* col,
            ColLayout layout) {
    const bool padded = g.PH > 0 || g.PW > 0;
    const index_t Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW;
    const Source src = padded ? pad_input(x, nb, x_img_stride, g, scratch(2).get(nb * g.C * Hp * Wp))
                              : Source{x, x_img_stride, g.H, g.W};
    const index_t rows = g.rows(), KHW = g.KH * g.KW, plane = src.Hp * src.Wp;
    // One task per column row (all nb images): long contiguous writes in the
    // batched layout, and few tasks to schedule.
#pragma omp parallel for schedule(static)
    for (index_t r = 0; r < rows; ++r) {
        const index_t c = r / KHW, kh = (r / g.KW) % g.KH, kw = r % g.KW;
        const float* first = src.data + c * plane + kh * g.DH * src.Wp + kw * g.DW;
        unfold_row(col + r * layout.row_stride, layout.img_offset, first, src.img, nb, g.OH, g.OW,
                   g.SH * src.Wp, g.SW);
    }
}

void col2im(const float* col, index_t nb, index_t x_img_stride, const ConvGeom& g, float* dx,
            ColLayout layout) {
    const index_t Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW, plane = Hp * Wp;
    const bool padded = g.PH > 0 || g.PW > 0;
    // Without padding accumulate straight into dx; with it, into a bordered
    // plane that is then cropped into dx.
    float* pad_buf = padded ? scratch(2).get(nb * g.C * plane) : nullptr;
    const index_t KHW = g.KH * g.KW;
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nb * g.C; ++t) {
        const index_t i = t / g.C, c = t % g.C;
        float* out = dx + i * x_img_stride + c * g.H * g.W;
        float* d = padded ? pad_buf + t * plane : out;
        std::fill(d, d + plane, 0.f);
        fold_plane(d, col + i * layout.img_offset + c * KHW * layout.row_stride, layout.row_stride,
                   g.KH, g.KW, g.DH, g.DW, Wp, g.OH, g.OW, g.SH, g.SW);
        if (padded)
            for (index_t h = 0; h < g.H; ++h)
                std::memcpy(out + h * g.W, d + (h + g.PH) * Wp + g.PW, g.W * sizeof(float));
    }
}

// ---------------------------------------------------------------- Python-facing

ConvGeom make_geom(const char* fn, index_t C, index_t H, index_t W, index_t KH, index_t KW,
                   const Pair& stride, const Pair& padding, const Pair& dilation) {
    require(KH >= 1 && KW >= 1, fn, ": kernel must be >= 1, got (", KH, ", ", KW, ")");
    require_pair(stride, 1, fn, "stride");
    require_pair(padding, 0, fn, "padding");
    require_pair(dilation, 1, fn, "dilation");
    ConvGeom g{C, H, W, KH, KW, stride.first, stride.second, padding.first, padding.second,
               dilation.first, dilation.second, 0, 0};
    const index_t span_h = H + 2 * g.PH - g.DH * (KH - 1) - 1;
    const index_t span_w = W + 2 * g.PW - g.DW * (KW - 1) - 1;
    require(span_h >= 0 && span_w >= 0, fn, ": the dilated kernel (", g.DH * (KH - 1) + 1, ", ",
            g.DW * (KW - 1) + 1, ") is larger than the padded input (", H + 2 * g.PH, ", ",
            W + 2 * g.PW, ")");
    g.OH = span_h / g.SH + 1;
    g.OW = span_w / g.SW + 1;
    return g;
}

py::array im2col_forward(const py::array& x, const Pair& kernel, const Pair& stride,
                         const Pair& padding, const Pair& dilation) {
    const char* fn = "im2col_forward";
    const float* X = float_data(x, fn, "x");
    require_ndim(x, 4, fn, "x");
    const index_t N = x.shape(0), C = x.shape(1), H = x.shape(2), W = x.shape(3);
    const ConvGeom g = make_geom(fn, C, H, W, kernel.first, kernel.second, stride, padding, dilation);
    const index_t P = g.plane();
    auto col = new_float({g.rows(), N * P});
    float* out = mut(col);
    {
        py::gil_scoped_release nogil;
        im2col(X, N, C * H * W, g, out, ColLayout{P, N * P});
    }
    return std::move(col);
}

py::array col2im_backward(const py::array& col, const std::vector<index_t>& x_shape,
                          const Pair& kernel, const Pair& stride, const Pair& padding,
                          const Pair& dilation) {
    const char* fn = "col2im_backward";
    const float* COL = float_data(col, fn, "col");
    require(x_shape.size() == 4, fn, ": x_shape must have 4 entries, got ", shape_str(x_shape));
    for (index_t s : x_shape) require(s >= 0, fn, ": x_shape ", shape_str(x_shape), " is negative");
    const index_t N = x_shape[0], C = x_shape[1], H = x_shape[2], W = x_shape[3];
    const ConvGeom g = make_geom(fn, C, H, W, kernel.first, kernel.second, stride, padding, dilation);
    const index_t P = g.plane();
    require_shape(col, {g.rows(), N * P}, fn, "col");
    auto dx = new_float({N, C, H, W});
    float* out = mut(dx);
    {
        py::gil_scoped_release nogil;
        col2im(COL, N, C * H * W, g, out, ColLayout{P, N * P});
    }
    return std::move(dx);
}

}  // namespace fc
