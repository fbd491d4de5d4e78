/* The columns of a convolution's GEMM, read from x piece by piece: the
 * column matrix (im2col) is never formed in memory.
 *
 * What: a convolution is the product Y = W * col with the column matrix
 *   col[(c*KH + kh)*KW + kw][n*OH*OW + oh*OW + ow] = x[n][c][oh*SH - PH + kh*DH][ow*SW - PW + kw*DW]
 * (zero where the index falls into the padding). Here:
 *  - readable_columns makes a prepared copy of x (each plane zero-padded and
 *    split by column phase) in which every run of output pixels of every
 *    column row is contiguous and needs no bounds tests (1x1 layers: x itself);
 *  - pack_columns copies any block of rows and columns of col from it, one
 *    run of output pixels at a time (up to the end of an output row, or of
 *    the image for 1x1 layers): the panel a GEMM kernel works on
 *    (conv_gemm.cpp), or with pack_all_columns a chunk of images for OpenBLAS;
 *  - col2im, the adjoint, sums column rows back onto the pixels they were
 *    read from (the input gradient): into a prepared plane, cropped into dx
 *    at the end; col2im_rows / col2im_crop are its parts for callers that
 *    produce the column rows band by band;
 *  - make_geom checks the geometry and computes the output size.
 * Layout: x NCHW float32; columns and the prepared copy as in conv_columns.h.
 * Threads: readable_columns splits over padded rows; pack_columns is
 * single-threaded (its callers split the work); col2im splits over (image,
 * channel) planes, so each input pixel is owned by one thread and needs no
 * atomics.
 * Gradients: col2im writes dx (every plane is overwritten), it does not add to it.
 */
#include "conv_columns.h"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <vector>

#include "kernels.h"
#include "microkernel.h"

namespace fc {

namespace {

// The inner loops live in helpers that take every size by value: inside an
// OpenMP region, shared variables are reached through a pointer, and without
// strict aliasing (Python's default CFLAGS) the compiler would reload them
// after every float store and not vectorise.

// dst[q] = src[q] for q < n: a 1x1 layer's runs of a packed panel (the
// other layers' short runs go through microkernels().copy_rows).
void copy_run(float* __restrict dst, const float* __restrict src, index_t n) {
    for (index_t q = 0; q < n; ++q) dst[q] = src[q];
}

// The prepared plane of one channel (conv_columns.h): Hp rows of row_len = SW * Wq.
struct Prepared {
    index_t Hp, Wp, Wq, row_len, plane;
    explicit Prepared(const ConvGeom& g)
        : Hp(g.H + 2 * g.PH), Wp(g.W + 2 * g.PW), Wq((Wp + g.SW - 1) / g.SW), row_len(g.SW * Wq),
          plane(Hp * row_len) {}
    // Where padded pixel (h, w) lies: run w % SW, place w / SW.
    index_t at(index_t h, index_t w, index_t SW) const { return h * row_len + w % SW * Wq + w / SW; }
};

}  // namespace

Columns readable_columns(const Columns& src, index_t nimg, std::vector<index_t>& offsets) {
    const ConvGeom& g = src.g;
    if (g.pointwise()) return src;
    const Prepared L(g);
    float* buf = scratch(Slot::prepared_x).get(nimg * g.C * L.plane);
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nimg * g.C * L.Hp; ++t) {
        const index_t img = t / (g.C * L.Hp), c = t / L.Hp % g.C, h = t % L.Hp - g.PH;
        float* out = buf + t * L.row_len;
        if (h < 0 || h >= g.H) {
            std::fill_n(out, L.row_len, 0.f);
            continue;
        }
        const float* in = src.x + img * src.img_stride + (c * g.H + h) * g.W;
        for (index_t phase_w = 0; phase_w < g.SW; ++phase_w)
            for (index_t q = 0; q < L.Wq; ++q) {
                const index_t w = q * g.SW + phase_w - g.PW;  // padded column q*SW + phase_w
                out[phase_w * L.Wq + q] = w >= 0 && w < g.W ? in[w] : 0.f;
            }
    }
    // Output pixel (oh, ow) reads padded pixel (oh*SH + kh*DH, ow*SW + kw*DW):
    // run kw*DW % SW, place ow + kw*DW / SW.
    offsets.resize(g.rows());
    for (index_t r = 0; r < g.rows(); ++r) {  // r = (c*KH + kh)*KW + kw
        const index_t c = r / (g.KH * g.KW), kh = r / g.KW % g.KH, kw = r % g.KW;
        offsets[r] = c * L.plane + L.at(kh * g.DH, kw * g.DW, g.SW);
    }
    Columns out{buf, g.C * L.plane, g};
    out.offset = offsets.data();
    out.row_len = L.row_len;
    return out;
}

