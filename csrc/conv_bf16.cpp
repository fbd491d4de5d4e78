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

// ---- where each product goes (measured on AMX: BENCHMARKS.md)
//
//   forward  more than one tap                       packed from a bfloat16 copy of x
//                                                    with channels in pairs (forward_packed)
//            1x1                                     x read in place, paired as packed (pixel_rows)
//   dx       stride 1, no dilation, padding < kernel, the convolution of dy with the flipped
//            >= 32 channels per group (a full tile)  weights (input_grad_packed), 1x1 included
//            otherwise                               W^T dy, then col2im (grad_pixel_rows)
//   dW       more than one tap, stride 1 along rows  packed from a bfloat16 copy of x (pack_tap_rows)
//            otherwise                               from columns (column_rows)
// (Convolutions shallower than 64 terms per output never get here: the float32 kernels,
// fastconv/function.py's MIN_BF16_GEMM_DEPTH.) The 1x1 forward product and dW measured
// faster reading x in place than making the copy first.
bool forward_from_copy(const ConvGeom& g) { return !g.pointwise(); }
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

inline const std::uint32_t* words(const float* p) { return reinterpret_cast<const std::uint32_t*>(p); }

// Row h of one plane (unpadded width W, PW zeros each side) as bfloat16 pairs of
// channels: lo from plane `lo`, hi from `hi` (nullptr: 0).
void pair_row(std::uint32_t* __restrict out, const std::uint32_t* __restrict lo,
              const std::uint32_t* __restrict hi, index_t W, index_t PW) {
    std::fill_n(out, PW, 0u);
    if (hi)
        for (index_t w = 0; w < W; ++w) out[PW + w] = (bf16_round_bits(lo[w]) >> 16) | bf16_round_bits(hi[w]);
    else
        for (index_t w = 0; w < W; ++w) out[PW + w] = bf16_round_bits(lo[w]) >> 16;
    std::fill_n(out + PW + W, PW, 0u);
}

// The same as single bfloat16 values.
void half_row(std::uint16_t* __restrict out, const std::uint32_t* __restrict in, index_t W, index_t PW) {
    std::fill_n(out, PW, std::uint16_t(0));
    for (index_t w = 0; w < W; ++w) out[PW + w] = static_cast<std::uint16_t>(bf16_round_bits(in[w]) >> 16);
    std::fill_n(out + PW + W, PW, std::uint16_t(0));
}

// The zero-padded bfloat16 copy of channels [0, g.C) of N images of x (image
// n at x + n * x_img), in the calling thread's Slot::prepared_x: channels in
// pairs (`paired`: one 32-bit word per pixel and pair, lo the even channel,
// a missing odd channel 0) or one plane per channel (bfloat16 values).
PaddedImage padded_bf16(const float* x, index_t x_img, index_t N, const ConvGeom& g, bool paired) {
    const index_t planes = paired ? (g.C + 1) / 2 : g.C, Hp = g.H + 2 * g.PH, Wp = g.W + 2 * g.PW;
    const index_t img = planes * Hp * Wp, HW = g.H * g.W;
    // 32-bit words: planes * Hp * Wp of them per image paired, half as many otherwise (+1 to round up).
    float* buf = scratch(Slot::prepared_x).get(paired ? N * img : (N * img + 1) / 2);
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < N * planes * Hp; ++t) {
        const index_t n = t / (planes * Hp), c = t / Hp % planes, h = t % Hp - g.PH;
        const bool pad = h < 0 || h >= g.H;
        if (paired) {
            std::uint32_t* out = reinterpret_cast<std::uint32_t*>(buf) + t * Wp;
            if (pad) {
                std::fill_n(out, Wp, 0u);
                continue;
            }
            const std::uint32_t* lo = words(x + n * x_img + 2 * c * HW + h * g.W);
            pair_row(out, lo, 2 * c + 1 < g.C ? lo + HW : nullptr, g.W, g.PW);
        } else {
            std::uint16_t* out = reinterpret_cast<std::uint16_t*>(buf) + t * Wp;
            if (pad) {
                std::fill_n(out, Wp, std::uint16_t(0));
                continue;
            }
            half_row(out, words(x + n * x_img + c * HW + h * g.W), g.W, g.PW);
        }
    }
    return PaddedImage{buf, planes, Hp, Wp, img};
}

