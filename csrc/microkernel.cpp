/* The kernels of microkernel.h for three instruction sets, and the choice
 * between them.
 *
 * The package is built for the plain x86-64 baseline (no -march flags). The
 * AVX sets below are compiled for their own instructions with
 * `#pragma GCC target`, and init_microkernels() picks the widest one the CPU
 * has, once, at import; FASTCONV_ISA picks one by name (the tests run each).
 * Register budgets: AVX-512 has 32 vector registers (tile 8 x 32: 16
 * accumulators), AVX2 and the baseline have 16 (tile 6 x 2 vectors: 12):
 * enough independent sums to hide the FMA latency, and room left for the
 * loaded operands.
 */
#include "microkernel.h"

#if defined(__x86_64__) || defined(__i386__)
#include <immintrin.h>
#endif

#include <cstdlib>
#include <cstring>
#include <string>
#include <utility>

namespace fc {

#if defined(__x86_64__) || defined(__i386__)

#pragma GCC push_options
#pragma GCC target("avx512f,avx512dq,fma")
namespace avx512 {
using Vec = __m512;
constexpr int kLanes = 16, kMR = 8, kNV = 2;
inline Vec load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm512_storeu_ps(p, v); }
inline void store_streaming(float* p, Vec v) { _mm512_stream_ps(p, v); }
inline void store_fence() { _mm_sfence(); }
inline Vec broadcast(float s) { return _mm512_set1_ps(s); }
inline Vec zero() { return _mm512_setzero_ps(); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm512_fmadd_ps(a, b, c); }
inline __mmask16 first(index_t n) { return static_cast<__mmask16>((1u << n) - 1); }
inline Vec load_partial(const float* p, index_t n) { return _mm512_maskz_loadu_ps(first(n), p); }
inline void store_partial(float* p, Vec v, index_t n) { _mm512_mask_storeu_ps(p, first(n), v); }
#include "microkernel.inc"
}  // namespace avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx2,fma")
namespace avx2 {
using Vec = __m256;
constexpr int kLanes = 8, kMR = 6, kNV = 2;
inline Vec load(const float* p) { return _mm256_loadu_ps(p); }
inline void store(float* p, Vec v) { _mm256_storeu_ps(p, v); }
inline void store_streaming(float* p, Vec v) { _mm256_stream_ps(p, v); }
inline void store_fence() { _mm_sfence(); }
inline Vec broadcast(float s) { return _mm256_set1_ps(s); }
inline Vec zero() { return _mm256_setzero_ps(); }
inline Vec fmadd(Vec a, Vec b, Vec c) { return _mm256_fmadd_ps(a, b, c); }
inline __m256i first(index_t n) {
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(static_cast<int>(n)),
                              _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}
inline Vec load_partial(const float* p, index_t n) { return _mm256_maskload_ps(p, first(n)); }
inline void store_partial(float* p, Vec v, index_t n) { _mm256_maskstore_ps(p, first(n), v); }
#include "microkernel.inc"
}  // namespace avx2
#pragma GCC pop_options

#endif  // x86

// Any CPU: 4-lane vectors of the compiler's generic vector extension (SSE2 on
// every x86-64, NEON on ARM). No fused multiply-add: multiply, then add.
namespace baseline {
typedef float Vec __attribute__((vector_size(16)));
constexpr int kLanes = 4, kMR = 6, kNV = 2;
inline Vec load(const float* p) {
    Vec v;
    std::memcpy(&v, p, sizeof v);
    return v;
}
inline void store(float* p, Vec v) { std::memcpy(p, &v, sizeof v); }
inline void store_streaming(float* p, Vec v) { store(p, v); }  // portable: a plain store
inline void store_fence() {}
inline Vec zero() { return Vec{0.f, 0.f, 0.f, 0.f}; }
inline Vec broadcast(float s) { return Vec{s, s, s, s}; }
inline Vec fmadd(Vec a, Vec b, Vec c) { return a * b + c; }
inline Vec load_partial(const float* p, index_t n) {
    Vec v = zero();
    std::memcpy(&v, p, n * sizeof(float));
    return v;
}
inline void store_partial(float* p, Vec v, index_t n) { std::memcpy(p, &v, n * sizeof(float)); }
#include "microkernel.inc"
}  // namespace baseline

namespace {

Microkernels g_kernels{};  // set once by init_microkernels() with the GIL held

bool cpu_runs(const std::string& isa) {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    if (isa == "avx512") return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512dq");
    if (isa == "avx2") return __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma");
#endif
    return isa == "baseline";
}

Microkernels table_for(const std::string& isa) {
#if defined(__x86_64__) || defined(__i386__)
    if (isa == "avx512") return avx512::table("avx512");
    if (isa == "avx2") return avx2::table("avx2");
#endif
    return baseline::table("baseline");
}

}  // namespace

void init_microkernels() {
    const char* env = std::getenv("FASTCONV_ISA");
    std::string isa = env ? env : "";
    if (isa.empty()) {
        isa = cpu_runs("avx512") ? "avx512" : cpu_runs("avx2") ? "avx2" : "baseline";
    } else {
        require(isa == "avx512" || isa == "avx2" || isa == "baseline", "FASTCONV_ISA=", isa,
                " is not one of avx512, avx2, baseline");
        require(cpu_runs(isa), "FASTCONV_ISA=", isa, ": this CPU cannot run it");
    }
    g_kernels = table_for(isa);
}

const Microkernels& microkernels() { return g_kernels; }

}  // namespace fc