void pack_columns(const Columns& src, index_t r0, index_t r1, index_t j0, index_t n, float* dst,
                  index_t ld) {
    const ConvGeom& g = src.g;
    const index_t P = g.plane(), HW = g.H * g.W;
    const bool pointwise = g.pointwise();
    // One run of columns at a time: to the end of the image (1x1: its rows are
    // contiguous) or of the output row, so each packed row is one copy.
    for (index_t done = 0; done < n;) {
        const index_t j = j0 + done, img = j / P, p = j % P;
        const float* x = src.x + img * src.img_stride;
        index_t len;
        if (pointwise) {
            len = std::min(n - done, P - p);
            // Later panels read on in the same rows. With one stream per row
            // (hundreds) the hardware prefetcher cannot follow, so this asks for
            // the lines of the panel after next, into L2: that helps where the
            // rows come from DRAM; nearer (one panel ahead, or into L1) is too
            // late, and farther gains nothing more.
            const index_t ahead = std::min<index_t>(len, HW - p - 2 * len);
            for (index_t r = r0; r < r1; ++r) {
                const float* row = x + r * HW + p;
                copy_run(dst + (r - r0) * ld + done, row, len);
                for (index_t q = 0; q < ahead; q += 16) __builtin_prefetch(row + 2 * len + q, 0, 2);
            }
        } else {
            const index_t oh = p / g.OW, ow = p % g.OW;
            len = std::min(n - done, g.OW - ow);
            microkernels().copy_rows(x + oh * g.SH * src.row_len + ow, src.offset + r0, r1 - r0, len,
                                     dst + done, ld);
        }
        done += len;
    }
}

void pack_all_columns(const Columns& src, index_t j0, index_t n, float* dst) {
    // One block of rows per thread: pack_columns works out each run of columns
    // once for all its rows, where row by row would work it out for each.
    split(src.g.rows(), [&](index_t r0, index_t count) {
        pack_columns(src, r0, r0 + count, j0, n, dst + r0 * n, n);
    }, 0);
}

index_t col2im_plane_floats(const ConvGeom& g) { return g.C * Prepared(g).plane; }

index_t col2im_band_rows(const ConvGeom& g) {
    // Column rows of a band: at most kBandBytes (input_grad_columns keeps
    // them in L2 next to the image's plane, up to ~0.7 MB for GoogLeNet's
    // first layer).
    constexpr index_t kBandBytes = 512 << 10;
    return std::clamp<index_t>(kBandBytes / index_t(sizeof(float)) / std::max<index_t>(1, g.rows() * g.OW),
                               1, std::max<index_t>(1, g.OH));
}

bool col2im_in_place(const ConvGeom& g) { return g.PH == 0 && g.PW == 0 && g.SW == 1; }

void col2im_rows(const float* col, index_t ld, const ConvGeom& g, index_t oh0, index_t oh1,
                 float* plane) {
    // Each column row adds onto its plane with the same offsets that packing
    // read it with: contiguous runs of OW in the prepared layout.
    const Prepared L(g);
    const AddRuns add_runs = microkernels().add_runs;
    for (index_t c = 0; c < g.C; ++c)
        for (index_t kh = 0; kh < g.KH; ++kh)
            for (index_t kw = 0; kw < g.KW; ++kw) {
                float* dp = plane + c * L.plane + L.at(kh * g.DH, kw * g.DW, g.SW);
                add_runs(col + ((c * g.KH + kh) * g.KW + kw) * ld, g.OW, dp + oh0 * g.SH * L.row_len,
                         g.SH * L.row_len, oh1 - oh0, g.OW);
            }
}

