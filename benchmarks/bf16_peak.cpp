/* The CPU's bfloat16 peak, for the GFLOP/s columns of BENCHMARKS.md: back-to-back
 * TDPBF16PS (AMX) and VDPBF16PS (AVX512-BF16) on operands that never leave the
 * tiles / registers, one thread, so only the instructions' throughput counts.
 *   g++ -O2 -fopenmp benchmarks/bf16_peak.cpp -o /tmp/bf16_peak && /tmp/bf16_peak
 * Each thread of OMP_NUM_THREADS runs the loop; the sum is the machine's peak. */
#include <immintrin.h>
#include <omp.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>

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

__attribute__((target("avx512f,avx512bf16"))) double vnni_flops(long reps, float* sink) {
    __m512 acc[12];
    for (auto& a : acc) a = _mm512_setzero_ps();
    const __m512bh x = (__m512bh)_mm512_set1_epi32(0x3F803F80), y = x;
    for (long r = 0; r < reps; ++r)
        for (auto& a : acc) a = _mm512_dpbf16_ps(a, x, y);
    __m512 s = acc[0];
    for (int i = 1; i < 12; ++i) s = _mm512_add_ps(s, acc[i]);
    *sink = _mm512_reduce_add_ps(s);
    return 12.0 * reps * 16 * 2 * 2;  // 16 lanes, 2 products each
}

int main() {
    const bool amx = syscall(SYS_arch_prctl, 0x1023, 18) == 0;
    for (int kind = 0; kind < 2; ++kind) {
        if (kind == 0 && !amx) continue;
        double flops = 0;
        const auto t0 = std::chrono::steady_clock::now();
#pragma omp parallel reduction(+ : flops)
        {
            float sink;
            flops += kind == 0 ? amx_flops(20000000) : vnni_flops(50000000, &sink);
        }
        const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
        std::printf("%s: %.0f GFLOP/s on %d threads\n", kind == 0 ? "TDPBF16PS (AMX)" : "VDPBF16PS",
                    flops / s / 1e9, omp_get_max_threads());
    }
}