// Where pair kp of row r goes in the packed layout (Operand::pack).
inline index_t packed_at(index_t r, index_t kp, index_t chunk, index_t group, index_t chunk_stride,
                         bool rows_adjacent) {
    return (kp / chunk) * chunk_stride + (r / group) * group * chunk +
           (rows_adjacent ? (kp % chunk) * group + r % group : (r % group) * chunk + kp % chunk);
}

// n values of T; the usual runs (an output row of 8 to 32 pixels, a packed
// chunk) as fixed-size copies the compiler inlines instead of calling memcpy.
template <class T>
inline void copy_run(T* dst, const T* src, index_t n) {
    switch (n * sizeof(T)) {
        case 128: std::memcpy(dst, src, 128); break;
        case 64: std::memcpy(dst, src, 64); break;
        case 32: std::memcpy(dst, src, 32); break;
        case 16: std::memcpy(dst, src, 16); break;
        default: std::memcpy(dst, src, static_cast<size_t>(n) * sizeof(T));
    }
}

// Rows that are the channels of an NCHW float32 array, depth the pixels of its
// images side by side: B of the weight gradient (dy), packed straight from the
// array, rounded as read. An even plane keeps every pair in one image. With
// `sums`, each row's bfloat16 values are added to sums[row] as they are packed:
// db comes with dW's product, which packs every element of dy once, instead of
// a pass of its own over dy (a first layer's 100 MB: 9 ms on two cores). (For
// a 1x1 layer's A, x, this measured slower than copying runs then packing.)
struct ChannelRows {
    const float* data;  // channel 0 of the first image
    index_t img, P, nimg, channels;
    double* sums = nullptr;
};

void pack_channel_rows(const void* ctx, index_t i0, index_t ni, index_t KP, index_t chunk, index_t group,
                       index_t chunk_stride, std::uint32_t* out, bool rows_adjacent) {
    const auto& c = *static_cast<const ChannelRows*>(ctx);
    const index_t half = c.P / 2, pairs = c.nimg * half;
    const index_t step = rows_adjacent ? group : 1;  // from one pair of a row to the next in a chunk
    // Chunk by chunk, so that what is written stays in L1 while its rows are interleaved.
    for (index_t kp0 = 0; kp0 < KP; kp0 += chunk) {
        const index_t end = std::min(kp0 + chunk, KP);
        for (index_t r = 0; r < ni; ++r) {
            const index_t i = i0 + r;
            std::uint32_t* o = out + packed_at(r, kp0, chunk, group, chunk_stride, rows_adjacent) - kp0 * step;
            index_t kp = kp0;
            double sum = 0.0;
            if (i < c.channels)
                while (kp < std::min(end, pairs)) {  // runs within one image
                    const index_t n = kp / half, len = std::min(end, (n + 1) * half) - kp;
                    const float* src = c.data + n * c.img + i * c.P + 2 * (kp - n * half);
                    const std::uint32_t* s = words(src);
                    for (index_t t = 0; t < len; ++t)
                        o[(kp + t) * step] = (bf16_round_bits(s[2 * t]) >> 16) | bf16_round_bits(s[2 * t + 1]);
                    if (c.sums) sum += bf16_sum(src, 2 * len);  // the run is in L1
                    kp += len;
                }
            for (; kp < end; ++kp) o[kp * step] = 0u;
            if (c.sums && i < c.channels) c.sums[i] += sum;
        }
    }
}

// B of the forward product for images [n0, n0 + nimg): rows are output pixels,
// depth pair kp = (cp*KH + kh)*KW + kw is channels 2cp, 2cp + 1 at tap (kh, kw).
struct PairColumns {
    PaddedImage im;        // paired
    const ConvGeom* g;
    index_t n0, nimg;
    const index_t* tap;    // per depth pair: its word offset (cp*Hp + kh*DH)*Wp + kw*DW
    index_t pairs;         // Cp * KH * KW
};

