/* Register-blocked float32 kernels of the convolution GEMMs, one set per
 * instruction set, picked once at import for the CPU that runs them.
 *
 * What (written once in microkernel.inc, compiled for AVX-512, AVX2+FMA and a
 * 4-lane baseline for any CPU in microkernel.cpp):
 *  - tile<m>: C[m x NR] (=, or +=) A * B_panel, the outer-product step of a
 *    GEMM. A is read in place with any strides (W, W^T or the column rows,
 *    no packing); B is packed as [kc][NR] (NR columns per k, one vector
 *    load each); C is written straight into its destination with row stride ldc.
 *  - tile_gather<m>: the same product with each row of A found through its
 *    own offset, in runs: the column rows of a convolution read straight
 *    from (the prepared copy of) x, where rows differ by a kernel offset
 *    and an output row's pixels are adjacent (the weight gradient).
 *  - pack_transposed: B panels of a matrix whose rows are the panel's
 *    columns (dy^T for the weight gradient), transposed in registers.
 *  - copy_rows: the short runs (up to an output row) that make up a packed
 *    column panel, a masked vector for each run's tail (a call to memcpy per
 *    short run costs more than the copy); add_runs: the
 *    same for col2im's sums.
 * Why our own: the convolution GEMMs are thin (K = 27-400 for first layers,
 * M or K <= 192 for 1x1 layers). Through BLAS each one paid for an im2col
 * pass, BLAS's own repacking of the columns and of W for every image, and a
 * pass that zeroes y before the product adds to it. Here the columns are
 * packed once, straight from x, into the panel the kernel reads (L1/L2), and
 * y is written exactly once, bias included.
 * Layout: row-major throughout.
 */
#pragma once

#include "common.h"

namespace fc {

// What tile<m> starts its accumulators from.
enum class TileInit { zero, bias, accumulate };

// c[i][j] = init + sum_k a[i*a_row + k*a_k] * b[k*NR + j] for i < m, j < NR.
// init: 0, bias[i], or c[i][j] itself. With stream, c is written past the
// caches (c and ldc * 4 must be multiples of 64 bytes; call store_fence()
// before another thread reads c): for outputs too large to stay in cache,
// this saves reading every line of c in before it is overwritten.
using TileKernel = void (*)(index_t kc, const float* a, index_t a_row, index_t a_k,
                            const float* b, float* c, index_t ldc, TileInit init,
                            const float* bias, bool stream);

// c[i][j] (+)= sum over s < segs, q < len of a[a_off[i] + s*pitch + q] * b[(s*len + q)*NR + j]
// for i < m, j < NR: A's row i is segs runs of len values, pitch apart,
// starting at a + a_off[i]. With accumulate, the sum is added to c.
using GatherKernel = void (*)(index_t segs, index_t len, index_t pitch, const float* a,
                              const index_t* a_off, const float* b, float* c, index_t ldc,
                              bool accumulate);

// dst[q*NR + i] = src[i*lds + q] for q < len and i < NR; 0 for rows i >= rows.
using PackTransposed = void (*)(const float* src, index_t lds, index_t rows, index_t len,
                                float* dst);

// dst[r*ld + q] = src[offset[r] + q] for r < rows, q < len.
using CopyRows = void (*)(const float* src, const index_t* offset, index_t rows, index_t len,
                          float* dst, index_t ld);

// dst[i*dst_pitch + q] += src[i*src_pitch + q] for i < runs, q < len.
using AddRuns = void (*)(const float* src, index_t src_pitch, float* dst, index_t dst_pitch,
                         index_t runs, index_t len);

constexpr int kMaxMR = 8;

struct Microkernels {
    const char* isa;  // "avx512", "avx2" or "baseline"
    int lanes;        // floats per vector register
    int mr, nr;       // tile: rows of A, columns of B
    TileKernel tile[kMaxMR + 1];  // tile[m] computes the first m <= mr rows
    GatherKernel tile_gather[kMaxMR + 1];
    PackTransposed pack_transposed;
    CopyRows copy_rows;
    AddRuns add_runs;
    void (*store_fence)();
};

// The set chosen by init_microkernels(); valid after the module is imported.
const Microkernels& microkernels();

// Whether loops compiled twice (for AVX2+FMA and the x86-64 baseline, as activation.cpp and
// pool.cpp do) take their AVX2 copy: whenever the chosen set is not the baseline.
inline bool avx2_loops() {
#if defined(__x86_64__) || defined(__i386__)
    return std::string(microkernels().isa) != "baseline";
#else
    return false;
#endif
}

// Picks the widest set this CPU runs, or the one FASTCONV_ISA names
// (avx512 / avx2 / baseline; an unknown or unsupported name fails the import).
void init_microkernels();

}  // namespace fc
