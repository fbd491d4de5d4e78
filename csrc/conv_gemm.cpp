/* Drivers of the convolution GEMMs (conv_gemm.h) around the kernels of
 * microkernel.h.
 *
 * gemm_columns (y = W col, dcol = W^T dy): the columns are cut into panels of
 * NR; a thread packs one panel of the column matrix straight from x (or its
 * prepared copy) into a kc x NR buffer (pack_columns), then runs the tile
 * kernel over every block of MR rows of A, which writes its MR x NR block of
 * y in place. A is W read in place (small, it stays in L2), or W^T packed
 * once per call. A panel that crosses an image boundary or the end (P not a
 * multiple of NR) is computed into a small buffer and copied out.
 * weight_grad_columns (dW = dy col^T): the sum runs along the rows of both
 * dy and col, so one of them must be transposed into panels. It computes
 * dW^T = col dy^T: NR output channels of dy are transposed per chunk of
 * columns (pack_transposed), and the column rows are A, read where they lie
 * (tile_gather: x itself for 1x1 layers, else the prepared copy, whose rows
 * for neighbouring kernel taps share cache lines): packing them per chunk
 * first would cost about as much as the products in first layers, whose
 * column rows are short. Output channel counts are multiples of 32 in common
 * networks, so the panels are full. Products collect in float partials,
 * which go into double sums after every kFloatRun columns.
 * input_grad_columns (dx = col2im(W^T dy)): the same tile kernel as
 * gemm_columns, one image per thread, into a band of column rows that
 * col2im_rows adds onto the image's plane before the next band: the column
 * rows never leave L2 (written to memory and read back by a separate col2im
 * pass, they would cost first layers a large share of their dx time).
 * Threads: OpenMP; no BLAS call inside, so no nesting.
 */
#include "conv_gemm.h"

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <vector>

#include "kernels.h"
#include "microkernel.h"

