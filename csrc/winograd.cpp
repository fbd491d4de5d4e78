/* Winograd convolution F(2x2, KxK), K = 3 or 5 (Lavin & Gray, "Fast Algorithms
 * for Convolutional Neural Networks", CVPR 2016).
 *
 * What: the output is cut into 2x2 tiles. Each tile needs an A x A input patch
 * d (A = K + 1), and with the transform matrices below
 *     y_tile = AT [ (G g G^T) (.) (BT d BT^T) ] AT^T          ((.) elementwise)
 * Summed over input channels, the A*A elementwise products become A*A
 * independent matrix products, one per transform position xi:
 *     M[xi] (OC x T) = U[xi] (OC x C) * V[xi] (C x T)   U = G g G^T, V = BT d BT^T,
 * T = number of tiles. They run as one batched OpenBLAS call (per group: with G
 * groups, group g's rows of U, V and M form its own products). Multiplications
 * per output: A^2/4 per (c, oc) instead of K^2 (3x3: 2.25x fewer, 5x5: 2.8x).
 * Backward, with M' = AT^T dy_tile AT (the transposed output transform):
 *     dV[xi] = U[xi]^T M'[xi]  -> dx tiles BT^T dV BT, summed where tiles overlap
 *     dU[xi] = sum over tiles M'[xi] V[xi]^T  -> dw = G^T dU G
 * Accuracy: points 0, +-1, +-2 and infinity. Measured error relative to the
 * largest entry, against float64: 3x3 about 5e-7 everywhere (as the direct GEMMs);
 * 5x5 about 5e-6 for y and dx and up to 2e-5 for dw (direct: 7e-7 and 4e-6).
 * Layout: x, y NCHW; w (OC, C, K, K); V [A*A][C][T], M [A*A][OC][T],
 * U [A*A][OC][C/G]. Tile t = (image, tile row, tile col) in that order.
 * The batch is processed in chunks of images whose V and M fit kChunkBytes.
 * Threads: the batched GEMM on OpenBLAS's threads; the transforms with
 * OpenMP over (channel, block of kTB tiles), each task writing its own
 * entries; the dx transform over (image, channel) planes, since neighbouring
 * input patches overlap.
 * Gradients: dx and dw are written (returned new by the caller), not added to.
 */
#include "winograd.h"

#include <algorithm>
#include <cstring>
#include <vector>

