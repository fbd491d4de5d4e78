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
 * The column matrix is never formed. The forward product and dW of layers
 * with more than one tap pack from a bfloat16 copy of x straight into the
 * GEMM's layout, and dx is the convolution of dy packed the same way where the
 * geometry allows, 1x1 layers included (the section "the input rounded once"
 * below; which layer takes which path: forward_from_copy and its neighbours).
 * The rest have the GEMM ask for the rows it packs (pack_columns from the
 * prepared copy of x), with dy read in place where a block lies in one image;
 * chunks of images bound the operands they hold to a few MB.
 * Outputs: y and dx are rounded to bfloat16 as they are finished (in the
 * GEMM's tiles, per chunk of dx), as autocast returns them, y then through
 * max(y, 0) where the caller fuses the ReLU after it (relu); dW's per-chunk
 * products are added up in double, so the weight gradient is a float32 sum
 * as accurate as conv.cpp's; db sums dy's bfloat16 values.
 * Layout: NCHW float32, w (OC, C/groups, KH, KW).
 * Threads: OpenMP inside the GEMM (its operands' rows are asked for from its
 * threads), readable_columns and col2im.
 */
#include <algorithm>
#include <cstring>
#include <vector>
#if defined(__x86_64__)
#include <immintrin.h>
#endif

#include "conv_columns.h"
#include "conv_shape.h"
#include "gemm_bf16.h"
#include "kernels.h"

namespace fc {

namespace {

// ---- where each product goes (measured on AMX: BENCHMARKS.md)
//
//   forward  more than one tap, or 1x1 on planes     packed from a bfloat16 copy of x
//            of 1024 pixels or more                  with channels in pairs (forward_packed)
//            1x1 on smaller planes                   x read in place, paired as packed (pixel_rows)
//   dx       stride 1, no dilation, padding < kernel, the convolution of dy with the flipped
//            >= 32 channels per group (a full tile)  weights (input_grad_packed), 1x1 included
//            otherwise                               W^T dy, then col2im (grad_pixel_rows)
//   dW       more than one tap, stride 1 along rows  packed from a bfloat16 copy of x (pack_tap_rows)
//            otherwise                               from columns (column_rows)
// (Forward products shallower than 64 terms per output with fewer than 32 output channels
// per group never get here: the float32 kernels, ops/conv.py's Conv2d.) The 1x1 dW measured
// faster reading x in place than making the copy first, and so did the 1x1 forward product
// on planes of 16x16 and less; on 32x32 planes (4 KB apart: a panel's channel rows fall into
// the same cache sets) the copy is faster (192 -> 160: 23 -> 20 ms, 160 -> 96: 17 -> 13 ms at
// batch 128).
bool forward_from_copy(const ConvGeom& g) { return !g.pointwise() || g.plane() >= 1024; }
bool dx_is_a_convolution(const ConvGeom& g) {
    return g.SH == 1 && g.SW == 1 && g.DH == 1 && g.DW == 1 && g.PH < g.KH && g.PW < g.KW;
}
bool dx_from_copy(const ConvGeom& g, index_t Cg) { return dx_is_a_convolution(g) && Cg >= 32; }
bool dw_from_copy(const ConvGeom& g) { return !g.pointwise() && g.SW == 1; }

// check_conv, and a bfloat16 GEMM in use.
Conv check(const char* fn, const py::array& x, const py::array& w, const Pair& stride,
           const Pair& padding, const Pair& dilation, index_t groups) {
    const Conv cv = check_conv(fn, x, w, stride, padding, dilation, groups);
    require(bf16_kernels() != "none", fn, ": no bfloat16 kernels in use on this CPU");
    return cv;
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

// ---- the input rounded once, packed straight into the GEMM's layout
//
// The paths above pack from float32 columns: every column element is copied
// out of x, then rounded and paired as the GEMM packs it, KH*KW times per
// input value. For the layers with many taps (5x5, 3x3) that packing, not
// TDPBF16PS, set the speed. Here x is rounded once into a zero-padded
// bfloat16 copy, and the producers (Operand::pack) copy runs of it into the
// packed layout directly:
//   forward:  B's rows are output pixels, its depth pairs of channels at one
//             tap: with the channels of the copy interleaved in pairs, pair
//             row (cp, kh, kw) of a run of pixels along an output row is a
//             run of 32-bit words. The weights are reordered to that depth
//             order (pair_weights).
//   dW:       A's rows are taps (c, kh, kw), its depth the pixels: a run of
//             pixels along an output row is a run of bfloat16 values of one
//             plane of the copy (stride 1).
//   dx:       with stride 1 and no dilation, the forward convolution of dy
//             (padding KH-1-PH, KW-1-PW) with the weights flipped and
//             transposed: the forward path above.

// One copy of the input, as 32-bit words (pair planes) or bfloat16 values.
// Image n starts data + n * img words / values; a plane is Hp x Wp.
struct PaddedImage {
    const void* data;
    index_t planes, Hp, Wp, img;
};

// Rows that are the channels of an NCHW float32 array, depth the pixels of its
// images side by side: B of the weight gradient (dy), packed straight from the
// array, rounded as read. An even plane keeps every pair in one image. With
// `sums`, each row's bfloat16 values are added to sums[row] as they are packed:
// db comes with dW's product, which packs every element of dy once, instead of
// a pass of its own over dy. (For a 1x1 layer's A, x, packing this way measured
// slower than copying runs out first: column_rows.)
struct ChannelRows {
    const float* data;  // channel 0 of the first image
    index_t img, P, nimg, channels;
    double* sums = nullptr;
};

// B of the forward product for images [n0, n0 + nimg): rows are output pixels,
// depth pair kp = (cp*KH + kh)*KW + kw is channels 2cp, 2cp + 1 at tap (kh, kw).
struct PairColumns {
    PaddedImage im;        // paired
    const ConvGeom* g;
    index_t n0, nimg;
    const index_t* tap;    // per depth pair: its word offset (cp*Hp + kh*DH)*Wp + kw*DW
    index_t pairs;         // Cp * KH * KW
};

// A of the weight-gradient product for images [n0, n0 + nimg): rows are the
// taps (c*KH + kh)*KW + kw, depth the pixels n*P + p, from the unpaired copy (stride 1).
struct TapRows {
    PaddedImage im;  // one plane per channel
    const ConvGeom* g;
    index_t n0, nimg;
};

// The producers above, compiled twice (conv_bf16_pack.inc): for any x86-64 and
// for AVX-512, which every CPU with AMX-BF16 or AVX512-BF16 has (their loops,
// the rounding and the pairing, run about twice as fast there; BENCHMARKS.md).
// The emulated GEMM variants run on any CPU, so they take the portable ones.
namespace portable {
#include "conv_bf16_pack.inc"
}  // namespace portable
#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw")
#define FC_PACK_AVX512 1  // the producers' AVX-512 intrinsics (pack_channel_tiles)
// GCC 12 flags the intrinsics' own _mm512_undefined_* placeholders as maybe uninitialised.
#pragma GCC diagnostic push
#pragma GCC diagnostic ignored "-Wmaybe-uninitialized"
namespace avx512 {
#include "conv_bf16_pack.inc"
}  // namespace avx512
#pragma GCC diagnostic pop
#undef FC_PACK_AVX512
#pragma GCC pop_options
#endif

using PackFn = void (*)(const void*, index_t, index_t, index_t, index_t, index_t, index_t, std::uint32_t*, bool);
struct Packers {
    PaddedImage (*padded_bf16)(const float*, index_t, index_t, const ConvGeom&, bool);
    PackFn pair_columns, tap_rows, channel_rows;
    double (*bf16_sum)(const float*, index_t);
};

// The producers for the GEMM variant in use (asked per call: tests switch variants).
Packers packers() {
#if defined(__x86_64__)
    const std::string v = bf16_kernels();
    if ((v == "amx" || v == "avx512bf16") && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw"))
        return {avx512::padded_bf16, avx512::pack_pair_columns, avx512::pack_tap_rows,
                avx512::pack_channel_rows, avx512::bf16_sum};
#endif
    return {portable::padded_bf16, portable::pack_pair_columns, portable::pack_tap_rows,
            portable::pack_channel_rows, portable::bf16_sum};
}

// The weights w (OCg, C, KH, KW) in pack_pair_columns' depth order, as
// float32 rows of 2 * Cp * KH * KW (an odd C's missing channel 0).
void pair_weights(const float* w, index_t OCg, const ConvGeom& g, std::vector<float>& out) {
    const index_t Cp = (g.C + 1) / 2, taps = g.KH * g.KW, depth = 2 * Cp * taps;
    out.assign(static_cast<size_t>(OCg * depth), 0.f);
    for (index_t o = 0; o < OCg; ++o)
        for (index_t c = 0; c < g.C; ++c)
            for (index_t t = 0; t < taps; ++t)
                out[o * depth + ((c / 2) * taps + t) * 2 + c % 2] = w[(o * g.C + c) * taps + t];
}

// y = the convolution of N images of x (channels [0, g.C) of image n at
// x + n * x_img) with w (OCg, g.C, KH, KW) (+ bias), rounded to bfloat16 (then max(y, 0)
// with relu): output channel o of image n at y + n * y_img + o * P.
void forward_packed(const Packers& pk, const float* x, index_t x_img, index_t N, const ConvGeom& g,
                    const float* w, index_t OCg, const float* bias, float* y, index_t y_img, bool relu) {
    const index_t P = g.plane();
    const PaddedImage im = pk.padded_bf16(x, x_img, N, g, true);
    const index_t pairs = im.planes * g.KH * g.KW;
    std::vector<index_t> tap(static_cast<size_t>(pairs));
    for (index_t cp = 0; cp < im.planes; ++cp)
        for (index_t kh = 0; kh < g.KH; ++kh)
            for (index_t kw = 0; kw < g.KW; ++kw)
                tap[(cp * g.KH + kh) * g.KW + kw] = (cp * im.Hp + kh * g.DH) * im.Wp + kw * g.DW;
    std::vector<float> wp;
    pair_weights(w, OCg, g, wp);
    PackedBuffer packed_w;
    gemm_bf16_pack_a(OCg, 2 * pairs, Operand{StridedMatrix{wp.data(), 2 * pairs, 1}}, packed_w);
    // One product over all images: the GEMM packs each panel of B just before it uses it
    // (Operand::pack), so no chunk of packed columns is ever held.
    const PairColumns src{im, &g, 0, N, tap.data(), pairs};
    Operand b;
    b.pack = pk.pair_columns;
    b.ctx = &src;
    const bool large = N * y_img * index_t(sizeof(float)) >= kStreamBytes;
    gemm_bf16_general(OCg, N * P, 2 * pairs, Operand{{}, nullptr, nullptr, packed_w.data()}, b,
                      CTarget{y, P, P, y_img, true, large, relu}, false, bias);
}

// dx of one group (dx_is_a_convolution): dy's channels [0, OCg) of image n at
// dy + n * dy_img, w_g (OCg, g.C, KH, KW); dx's channel c of image n at dx + n * dx_img + c * H*W.
void input_grad_packed(const Packers& pk, const float* dy, index_t dy_img, index_t N, const ConvGeom& g, const float* wg,
                       index_t OCg, float* dx, index_t dx_img) {
    const index_t taps = g.KH * g.KW;
    std::vector<float> wt(static_cast<size_t>(g.C * OCg * taps));  // (C, OCg, KH, KW), flipped
    for (index_t c = 0; c < g.C; ++c)
        for (index_t o = 0; o < OCg; ++o)
            for (index_t t = 0; t < taps; ++t) wt[(c * OCg + o) * taps + t] = wg[(o * g.C + c) * taps + taps - 1 - t];
    ConvGeom t = g;  // the transposed convolution: dy (OCg channels, OH x OW) -> dx (C, H x W)
    t.C = OCg;
    t.H = g.OH;
    t.W = g.OW;
    t.PH = g.KH - 1 - g.PH;
    t.PW = g.KW - 1 - g.PW;
    t.OH = g.H;
    t.OW = g.W;
    forward_packed(pk, dy, dy_img, N, t, wt.data(), g.C, nullptr, dx, dx_img, false);
}

}  // namespace

py::array conv2d_forward_bf16(const py::array& x, const py::array& w,
                              const std::optional<py::array>& b, const Pair& stride,
                              const Pair& padding, const Pair& dilation, index_t groups, bool relu) {
    const char* fn = "conv2d_forward_bf16";
    const float* X = float_data(x, fn, "x");
    const float* W = float_data(w, fn, "w");
    const Conv cv = check(fn, x, w, stride, padding, dilation, groups);
    const float* B = b ? channel_vec(b, cv.OC, fn, "b") : nullptr;
    const index_t P = cv.g.plane(), rows = cv.g.rows(), HW = cv.g.H * cv.g.W;
    auto y = new_float({cv.N, cv.OC, cv.g.OH, cv.g.OW});
    float* Y = mut(y);
    const Packers pk = packers();
    {
        py::gil_scoped_release nogil;
        std::vector<index_t> offsets;
        const index_t chunk = chunk_images(cv, rows * P * 2, 8 << 20);
        const bool large = cv.N * cv.OC * P * index_t(sizeof(float)) >= kStreamBytes;
        PackedBuffer packed_w;
        for (index_t gi = 0; gi < cv.G; ++gi) {
            if (forward_from_copy(cv.g)) {
                forward_packed(pk, X + gi * cv.Cg * HW, cv.C * HW, cv.N, cv.g, W + gi * cv.OCg * rows, cv.OCg,
                               B ? B + gi * cv.OCg : nullptr, Y + gi * cv.OCg * P, cv.OC * P, relu);
                continue;
            }
            gemm_bf16_pack_a(cv.OCg, rows, Operand{StridedMatrix{W + gi * cv.OCg * rows, rows, 1}}, packed_w);
            const Columns cols = readable_columns(Columns{X + gi * cv.Cg * HW, cv.C * HW, cv.g}, cv.N, offsets);
            for (index_t n0 = 0; n0 < cv.N; n0 += chunk) {
                const index_t nimg = std::min(chunk, cv.N - n0);
                const PixelRows src{&cols, n0 * P};
                gemm_bf16_general(cv.OCg, nimg * P, rows, Operand{{}, nullptr, nullptr, packed_w.data()},
                                  Operand{{}, pixel_rows, &src},
                                  CTarget{Y + (n0 * cv.OC + gi * cv.OCg) * P, P, P, cv.OC * P, true, large, relu}, false,
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
    const Packers pk = packers();
    {
        py::gil_scoped_release nogil;
        std::vector<index_t> offsets;
        std::vector<float> dcol, part;
        std::vector<double> sum;
        PackedBuffer packed_wt;
        // dcol is written, then read back by col2im: chunks that keep it in L2.
        const index_t dx_chunk = chunk_images(cv, rows * P * 4, 1 << 20);
        // The weight gradient's packed columns (A): 8 MB. With the GEMM's row blocks outer
        // (A's 128-row blocks stay in L2 for every panel of dy) and the columns packed from
        // the bfloat16 copy, fewer, deeper products are faster (5x5 96 -> 192 on AMX: 56 ms
        // at 2 MB, 43 at 8 MB, 44 at 32 MB).
        const index_t dw_chunk = chunk_images(cv, rows * P * 2, 8 << 20);
        // db = the sum of dy's bfloat16 values over images and pixels, in double: added up
        // as dW's product packs dy (pack_channel_rows), else in a pass of its own.
        const bool channel_rows = P % 2 == 0;
        std::vector<double> db_sum(DB && DW && channel_rows ? cv.OC : 0, 0.0);
        if (DB && db_sum.empty()) {
#pragma omp parallel for schedule(static)
            for (index_t oc = 0; oc < cv.OC; ++oc) {
                double total = 0.0;
                for (index_t n = 0; n < cv.N; ++n) total += pk.bf16_sum(DY + (n * cv.OC + oc) * P, P);
                DB[oc] = static_cast<float>(total);
            }
        }
        for (index_t gi = 0; gi < cv.G; ++gi) {
            const float* Wg = W + gi * cv.OCg * rows;
            if (DX && dx_from_copy(cv.g, cv.Cg)) {
                input_grad_packed(pk, DY + gi * cv.OCg * P, cv.OC * P, cv.N, cv.g, Wg, cv.OCg,
                                  DX + gi * cv.Cg * HW, cv.C * HW);
            } else if (DX) {  // dcol = W_g^T dy_g, folded back onto x's planes
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
                const bool taps = dw_from_copy(cv.g);
                const PaddedImage im = taps ? pk.padded_bf16(X + gi * cv.Cg * HW, cv.C * HW, cv.N, cv.g, false)
                                            : PaddedImage{};
                const Columns cols = taps ? Columns{} :
                    readable_columns(Columns{X + gi * cv.Cg * HW, cv.C * HW, cv.g}, cv.N, offsets);
                part.resize(static_cast<size_t>(rows * cv.OCg));
                sum.assign(static_cast<size_t>(rows * cv.OCg), 0.0);
                for (index_t n0 = 0; n0 < cv.N; n0 += dw_chunk) {
                    const index_t nimg = std::min(dw_chunk, cv.N - n0);
                    const GradRows g{DY + (n0 * cv.OC + gi * cv.OCg) * P, cv.OC * P, P};
                    const ChannelRows dy_rows{g.dy, g.img, P, nimg, cv.OCg,
                                              db_sum.empty() ? nullptr : db_sum.data() + gi * cv.OCg};
                    const PixelRows src{&cols, n0 * P};
                    const TapRows tap_rows{im, &cv.g, n0, nimg};
                    Operand a{{}, column_rows, &src};
                    if (taps) a = Operand{{}, nullptr, &tap_rows, nullptr, pk.tap_rows};
                    Operand b{{}, grad_channel_rows, &g};
                    if (channel_rows) b = Operand{{}, nullptr, &dy_rows, nullptr, pk.channel_rows};
                    gemm_bf16_general(rows, cv.OCg, nimg * P, a, b, CTarget{part.data(), cv.OCg}, false, nullptr);
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
        for (index_t oc = 0; oc < static_cast<index_t>(db_sum.size()); ++oc) DB[oc] = static_cast<float>(db_sum[oc]);
    }
    return py::make_tuple(dx_obj, dw_obj, db_obj);
}

}  // namespace fc