namespace fc {

namespace {

// Depth of one packed column panel: kc x NR floats (64 KB for NR = 32) stay in
// L2 while the tile kernel runs over all of A; deeper sums are split.
constexpr index_t kMaxKC = 512;
// Columns per weight-gradient chunk. Fewer, longer chunks mean fewer thread
// barriers.
constexpr index_t kGradChunk = 4096;
// Weight-gradient products are summed in float over at most this many
// columns, then added to a double: a 128-image batch sums 10^5 products per
// entry, and float chains of 4096 of them already showed errors of 2e-6
// relative to the largest entry (1e-7 with 1024).
constexpr index_t kFloatRun = 1024;

index_t ceil_div(index_t a, index_t b) { return (a + b - 1) / b; }

// Bound on the panel width NR of any kernel set (AVX-512: 32).
constexpr index_t kMaxNR = 64;

// acc[o] += row[o] for o < n; sizes by value so the loop vectorises.
void add_row(float* __restrict acc, const float* __restrict row, index_t n) {
    for (index_t o = 0; o < n; ++o) acc[o] += row[o];
}

// A (M x K) as blocks of MR rows, each [K][MR] (zero rows past M), in the
// calling thread's Slot::packed_a: block i0 starts at i0 * K.
MatrixView pack_row_blocks(MatrixView a, index_t M, index_t K, index_t MR) {
    float* packed = scratch(Slot::packed_a).get(ceil_div(M, MR) * MR * K);
    for (index_t i0 = 0; i0 < M; i0 += MR)
        for (index_t k = 0; k < K; ++k)
            for (index_t i = 0; i < MR; ++i)
                packed[i0 * K + k * MR + i] = i0 + i < M ? a.data[(i0 + i) * a.row + k * a.col] : 0.f;
    return MatrixView{packed, 1, MR};
}

}  // namespace

void gemm_columns(MatrixView a, index_t M, const Columns& cols, index_t nimg, const float* bias,
                  ColumnOutput out) {
    const Microkernels& mk = microkernels();
    const index_t K = cols.g.rows(), P = cols.g.plane(), J = nimg * P;
    if (M == 0 || J == 0) return;
    const index_t MR = mk.mr, NR = mk.nr, Mpad = ceil_div(M, MR) * MR;
    // Equal depths; K = 0 is one empty block, so y still gets its bias.
    const index_t kblocks = std::max<index_t>(1, ceil_div(K, kMaxKC)), kc_max = ceil_div(K, kblocks);
    const index_t tiles = ceil_div(J, NR);
    const bool stream = M * J * index_t(sizeof(float)) >= kStreamBytes && kblocks == 1 &&
                        reinterpret_cast<std::uintptr_t>(out.data) % 64 == 0 &&
                        (P * index_t(sizeof(float))) % 64 == 0 &&
                        (out.img_stride * index_t(sizeof(float))) % 64 == 0;
    // A with rows that are not contiguous (W^T for the input gradient) is
    // packed first, per block of MR rows as [K][MR]: read in place, each k
    // would start a new cache line.
    const bool packed_a = a.col != 1;
    if (packed_a) a = pack_row_blocks(a, M, K, MR);
    // Where block i0 of A starts at depth k0 (packed: block i0 starts at i0 * K).
    auto a_block = [&](index_t i0, index_t k0) {
        return packed_a ? a.data + i0 * K + k0 * MR : a.data + i0 * a.row + k0 * a.col;
    };
#pragma omp parallel
    {
        float* b = scratch(Slot::panel).get(kc_max * NR);
        float* edge = scratch(Slot::tile).get(Mpad * NR);
#pragma omp for schedule(static)
        for (index_t t = 0; t < tiles; ++t) {
            const index_t j0 = t * NR, n = std::min(NR, J - j0), img = j0 / P, p0 = j0 % P;
            const bool in_place = n == NR && p0 + NR <= P;  // one image, a whole tile
            float* c = in_place ? out.data + img * out.img_stride + p0 : edge;
            const index_t ldc = in_place ? P : NR;
            for (index_t kb = 0; kb < kblocks; ++kb) {
                const index_t k0 = kb * kc_max, kc = std::min(kc_max, K - k0);
                pack_columns(cols, k0, k0 + kc, j0, n, b, NR);
                if (n < NR)  // the columns past the end read as zero
                    for (index_t k = 0; k < kc; ++k) std::fill(b + k * NR + n, b + (k + 1) * NR, 0.f);
                const TileInit init = k0 > 0 ? TileInit::accumulate
                                      : bias ? TileInit::bias
                                             : TileInit::zero;
                for (index_t i0 = 0; i0 < M; i0 += MR)
                    mk.tile[std::min(MR, M - i0)](kc, a_block(i0, k0), a.row, a.col, b,
                                                  c + i0 * ldc, ldc, init,
                                                  bias ? bias + i0 : nullptr, stream && in_place);
            }
            if (!in_place)  // copy the buffered tile out, one image's run of columns at a time
                for (index_t done = 0; done < n;) {
                    const index_t j = j0 + done, im = j / P, p = j % P;
                    const index_t len = std::min(n - done, P - p);
                    for (index_t i = 0; i < M; ++i)
                        std::memcpy(out.data + im * out.img_stride + i * P + p, edge + i * NR + done,
                                    len * sizeof(float));
                    done += len;
                }
        }
        if (stream) mk.store_fence();
    }
}

void weight_grad_columns(const float* dy, index_t dy_img_stride, index_t M, const Columns& cols,
                         index_t nimg, float* dw, index_t ldw, float* db) {
    const Microkernels& mk = microkernels();
    const ConvGeom& g = cols.g;
    const index_t K = g.rows(), P = g.plane(), HW = g.H * g.W;
    if (M == 0 || K == 0) return;
    const index_t MR = mk.mr, NR = mk.nr;
    // The column rows are read where they lie: in x for 1x1 layers (row r at
    // r * HW, one run per image), else in the prepared copy (row r at
    // offset[r], one run per output row, rows of the copy SH * row_len apart).
    const bool rows_of_x = g.pointwise();
    std::vector<index_t> row_at(K);
    for (index_t r = 0; r < K; ++r) row_at[r] = rows_of_x ? r * HW : cols.offset[r];
    const index_t run_w = rows_of_x ? P : g.OW, pitch = rows_of_x ? 0 : g.SH * cols.row_len;
    // A chunk is nb whole images (small P) or one image's pixels [p0, p0 + len),
    // at most kGradChunk columns.
    const index_t nb = P >= kGradChunk ? 1 : kGradChunk / P;
    const index_t len_max = P >= kGradChunk ? ceil_div(P, ceil_div(P, kGradChunk)) : P;
    // Work items: a panel of NR output channels times a share of the rows of
    // col. Which thread takes an item does not change any sum.
    const index_t threads = get_num_threads();
    // Each share transposes its own copy of the panel, so take as few shares
    // as give every thread the same number of items.
    const index_t panels = ceil_div(M, NR), row_blocks = ceil_div(K, MR);
    const index_t shares = std::min(row_blocks, threads / std::gcd(panels, threads));
    const index_t Mpad = panels * NR;
    // Products go into float partials (dW^T), which are added to the doubles
    // after every kFloatRun columns; db's column sums likewise.
    std::vector<float> part_t(row_blocks * MR * Mpad, 0.f);
    std::vector<double> sum_t(K * M, 0.0);
    std::vector<double> sum_b(db ? M : 0, 0.0);
    auto flush = [&](index_t r_begin, index_t r_end, index_t o0, index_t ob) {
        for (index_t r = r_begin; r < r_end; ++r)
            for (index_t o = o0; o < o0 + ob; ++o) sum_t[r * M + o] += part_t[r * Mpad + o];
    };
    index_t run = 0;  // columns in the float partials since they were last added

    for (index_t n0 = 0; n0 < nimg; n0 += nb)
        for (index_t p0 = 0; p0 < P; p0 += len_max) {
            const index_t cnt = std::min(nb, nimg - n0), len = std::min(len_max, P - p0);
            const index_t ld = cnt * len;  // columns in this chunk (cnt > 1 only if len == P)
            // A chunk longer than a run is summed and added in pieces; shorter
            // ones share a run until it would grow past kFloatRun columns.
            const bool pieces = ld > kFloatRun;
            if (run > 0 && (pieces || run + ld > kFloatRun)) {
#pragma omp parallel for schedule(static)
                for (index_t r = 0; r < K; ++r) flush(r, r + 1, 0, M);
                run = 0;
            }
            const bool fresh = run == 0;
            run = pieces ? 0 : run + ld;
            const index_t piece = pieces ? kFloatRun : ld;
#pragma omp parallel
            {
                float* panel = scratch(Slot::panel).get(ld * NR);
#pragma omp for schedule(static)
                for (index_t item = 0; item < panels * shares; ++item) {
                    const index_t o0 = item / shares * NR, share = item % shares;
                    const index_t ob = std::min(NR, M - o0);
                    for (index_t i = 0; i < cnt; ++i)  // dy^T of this panel's channels
                        mk.pack_transposed(dy + (n0 + i) * dy_img_stride + o0 * P + p0, P, ob, len,
                                           panel + i * len * NR);
                    if (db && share == 0)  // column sums, kFloatRun rows at a time
                        for (index_t q0 = 0; q0 < ld; q0 += kFloatRun) {
                            float part[kMaxNR] = {};
                            for (index_t q = q0; q < std::min(ld, q0 + kFloatRun); ++q)
                                add_row(part, panel + q * NR, NR);
                            for (index_t o = 0; o < ob; ++o) sum_b[o0 + o] += part[o];
                        }
                    for (index_t rb = row_blocks * share / shares;
                         rb < row_blocks * (share + 1) / shares; ++rb) {
                        const index_t r0 = rb * MR, m = std::min(MR, K - r0);
                        float* c = part_t.data() + r0 * Mpad + o0;
                        for (index_t k0 = 0; k0 < ld; k0 += piece) {
                            bool accumulate = !pieces && !fresh;
                            // Columns [k0, k1) of the chunk, a run of pixels of one image at a time.
                            for (index_t k = k0, k1 = std::min(ld, k0 + piece); k < k1;) {
                                const index_t i = k / len, p = p0 + k % len;
                                const index_t end = p + std::min(k1 - k, len - k % len);
                                const float* a = cols.x + (n0 + i) * cols.img_stride;
                                // Partial output rows alone, whole ones in one call.
                                const index_t ow = p % run_w;
                                const index_t segs = ow == 0 ? std::max<index_t>(1, (end - p) / run_w) : 1;
                                const index_t seg = std::min(end - p, run_w - ow);
                                mk.tile_gather[m](segs, seg, pitch, a + p / run_w * pitch + ow,
                                                  row_at.data() + r0, panel + k * NR, c, Mpad, accumulate);
                                accumulate = true;
                                k += segs * seg;
                            }
                            if (pieces) flush(r0, r0 + m, o0, ob);
                        }
                    }
                }
            }
        }
    if (run > 0) {
#pragma omp parallel for schedule(static)
        for (index_t r = 0; r < K; ++r) flush(r, r + 1, 0, M);
    }
#pragma omp parallel for schedule(static)
    for (index_t o = 0; o < M; ++o)
        for (index_t r = 0; r < K; ++r) dw[o * ldw + r] = static_cast<float>(sum_t[r * M + o]);
    for (index_t o = 0; db && o < M; ++o) db[o] = static_cast<float>(sum_b[o]);
}

void input_grad_columns(MatrixView w_t, const Columns& dy_cols, const ConvGeom& g, index_t nimg,
                        float* dx, index_t dx_img_stride) {
    const Microkernels& mk = microkernels();
    const index_t M = g.rows(), K = dy_cols.g.rows(), P = g.plane();
    if (M == 0 || P == 0) return;
    const index_t MR = mk.mr, NR = mk.nr;
    const index_t kblocks = std::max<index_t>(1, ceil_div(K, kMaxKC)), kc_max = ceil_div(K, kblocks);
    const MatrixView a = pack_row_blocks(w_t, M, K, MR);
    // Output rows per band: its column rows (M x band pixels) stay in L2
    // next to the image's plane while they are added onto it.
    const index_t band_rows = col2im_band_rows(g);
    const index_t ld_max = ceil_div(band_rows * g.OW, NR) * NR;  // whole panels: no edge cases
    const bool in_place = col2im_in_place(g);
#pragma omp parallel
    {
        float* b = scratch(Slot::panel).get(kc_max * NR);
        float* band = scratch(Slot::tile).get(M * ld_max);
        float* plane = in_place ? nullptr : scratch(Slot::planes).get(col2im_plane_floats(g));
#pragma omp for schedule(static)
        for (index_t img = 0; img < nimg; ++img) {
            float* out = dx + img * dx_img_stride;
            float* d = in_place ? out : plane;
            std::fill_n(d, col2im_plane_floats(g), 0.f);
            for (index_t oh0 = 0; oh0 < g.OH; oh0 += band_rows) {
                const index_t oh1 = std::min(g.OH, oh0 + band_rows), n = (oh1 - oh0) * g.OW;
                const index_t ld = ceil_div(n, NR) * NR;
                for (index_t t0 = 0; t0 < n; t0 += NR) {  // band[:, t0:t0+NR] = W^T dy panel
                    const index_t nn = std::min(NR, n - t0);
                    for (index_t k0 = 0; k0 < K; k0 += kc_max) {
                        const index_t kc = std::min(kc_max, K - k0);
                        pack_columns(dy_cols, k0, k0 + kc, img * P + oh0 * g.OW + t0, nn, b, NR);
                        if (nn < NR)  // the columns past the end read as zero
                            for (index_t k = 0; k < kc; ++k) std::fill(b + k * NR + nn, b + (k + 1) * NR, 0.f);
                        for (index_t i0 = 0; i0 < M; i0 += MR)
                            mk.tile[std::min(MR, M - i0)](kc, a.data + i0 * K + k0 * MR, 1, MR, b,
                                                          band + i0 * ld + t0, ld,
                                                          k0 > 0 ? TileInit::accumulate : TileInit::zero,
                                                          nullptr, false);
                    }
                }
                col2im_rows(band, ld, g, oh0, oh1, d);
            }
            if (!in_place) col2im_crop(d, g, out);
        }
    }
}

}  // namespace fc