namespace fc {

namespace {

constexpr int kTB = 16;                       // tiles transformed together (inner loop)
constexpr index_t kChunkBytes = 16 << 20;     // V + M of one chunk of images

template <int R, int C>
struct Mat {
    float v[R][C];
};

template <int R, int C>
constexpr Mat<C, R> transpose(const Mat<R, C>& m) {
    Mat<C, R> t{};
    for (int i = 0; i < R; ++i)
        for (int j = 0; j < C; ++j) t.v[j][i] = m.v[i][j];
    return t;
}

// Transform matrices of F(2x2, KxK) from the points 0, 1, -1 (, 2, -2), infinity;
// the denominators of BT are moved into G so that BT and AT are small integers.
template <int K>
struct Wino;

template <>
struct Wino<3> {
    static constexpr int A = 4;
    static constexpr Mat<2, 4> AT{{{1, 1, 1, 0}, {0, 1, -1, 1}}};
    static constexpr Mat<4, 3> G{{{1, 0, 0}, {.5f, .5f, .5f}, {.5f, -.5f, .5f}, {0, 0, 1}}};
    static constexpr Mat<4, 4> BT{{{1, 0, -1, 0}, {0, 1, 1, 0}, {0, -1, 1, 0}, {0, -1, 0, 1}}};
};

template <>
struct Wino<5> {
    static constexpr int A = 6;
    static constexpr Mat<2, 6> AT{{{1, 1, 1, 1, 1, 0}, {0, 1, -1, 2, -2, 1}}};
    static constexpr Mat<6, 5> G{{{1.f / 4, 0, 0, 0, 0},
                                  {1.f / 6, 1.f / 6, 1.f / 6, 1.f / 6, 1.f / 6},
                                  {1.f / 6, -1.f / 6, 1.f / 6, -1.f / 6, 1.f / 6},
                                  {1.f / 24, 1.f / 12, 1.f / 6, 1.f / 3, 2.f / 3},
                                  {1.f / 24, -1.f / 12, 1.f / 6, -1.f / 3, 2.f / 3},
                                  {0, 0, 0, 0, 1}}};
    static constexpr Mat<6, 6> BT{{{4, 0, -5, 0, 1, 0},
                                   {0, 4, 4, -1, -1, 0},
                                   {0, -4, 4, 1, -1, 0},
                                   {0, -2, -1, 2, 1, 0},
                                   {0, 2, -1, -2, 1, 0},
                                   {0, 4, 0, -5, 0, 1}}};
};

// out = L * in * Rm^T for kTB small matrices at once: in[Q][P][kTB] -> out[R][N][kTB].
// The tile index is innermost, so every loop body is a vector operation; zero
// entries of the transform matrices (about half) are skipped.
template <int R, int Q, int N, int P>
inline void sandwich(const Mat<R, Q>& L, const float (&in)[Q][P][kTB], const Mat<N, P>& Rm,
                     float (&out)[R][N][kTB]) {
    float t[R][P][kTB];  // L * in
    for (int r = 0; r < R; ++r) {
        for (int p = 0; p < P; ++p)
            for (int j = 0; j < kTB; ++j) t[r][p][j] = 0.f;
        for (int q = 0; q < Q; ++q) {
            const float l = L.v[r][q];
            if (l == 0.f) continue;
            for (int p = 0; p < P; ++p)
                for (int j = 0; j < kTB; ++j) t[r][p][j] += l * in[q][p][j];
        }
    }
    for (int r = 0; r < R; ++r)
        for (int n = 0; n < N; ++n) {
            float acc[kTB] = {};
            for (int p = 0; p < P; ++p) {
                const float l = Rm.v[n][p];
                if (l == 0.f) continue;
                for (int j = 0; j < kTB; ++j) acc[j] += l * t[r][p][j];
            }
            for (int j = 0; j < kTB; ++j) out[r][n][j] = acc[j];
        }
}

// Copies of one block's worth of tiles. The full-block case has a constant trip
// count, so it compiles to a few vector moves; with a variable count the
// compiler emits `rep movs`, whose start-up cost dominated these short copies.
inline void load_block(float (&dst)[kTB], const float* src, index_t len) {
    if (len == kTB) {
        for (int j = 0; j < kTB; ++j) dst[j] = src[j];
    } else {
        for (int j = 0; j < kTB; ++j) dst[j] = j < len ? src[j] : 0.f;
    }
}

inline void store_block(float* dst, const float (&src)[kTB], index_t len) {
    if (len == kTB) {
        for (int j = 0; j < kTB; ++j) dst[j] = src[j];
    } else {
        for (index_t j = 0; j < len; ++j) dst[j] = src[j];
    }
}

// Sizes shared by all passes of one layer.
struct Geometry {
    WinoConv s;
    index_t tH, tW, tpi;  // tile rows, tile columns, tiles per image
    index_t Hpp, Wpp;     // zero-padded input plane covering every tile's patch
    index_t nb;           // images per chunk
    std::vector<index_t> in_off, out_off;  // per tile of an image: patch / output offsets
    std::vector<int> out_rows, out_cols;   // valid part of the 2x2 output tile (edges)
};

template <int K>
Geometry make_geometry(const WinoConv& s) {
    constexpr int A = Wino<K>::A;
    Geometry g;
    g.s = s;
    g.tH = (s.OH() + 1) / 2;
    g.tW = (s.OW() + 1) / 2;
    g.tpi = g.tH * g.tW;
    g.Hpp = 2 * g.tH + K - 1;  // >= H + 2*PH: the bottom/right border may be wider
    g.Wpp = 2 * g.tW + K - 1;
    const index_t per_image = index_t(A) * A * (s.C + s.OC) * g.tpi * index_t(sizeof(float));
    g.nb = std::clamp<index_t>(kChunkBytes / std::max<index_t>(per_image, 1), 1,
                               std::max<index_t>(s.N, 1));
    for (index_t th = 0; th < g.tH; ++th)
        for (index_t tw = 0; tw < g.tW; ++tw) {
            g.in_off.push_back(2 * th * g.Wpp + 2 * tw);
            g.out_off.push_back(2 * th * s.OW() + 2 * tw);
            g.out_rows.push_back(static_cast<int>(std::min<index_t>(2, s.OH() - 2 * th)));
            g.out_cols.push_back(static_cast<int>(std::min<index_t>(2, s.OW() - 2 * tw)));
        }
    return g;
}

// nb images of C planes H x W -> planes Hpp x Wpp with the image at (PH, PW), zeros around.
void pad_planes(const float* x, index_t planes, const Geometry& g, float* out) {
    const WinoConv& s = g.s;
    const index_t plane = g.Hpp * g.Wpp;
#pragma omp parallel for schedule(static)
    for (index_t t = 0; t < planes; ++t) {
        const float* src = x + t * s.H * s.W;
        float* dst = out + t * plane;
        std::fill(dst, dst + s.PH * g.Wpp, 0.f);
        for (index_t h = 0; h < s.H; ++h) {
            float* row = dst + (h + s.PH) * g.Wpp;
            std::fill(row, row + s.PW, 0.f);
            std::memcpy(row + s.PW, src + h * s.W, s.W * sizeof(float));
            std::fill(row + s.PW + s.W, row + g.Wpp, 0.f);
        }
        std::fill(dst + (s.PH + s.H) * g.Wpp, dst + plane, 0.f);
    }
}

// U[xi][oc][c] = (G w[oc][c] G^T)[xi], kTB filters at a time.
template <int K>
void transform_weights(const float* w, index_t OC, index_t C, float* U) {
    constexpr int A = Wino<K>::A;
    const index_t pairs = OC * C, blocks = (pairs + kTB - 1) / kTB;
#pragma omp parallel for schedule(static)
    for (index_t b = 0; b < blocks; ++b) {
        const index_t p0 = b * kTB, len = std::min<index_t>(kTB, pairs - p0);
        float g[K][K][kTB] = {};
        for (index_t j = 0; j < len; ++j)
            for (int r = 0; r < K; ++r)
                for (int c = 0; c < K; ++c) g[r][c][j] = w[(p0 + j) * K * K + r * K + c];
        float u[A][A][kTB];
        sandwich(Wino<K>::G, g, Wino<K>::G, u);
        for (int r = 0; r < A; ++r)
            for (int c = 0; c < A; ++c)
                for (index_t j = 0; j < len; ++j) U[(r * A + c) * pairs + p0 + j] = u[r][c][j];
    }
}

// dw[oc][c] = G^T dU[.][oc][c] G.
template <int K>
void inverse_transform_weights(const float* dU, index_t OC, index_t C, float* dw) {
    constexpr int A = Wino<K>::A;
    constexpr Mat<K, A> Gt = transpose(Wino<K>::G);
    const index_t pairs = OC * C, blocks = (pairs + kTB - 1) / kTB;
#pragma omp parallel for schedule(static)
    for (index_t b = 0; b < blocks; ++b) {
        const index_t p0 = b * kTB, len = std::min<index_t>(kTB, pairs - p0);
        float du[A][A][kTB] = {};
        for (int r = 0; r < A; ++r)
            for (int c = 0; c < A; ++c)
                for (index_t j = 0; j < len; ++j) du[r][c][j] = dU[(r * A + c) * pairs + p0 + j];
        float g[K][K][kTB];
        sandwich(Gt, du, Gt, g);
        for (index_t j = 0; j < len; ++j)
            for (int r = 0; r < K; ++r)
                for (int c = 0; c < K; ++c) dw[(p0 + j) * K * K + r * K + c] = g[r][c][j];
    }
}

// V[xi][c][t] = (BT d BT^T)[xi] for the patch d of tile t in channel c; Xp holds
// the chunk's padded planes, T = nb * tpi tiles.
template <int K>
void transform_input(const float* Xp, const Geometry& g, index_t nb, float* V) {
    constexpr int A = Wino<K>::A;
    const index_t C = g.s.C, T = nb * g.tpi, blocks = (T + kTB - 1) / kTB;
    const index_t plane = g.Hpp * g.Wpp;
#pragma omp parallel for schedule(static)
    for (index_t task = 0; task < C * blocks; ++task) {
        const index_t c = task / blocks, t0 = (task % blocks) * kTB;
        const index_t len = std::min<index_t>(kTB, T - t0);
        float d[A][A][kTB] = {};
        for (index_t j = 0; j < len; ++j) {
            const index_t i = (t0 + j) / g.tpi, q = (t0 + j) % g.tpi;
            const float* src = Xp + (i * C + c) * plane + g.in_off[q];
            for (int r = 0; r < A; ++r)
                for (int k = 0; k < A; ++k) d[r][k][j] = src[r * g.Wpp + k];
        }
        float v[A][A][kTB];
        sandwich(Wino<K>::BT, d, Wino<K>::BT, v);
        for (int r = 0; r < A; ++r)
            for (int k = 0; k < A; ++k) store_block(V + ((r * A + k) * C + c) * T + t0, v[r][k], len);
    }
}

// y tiles = AT M AT^T (+ bias), cropped at the right and bottom edges.
template <int K>
void transform_output(const float* M, const Geometry& g, index_t n0, index_t nb, const float* b,
                      float* y) {
    constexpr int A = Wino<K>::A;
    const index_t OC = g.s.OC, OHW = g.s.OH() * g.s.OW(), OW = g.s.OW();
    const index_t T = nb * g.tpi, blocks = (T + kTB - 1) / kTB;
#pragma omp parallel for schedule(static)
    for (index_t task = 0; task < OC * blocks; ++task) {
        const index_t oc = task / blocks, t0 = (task % blocks) * kTB;
        const index_t len = std::min<index_t>(kTB, T - t0);
        float m[A][A][kTB];
        for (int r = 0; r < A; ++r)
            for (int k = 0; k < A; ++k) load_block(m[r][k], M + ((r * A + k) * OC + oc) * T + t0, len);
        float o[2][2][kTB];
        sandwich(Wino<K>::AT, m, Wino<K>::AT, o);
        const float bias = b ? b[oc] : 0.f;
        for (index_t j = 0; j < len; ++j) {
            const index_t i = (t0 + j) / g.tpi, q = (t0 + j) % g.tpi;
            float* dst = y + ((n0 + i) * OC + oc) * OHW + g.out_off[q];
            for (int r = 0; r < g.out_rows[q]; ++r)
                for (int k = 0; k < g.out_cols[q]; ++k) dst[r * OW + k] = o[r][k][j] + bias;
        }
    }
}

// M'[xi][oc][t] = (AT^T dy_tile AT)[xi], the adjoint of transform_output
// (dy outside the output, in a cropped tile, counts as zero).
template <int K>
void transform_output_grad(const float* dy, const Geometry& g, index_t n0, index_t nb, float* Mp) {
    constexpr int A = Wino<K>::A;
    constexpr Mat<A, 2> ATt = transpose(Wino<K>::AT);
    const index_t OC = g.s.OC, OHW = g.s.OH() * g.s.OW(), OW = g.s.OW();
    const index_t T = nb * g.tpi, blocks = (T + kTB - 1) / kTB;
#pragma omp parallel for schedule(static)
    for (index_t task = 0; task < OC * blocks; ++task) {
        const index_t oc = task / blocks, t0 = (task % blocks) * kTB;
        const index_t len = std::min<index_t>(kTB, T - t0);
        float gt[2][2][kTB] = {};
        for (index_t j = 0; j < len; ++j) {
            const index_t i = (t0 + j) / g.tpi, q = (t0 + j) % g.tpi;
            const float* src = dy + ((n0 + i) * OC + oc) * OHW + g.out_off[q];
            for (int r = 0; r < g.out_rows[q]; ++r)
                for (int k = 0; k < g.out_cols[q]; ++k) gt[r][k][j] = src[r * OW + k];
        }
        float mp[A][A][kTB];
        sandwich(ATt, gt, ATt, mp);
        for (int r = 0; r < A; ++r)
            for (int k = 0; k < A; ++k) store_block(Mp + ((r * A + k) * OC + oc) * T + t0, mp[r][k], len);
    }
}

// dx = sum over tiles of BT^T dV BT placed at each tile's patch (patches overlap,
// so one task owns a whole (image, channel) plane), then cropped to H x W.
template <int K>
void transform_input_grad(const float* dV, const Geometry& g, index_t n0, index_t nb, float* Dp,
                          float* dx) {
    constexpr int A = Wino<K>::A;
    constexpr Mat<A, A> BTt = transpose(Wino<K>::BT);
    const WinoConv& s = g.s;
    const index_t C = s.C, T = nb * g.tpi, plane = g.Hpp * g.Wpp;
#pragma omp parallel for schedule(static)
    for (index_t task = 0; task < nb * C; ++task) {
        const index_t i = task / C, c = task % C;
        float* acc = Dp + task * plane;
        std::fill(acc, acc + plane, 0.f);
        for (index_t q0 = 0; q0 < g.tpi; q0 += kTB) {
            const index_t len = std::min<index_t>(kTB, g.tpi - q0), t0 = i * g.tpi + q0;
            float dv[A][A][kTB];
            for (int r = 0; r < A; ++r)
                for (int k = 0; k < A; ++k) load_block(dv[r][k], dV + ((r * A + k) * C + c) * T + t0, len);
            float dd[A][A][kTB];
            sandwich(BTt, dv, BTt, dd);
            for (index_t j = 0; j < len; ++j) {
                float* dst = acc + g.in_off[q0 + j];
                for (int r = 0; r < A; ++r)
                    for (int k = 0; k < A; ++k) dst[r * g.Wpp + k] += dd[r][k][j];
            }
        }
        float* out = dx + ((n0 + i) * C + c) * s.H * s.W;
        for (index_t h = 0; h < s.H; ++h)
            std::memcpy(out + h * s.W, acc + (h + s.PH) * g.Wpp + s.PW, s.W * sizeof(float));
    }
}

template <int K>
void forward(const WinoConv& s, const float* x, const float* w, const float* b, float* y) {
    constexpr int A = Wino<K>::A, A2 = A * A;
    const Geometry g = make_geometry<K>(s);
    const index_t Cg = s.Cg(), OCg = s.OCg();
    float* U = scratch(Slot::wino_weights).get(A2 * s.OC * Cg);
    transform_weights<K>(w, s.OC, Cg, U);
    float* V = scratch(Slot::wino_input).get(A2 * s.C * g.nb * g.tpi);
    float* M = scratch(Slot::wino_output).get(A2 * s.OC * g.nb * g.tpi);
    float* Xp = scratch(Slot::wino_padded).get(g.nb * s.C * g.Hpp * g.Wpp);
    for (index_t n0 = 0; n0 < s.N; n0 += g.nb) {
        const index_t nb = std::min(g.nb, s.N - n0), T = nb * g.tpi;
        pad_planes(x + n0 * s.C * s.H * s.W, nb * s.C, g, Xp);
        transform_input<K>(Xp, g, nb, V);
        for (index_t gi = 0; gi < s.G; ++gi)  // M[xi][g] = U[xi][g] V[xi][g]
            sgemm_batch_strided(false, false, OCg, T, Cg, 1.f, U + gi * OCg * Cg, Cg, s.OC * Cg,
                                V + gi * Cg * T, T, s.C * T, 0.f, M + gi * OCg * T, T, s.OC * T,
                                A2);
        transform_output<K>(M, g, n0, nb, b, y);
    }
}

template <int K>
void backward(const WinoConv& s, const float* x, const float* w, const float* dy, float* dx,
              float* dw) {
    constexpr int A = Wino<K>::A, A2 = A * A;
    const Geometry g = make_geometry<K>(s);
    const index_t Cg = s.Cg(), OCg = s.OCg();
    float* U = nullptr;
    if (dx) {
        U = scratch(Slot::wino_weights).get(A2 * s.OC * Cg);
        transform_weights<K>(w, s.OC, Cg, U);
    }
    float* dU = nullptr;
    if (dw) {
        dU = scratch(Slot::wino_weight_grad).get(A2 * s.OC * Cg);
        std::fill(dU, dU + A2 * s.OC * Cg, 0.f);  // the GEMMs add every chunk into it
    }
    float* V = scratch(Slot::wino_input).get(A2 * s.C * g.nb * g.tpi);  // V, then reused for dV
    float* Mp = scratch(Slot::wino_output).get(A2 * s.OC * g.nb * g.tpi);
    float* Xp = scratch(Slot::wino_padded).get(g.nb * s.C * g.Hpp * g.Wpp);  // padded x, then padded dx
    for (index_t n0 = 0; n0 < s.N; n0 += g.nb) {
        const index_t nb = std::min(g.nb, s.N - n0), T = nb * g.tpi;
        transform_output_grad<K>(dy, g, n0, nb, Mp);
        if (dw) {
            pad_planes(x + n0 * s.C * s.H * s.W, nb * s.C, g, Xp);
            transform_input<K>(Xp, g, nb, V);
            for (index_t gi = 0; gi < s.G; ++gi)  // dU[xi][g] += M'[xi][g] V[xi][g]^T
                sgemm_batch_strided(false, true, OCg, Cg, T, 1.f, Mp + gi * OCg * T, T, s.OC * T,
                                    V + gi * Cg * T, T, s.C * T, 1.f, dU + gi * OCg * Cg, Cg,
                                    s.OC * Cg, A2);
        }
        if (dx) {
            for (index_t gi = 0; gi < s.G; ++gi)  // dV[xi][g] = U[xi][g]^T M'[xi][g]
                sgemm_batch_strided(true, false, Cg, T, OCg, 1.f, U + gi * OCg * Cg, Cg, s.OC * Cg,
                                    Mp + gi * OCg * T, T, s.OC * T, 0.f, V + gi * Cg * T, T,
                                    s.C * T, A2);
            transform_input_grad<K>(V, g, n0, nb, Xp, dx);
        }
    }
    if (dw) inverse_transform_weights<K>(dU, s.OC, Cg, dw);
}

}  // namespace

void winograd_forward(const WinoConv& s, const float* x, const float* w, const float* b, float* y) {
    if (s.K == 3) return forward<3>(s, x, w, b, y);
    return forward<5>(s, x, w, b, y);
}

void winograd_backward(const WinoConv& s, const float* x, const float* w, const float* dy,
                       float* dx, float* dw) {
    if (s.K == 3) return backward<3>(s, x, w, dy, dx, dw);
    return backward<5>(s, x, w, dy, dx, dw);
}

}  // namespace fc
