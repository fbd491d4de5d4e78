/* The CPU's bfloat16 peak, for the GFLOP/s columns of BENCHMARKS.md: back-to-back
 * TDPBF16PS (AMX), VDPBF16PS (AVX512-BF16) and float32 VFMADD231PS on operands that never leave the
 * tiles / registers, one thread, so only the instructions' throughput counts. Then the AMX
 * loop of csrc/gemm_bf16_amx.inc (2x2 tiles of C, four 1 KB tile loads per four TDPBF16PS)
 * on packed operands of a given depth, so in L1, L2 or beyond, with and without prefetching
 * A two steps ahead: what the tile loads cost the GEMM.
 *   g++ -O2 -fopenmp benchmarks/bf16_peak.cpp -o /tmp/bf16_peak && /tmp/bf16_peak
 * Each thread of OMP_NUM_THREADS runs the loop; the sum is the machine's peak. */
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <initializer_list>

struct alignas(64) TileConfig {
    unsigned char palette, start_row, reserved[14];
    unsigned short colsb[16];
    unsigned char rows[16];
};

__attribute__((target("amx-tile,amx-bf16"))) double amx_flops(long reps) {
    TileConfig cfg{};
    cfg.palette = 1;
    for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    asm volatile("" ::"m"(cfg));  // the stores above must reach memory before LDTILECFG reads it
    _tile_loadconfig(&cfg);
    _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
    _tile_zero(4); _tile_zero(5); _tile_zero(6); _tile_zero(7);
    for (long r = 0; r < reps; ++r) {  // four independent accumulators
        _tile_dpbf16ps(0, 4, 6);
        _tile_dpbf16ps(1, 4, 7);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_release();
    return 4.0 * reps * 16 * 16 * 32 * 2;  // 16x16 results, 32 products each
}

// Twelve independent accumulators in named registers (an array indexed in a
// loop is kept in memory at -O2, which times store forwarding, not the
// instruction); enough to cover VDPBF16PS / VFMADD latency times throughput.
#define FC_TWELVE(op) op(0) op(1) op(2) op(3) op(4) op(5) op(6) op(7) op(8) op(9) op(10) op(11)
#define FC_ZERO(i) __m512 a##i = _mm512_setzero_ps();
#define FC_SUM(i) s = _mm512_add_ps(s, a##i);

__attribute__((target("avx512f,avx512bf16"))) double vnni_flops(long reps, float* sink) {
    FC_TWELVE(FC_ZERO)
    __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80), y = x;
    for (long r = 0; r < reps; ++r) {
        asm volatile("" : "+v"(x), "+v"(y));  // operands unknown to the compiler each round
#define FC_DOT(i) a##i = _mm512_dpbf16_ps(a##i, x, y);
        FC_TWELVE(FC_DOT)
#undef FC_DOT
    }
    __m512 s = _mm512_setzero_ps();
    FC_TWELVE(FC_SUM)
    *sink = _mm512_reduce_add_ps(s);
    return 12.0 * reps * 16 * 2 * 2;  // 16 lanes, 2 products each
}

// The float32 FMA peak beside it, for the float32 kernels' percentages.
__attribute__((target("avx512f"))) double fma_flops(long reps, float* sink) {
    FC_TWELVE(FC_ZERO)
    __m512 x = _mm512_set1_ps(1e-7f), y = x;
    for (long r = 0; r < reps; ++r) {
        asm volatile("" : "+v"(x), "+v"(y));
#define FC_FMA(i) a##i = _mm512_fmadd_ps(x, y, a##i);
        FC_TWELVE(FC_FMA)
#undef FC_FMA
    }
    __m512 s = _mm512_setzero_ps();
    FC_TWELVE(FC_SUM)
    *sink = _mm512_reduce_add_ps(s);
    return 12.0 * reps * 16 * 2;  // 16 lanes, one product each
}

// The micro-kernel's inner loop over `pairs` depth pairs of packed A (two 16-row groups)
// and B (a 32-column panel), repeated; prefetch: A's tiles two steps ahead (the kernel
// does not: with aligned operands it gained nothing there).
__attribute__((target("amx-tile,amx-bf16"))) double amx_loads_flops(long pairs, bool prefetch) {
    alignas(64) static unsigned a[2 * 16 * 8192], b[32 * 8192];
    static float c[16 * 16];
    for (long i = 0; i < 32 * pairs; ++i) a[i] = b[i] = 0x3F803F80u;
    TileConfig cfg{};
    cfg.palette = 1;
    for (int t = 0; t < 8; ++t) cfg.rows[t] = 16, cfg.colsb[t] = 64;
    asm volatile("" ::"m"(cfg));
    _tile_loadconfig(&cfg);
    const unsigned* a1 = a + 16 * pairs;
    const long reps = 120000000L / pairs;  // about 5e11 flops: half a second or more
    for (long r = 0; r < reps; ++r) {
        _tile_zero(0); _tile_zero(1); _tile_zero(2); _tile_zero(3);
        for (long kp = 0; kp < pairs; kp += 16) {
            if (prefetch)
                for (int line = 0; line < 1024; line += 64) {
                    _mm_prefetch(reinterpret_cast<const char*>(a + (kp + 32) * 16) + line, _MM_HINT_T0);
                    _mm_prefetch(reinterpret_cast<const char*>(a1 + (kp + 32) * 16) + line, _MM_HINT_T0);
                }
            _tile_loadd(4, a + kp * 16, 64);
            _tile_loadd(5, a1 + kp * 16, 64);
            _tile_loadd(6, b + kp * 32, 64);
            _tile_loadd(7, b + kp * 32 + 256, 64);
            _tile_dpbf16ps(0, 4, 6);
            _tile_dpbf16ps(1, 4, 7);
            _tile_dpbf16ps(2, 5, 6);
            _tile_dpbf16ps(3, 5, 7);
        }
        _tile_stored(0, c, 64);  // keeps the sums live
    }
    _tile_release();
    return double(reps) * (pairs / 16) * 4 * 16 * 16 * 32 * 2;
}

int main() {
    const bool amx = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    const char* names[] = {"TDPBF16PS (AMX)", "VDPBF16PS", "VFMADD231PS (float32)"};
    for (int kind = 0; kind < 3; ++kind) {
        if (kind == 0 && !amx) continue;
        double flops = 0;
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : flops)
        {
            float sink;
            flops += kind == 0 ? amx_flops(20000000)
                   : kind == 1 ? vnni_flops(50000000, &sink) : fma_flops(50000000, &sink);
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%s: %.0f GFLOP/s on %d threads\n", names[kind], flops / s / 1e9,
                    omp_get_max_threads());
    }
    if (!amx) return 0;
    for (long pairs : {64L, 256L, 1200L, 8192L})
        for (bool prefetch : {false, true}) {
            const auto t0 = std::chrono::steady_clock::now();
            const double flops = amx_loads_flops(pairs, prefetch);
            const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
            std::printf("AMX kernel loop, depth %ld pairs (%ld KB of A and B)%s: %.0f GFLOP/s on 1 thread\n",
                        pairs, pairs * 256 / 1024, prefetch ? ", A prefetched" : "", flops / s / 1e9);
        }
}