void pack_pair_columns(const void* ctx, index_t i0, index_t ni, index_t KP, index_t chunk, index_t group,
                       index_t chunk_stride, std::uint32_t* out, bool rows_adjacent) {
    const auto& c = *static_cast<const PairColumns*>(ctx);
    const ConvGeom& g = *c.g;
    const index_t P = g.plane(), end = c.nimg * P;
    const auto* base = static_cast<const std::uint32_t*>(c.im.data) + c.n0 * c.im.img;
    // Runs of rows whose pixels are adjacent words of the copy and whose packed
    // places are adjacent (within a group): first row (then its place at pair 0),
    // length, word offset of tap 0 (-1: zeros). A panel has at most 32 rows;
    // longer ones go in batches.
    struct Run {
        index_t r, len, src;
    };
    constexpr index_t kBatch = 64;
    Run runs[kBatch];
    (void)rows_adjacent;  // B's panels only
    for (index_t r0 = 0; r0 < ni; r0 += kBatch) {
        const index_t r1 = std::min(ni, r0 + kBatch);
        index_t nruns = 0;
        for (index_t r = r0; r < r1;) {
            const index_t j = i0 + r;
            index_t len = std::min(group - r % group, r1 - r), src = -1;
            if (j < end) {
                const index_t n = j / P, oh = j % P / g.OW, ow = j % P % g.OW;
                src = n * c.im.img + oh * g.SH * c.im.Wp + ow * g.SW;
                len = std::min(len, g.SW == 1 ? g.OW - ow : index_t(1));
            }
            runs[nruns++] = Run{r, len, src};
            r += len;
        }
        for (index_t q = 0; q < nruns; ++q) runs[q].r = packed_at(runs[q].r, 0, chunk, group, chunk_stride, true);
        for (index_t kp0 = 0; kp0 < KP; kp0 += chunk)  // the layout's offsets, without a division per pair
            for (index_t kp = kp0; kp < kp0 + chunk; ++kp) {
                std::uint32_t* row = out + (kp0 / chunk) * chunk_stride + (kp - kp0) * group;
                for (index_t q = 0; q < nruns; ++q) {
                    const Run& u = runs[q];
                    if (u.src < 0 || kp >= c.pairs)
                        std::fill_n(row + u.r, u.len, 0u);
                    else
                        copy_run(row + u.r, base + u.src + c.tap[kp], u.len);
                }
            }
    }
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
// x + n * x_img) with w (OCg, g.C, KH, KW) (+ bias), rounded to bfloat16:
// output channel o of image n at y + n * y_img + o * P.
void forward_packed(const float* x, index_t x_img, index_t N, const ConvGeom& g, const float* w,
                    index_t OCg, const float* bias, float* y, index_t y_img) {
    const index_t P = g.plane();
    const PaddedImage im = padded_bf16(x, x_img, N, g, true);
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
    b.pack = pack_pair_columns;
    b.ctx = &src;
    gemm_bf16_general(OCg, N * P, 2 * pairs, Operand{{}, nullptr, nullptr, packed_w.data()}, b,
                      CTarget{y, P, P, y_img, true}, false, bias);
}

// dx of one group (dx_is_a_convolution): dy's channels [0, OCg) of image n at
// dy + n * dy_img, w_g (OCg, g.C, KH, KW); dx's channel c of image n at dx + n * dx_img + c * H*W.
void input_grad_packed(const float* dy, index_t dy_img, index_t N, const ConvGeom& g, const float* wg,
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
    forward_packed(dy, dy_img, N, t, wt.data(), g.C, nullptr, dx, dx_img);
}

// A of the weight-gradient product for images [n0, n0 + nimg): rows are the
// taps (c*KH + kh)*KW + kw, depth the pixels n*P + p, from the unpaired copy (stride 1).
struct TapRows {
    PaddedImage im;  // one plane per channel
    const ConvGeom* g;
    index_t n0, nimg;
};

void pack_tap_rows(const void* ctx, index_t i0, index_t ni, index_t KP, index_t chunk, index_t group,
                   index_t chunk_stride, std::uint32_t* out, bool rows_adjacent) {
    const auto& c = *static_cast<const TapRows*>(ctx);
    const ConvGeom& g = *c.g;
    const index_t P = g.plane(), depth = std::min(c.nimg * P, 2 * KP), rows = g.rows();
    const auto* base = static_cast<const std::uint16_t*>(c.im.data) + c.n0 * c.im.img;
    (void)rows_adjacent;  // A only: a row's pairs of one chunk are adjacent
    // Every row reads the same pixels from its own tap: the runs (where in the
    // packed row, where from the tap's origin, how many), cut at the ends of
    // output rows and of the packed chunks, are worked out once per call.
    struct Seg {
        index_t dst, src, len;
    };
    static thread_local std::vector<Seg> segs;
    segs.clear();
    const index_t span = 2 * chunk;  // values per chunk of a row
    for (index_t d = 0; d < depth;) {
        const index_t n = d / P, oh = d % P / g.OW, ow = d % P % g.OW;
        const index_t len = std::min({g.OW - ow, span - d % span, depth - d});
        segs.push_back(Seg{(d / span) * chunk_stride * 2 + d % span, n * c.im.img + oh * g.SH * c.im.Wp + ow, len});
        d += len;
    }
    for (index_t r = 0; r < ni; ++r) {
        const index_t i = i0 + r;
        auto* row = reinterpret_cast<std::uint16_t*>(out + packed_at(r, 0, chunk, group, chunk_stride, false));
        if (i >= rows) {  // past M: zeros
            for (index_t q = 0; q < KP / chunk; ++q) std::fill_n(row + q * chunk_stride * 2, span, std::uint16_t(0));
            continue;
        }
        const index_t ch = i / (g.KH * g.KW), kh = i / g.KW % g.KH, kw = i % g.KW;
        const std::uint16_t* tap = base + (ch * c.im.Hp + kh * g.DH) * c.im.Wp + kw * g.DW;
        for (const Seg& u : segs) copy_run(row + u.dst, tap + u.src, u.len);
        for (index_t d = depth; d < 2 * KP;) {  // past the depth: zeros
            const index_t len = std::min(span - d % span, 2 * KP - d);
            std::fill_n(row + (d / span) * chunk_stride * 2 + d % span, len, std::uint16_t(0));
            d += len;
        }
    }
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
        PackedBuffer packed_w;
        for (index_t gi = 0; gi < cv.G; ++gi) {
            if (forward_from_copy(cv.g)) {
                forward_packed(X + gi * cv.Cg * HW, cv.C * HW, cv.N, cv.g, W + gi * cv.OCg * rows, cv.OCg,
                               B ? B + gi * cv.OCg : nullptr, Y + gi * cv.OCg * P, cv.OC * P);
                continue;
            }
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
                for (index_t n = 0; n < cv.N; ++n) total += bf16_sum(DY + (n * cv.OC + oc) * P, P);
                DB[oc] = static_cast<float>(total);
            }
        }
        for (index_t gi = 0; gi < cv.G; ++gi) {
            const float* Wg = W + gi * cv.OCg * rows;
            if (DX && dx_from_copy(cv.g, cv.Cg)) {
                input_grad_packed(DY + gi * cv.OCg * P, cv.OC * P, cv.N, cv.g, Wg, cv.OCg,
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
                const PaddedImage im = taps ? padded_bf16(X + gi * cv.Cg * HW, cv.C * HW, cv.N, cv.g, false)
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
                    if (taps) a = Operand{{}, nullptr, &tap_rows, nullptr, pack_tap_rows};
                    Operand b{{}, grad_channel_rows, &g};
                    if (channel_rows) b = Operand{{}, nullptr, &dy_rows, nullptr, pack_channel_rows};
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