void col2im_crop(const float* plane, const ConvGeom& g, float* dx) {
    const Prepared L(g);
    for (index_t c = 0; c < g.C; ++c)
        for (index_t h = 0; h < g.H; ++h) {
            const float* row = plane + c * L.plane + (h + g.PH) * L.row_len;
            float* out = dx + (c * g.H + h) * g.W;
            for (index_t phase_w = 0; phase_w < g.SW; ++phase_w)  // padded columns q*SW + phase_w
                for (index_t q = 0; q < L.Wq; ++q) {
                    const index_t w = q * g.SW + phase_w - g.PW;
                    if (w >= 0 && w < g.W) out[w] = row[phase_w * L.Wq + q];
                }
        }
}

void col2im(const float* col, index_t nb, index_t x_img_stride, const ConvGeom& g, float* dx,
            ColLayout layout) {
    // One (image, channel) plane per item: into a prepared plane, then
    // cropped into dx (or straight into dx, col2im_in_place). Band by band of
    // output rows, so each pixel's sum runs in the same order as in
    // input_grad_columns and dx does not depend on which one ran.
    const ConvGeom one{1, g.H, g.W, g.KH, g.KW, g.SH, g.SW, g.PH, g.PW, g.DH, g.DW, g.OH, g.OW};
    const bool direct = col2im_in_place(g);
    const index_t plane = col2im_plane_floats(one);
    float* buf = direct ? nullptr : scratch(Slot::planes).get(nb * g.C * plane);
    const index_t KHW = g.KH * g.KW, band = col2im_band_rows(g);
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < nb * g.C; ++t) {
        const index_t i = t / g.C, c = t % g.C;
        float* out = dx + i * x_img_stride + c * g.H * g.W;
        float* d = direct ? out : buf + t * plane;
        std::fill(d, d + plane, 0.f);
        const float* rows = col + i * layout.img_offset + c * KHW * layout.row_stride;
        for (index_t oh0 = 0; oh0 < g.OH; oh0 += band)  // in input_grad_columns' order
            col2im_rows(rows + oh0 * g.OW, layout.row_stride, one, oh0, std::min(g.OH, oh0 + band), d);
        if (!direct) col2im_crop(d, one, out);
    }
}

// ---------------------------------------------------------------- geometry

ConvGeom make_geom(const char* fn, index_t C, index_t H, index_t W, index_t KH, index_t KW,
                   const Pair& stride, const Pair& padding, const Pair& dilation) {
    require(KH >= 1 && KW >= 1, fn, ": kernel must be >= 1, got (", KH, ", ", KW, ")");
    require_pair(stride, 1, fn, "stride");
    require_pair(padding, 0, fn, "padding");
    require_pair(dilation, 1, fn, "dilation");
    ConvGeom g{C, H, W, KH, KW, stride.first, stride.second, padding.first, padding.second,
               dilation.first, dilation.second, 0, 0};
    // Past these the sizes below (and the zero-padded copies the kernels make) overflow
    // 64-bit arithmetic; torch refuses arguments past int32 too.
    constexpr index_t kMaxArg = (index_t(1) << 31) - 1;
    for (index_t v : {g.SH, g.SW, g.PH, g.PW, g.DH, g.DW})
        require(v <= kMaxArg, fn, ": stride, padding and dilation must be at most 2^31 - 1, got ", v);
    require(static_cast<double>(C) * static_cast<double>(H + 2 * g.PH) * static_cast<double>(W + 2 * g.PW) <
                std::ldexp(1.0, 48),
            fn, ": the zero-padded input (", C, " x ", H + 2 * g.PH, " x ", W + 2 * g.PW,
            " per image) is too large");
    const index_t span_h = H + 2 * g.PH - g.DH * (KH - 1) - 1;
    const index_t span_w = W + 2 * g.PW - g.DW * (KW - 1) - 1;
    require(span_h >= 0 && span_w >= 0, fn, ": the dilated kernel (", g.DH * (KH - 1) + 1, ", ",
            g.DW * (KW - 1) + 1, ") is larger than the padded input (", H + 2 * g.PH, ", ",
            W + 2 * g.PW, ")");
    g.OH = span_h / g.SH + 1;
    g.OW = span_w / g.SW + 1;
    // One output column reads the same pixels whatever the stride, and the prepared plane's
    // rows are SW * ceil(Wp / SW) long: a stride past the padded width would only add zeros.
    if (g.OW == 1) g.SW = std::min(g.SW, g.W + 2 * g.PW);
    return g;
}

}  // namespace fc
