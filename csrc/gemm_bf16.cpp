/* The variants of the bfloat16 GEMM (gemm_bf16.h), the choice between them,
 * and its Python entry point.
 *
 * Each variant is a namespace that defines its instructions (or their
 * emulation), then includes the micro-kernel written once for its family
 * (gemm_bf16_vnni.inc: VDPBF16PS on registers; gemm_bf16_amx.inc: AMX tiles)
 * and the blocked driver written once for all (gemm_bf16.inc). The real
 * variants are compiled for their instructions with `#pragma GCC target`
 * (the package itself is built for plain x86-64) and run only where CPUID
 * says the CPU has them.
 * Emulation, bit for bit as the SDM's pseudocode (and the self-test's
 * reference, tests/test_bf16_gemm.py):
 *   VDPBF16PS, per lane j:  acc = acc + a[2j+1]*b[2j+1], then acc = acc + a[2j]*b[2j]
 *   TDPBF16PS, per (m, n), over the pairs k of the tile in order:
 *                           acc = acc + a[m][2k]*b[k][2n], then + a[m][2k+1]*b[k][2n+1]
 * Every multiply and add is a float32 operation rounded to nearest even,
 * with DAZ (denormal inputs, the accumulator included, read as zero, sign
 * kept) and FTZ (a denormal result becomes zero). The product of two bfloat16
 * numbers is exact unless it over- or underflows. The emulation is compiled
 * without contracting a*b + c into a fused multiply-add, which would skip the
 * product's rounding.
 * Newer editions of the SDM describe TDPBF16PS with separate even and odd
 * partial sums inside one instruction, and real hardware may differ from
 * either in the last bits of a sum: the self-test compares a real variant
 * with its emulation within float32 accumulation-order tolerance, not bits.
 * Threads: OpenMP inside the driver. The choice is global, made at import
 * (or by _set_bf16_isa, for tests) with the GIL held.
 */
#include "gemm_bf16.h"

#if defined(__x86_64__) || defined(__i386__)
#include <cpuid.h>
#include <immintrin.h>
#endif
#if defined(__linux__)
#include <sys/syscall.h>
#include <unistd.h>
#endif

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <memory>
#include <vector>

#include "kernels.h"

namespace fc {

// A finished sum of C as the target wants it stored: rounded, then the ReLU.
inline float finish_value(float v, bool round, bool relu) {
    v = round ? bf16_round(v) : v;
    return relu && v < 0.f ? 0.f : v;
}

// A row of n finished sums of C into dst (finish_value); with `stream`, past the caches (what
// the real variants do with it: stores_avx512), and finish_fence() orders such stores before
// the product returns.
inline void finish_row(float* dst, const float* src, index_t n, bool round, bool relu, bool /*stream*/) {
    for (index_t j = 0; j < n; ++j) dst[j] = finish_value(src[j], round, relu);
}
inline void finish_fence() {}

// ---------------------------------------------------------------- the instructions in software

#pragma GCC push_options
#pragma GCC optimize("fp-contract=off")
namespace emu {

inline float from_bf16(std::uint32_t h) {
    const std::uint32_t b = (h & 0xFFFFu) << 16;
    float f;
    std::memcpy(&f, &b, sizeof f);
    return f;
}

// DAZ on an input, FTZ on a result: a denormal becomes a zero of its sign.
inline float flush(float x) {
    std::uint32_t b;
    std::memcpy(&b, &x, sizeof b);
    if ((b & 0x7F800000u) == 0) b &= 0x80000000u;
    std::memcpy(&x, &b, sizeof x);
    return x;
}

// acc + x*y for bfloat16 x, y: the product and the sum each rounded and flushed.
inline float madd(float acc, std::uint32_t x, std::uint32_t y) {
    const float p = flush(flush(from_bf16(x)) * flush(from_bf16(y)));
    return flush(acc + p);
}

// One lane of VDPBF16PS: the odd element of the pair first.
inline float vdpbf16(float acc, std::uint32_t a, std::uint32_t b) {
    acc = madd(flush(acc), a >> 16, b >> 16);
    return madd(acc, a, b);
}

// One (m, n, k) step of TDPBF16PS: the even element first.
inline float tdpbf16(float acc, std::uint32_t a, std::uint32_t b) {
    acc = madd(flush(acc), a, b);
    return madd(acc, a >> 16, b >> 16);
}

}  // namespace emu

// ---------------------------------------------------------------- emulated (VDPBF16PS in software)

namespace emulated {
constexpr int kLanes = 16;
struct Acc {
    float v[kLanes];
};
struct Pairs {
    std::uint32_t v[kLanes];
};
inline Acc zero() { return Acc{}; }
inline Acc load(const float* p) {
    Acc a;
    std::memcpy(a.v, p, sizeof a.v);
    return a;
}
inline void store(float* p, const Acc& a) { std::memcpy(p, a.v, sizeof a.v); }
inline Pairs load_pairs(const std::uint32_t* p) {
    Pairs r;
    std::memcpy(r.v, p, sizeof r.v);
    return r;
}
inline Pairs broadcast_pair(std::uint32_t u) {
    Pairs r;
    for (int l = 0; l < kLanes; ++l) r.v[l] = u;
    return r;
}
inline Acc dot(Acc acc, const Pairs& a, const Pairs& b) {
    for (int l = 0; l < kLanes; ++l) acc.v[l] = emu::vdpbf16(acc.v[l], a.v[l], b.v[l]);
    return acc;
}
#include "gemm_bf16_vnni.inc"
#include "gemm_bf16.inc"
}  // namespace emulated

// ---------------------------------------------------------------- emulated_amx (tiles in software)

// The tile configuration LDTILECFG reads (64 bytes, palette 1).
struct alignas(64) TileConfig {
    std::uint8_t palette_id;
    std::uint8_t start_row;
    std::uint8_t reserved[14];
    std::uint16_t colsb[16];
    std::uint8_t rows[16];
};

inline TileConfig gemm_tile_config() {
    TileConfig cfg{};
    cfg.palette_id = 1;
    for (int t = 0; t < 8; ++t) {
        cfg.rows[t] = 16;
        cfg.colsb[t] = 64;
    }
    return cfg;
}

namespace emulated_amx {

// Eight tiles of at most 16 rows x 64 bytes, per thread as the real ones.
struct Tiles {
    TileConfig cfg{};
    alignas(64) unsigned char data[8][16 * 64] = {};
};
thread_local Tiles tiles;

inline void configure() {
    tiles.cfg = gemm_tile_config();
    std::memset(tiles.data, 0, sizeof tiles.data);  // LDTILECFG zeroes the tiles
}
inline void release() {
    tiles.cfg = TileConfig{};
    std::memset(tiles.data, 0, sizeof tiles.data);
}
inline void tile_zero(int t) { std::memset(tiles.data[t], 0, sizeof tiles.data[t]); }
inline void tile_load(int t, const void* p, index_t stride) {
    for (int r = 0; r < tiles.cfg.rows[t]; ++r)
        std::memcpy(tiles.data[t] + r * 64, static_cast<const char*>(p) + r * stride,
                    tiles.cfg.colsb[t]);
}
inline void tile_store(int t, void* p, index_t stride) {
    for (int r = 0; r < tiles.cfg.rows[t]; ++r)
        std::memcpy(static_cast<char*>(p) + r * stride, tiles.data[t] + r * 64,
                    tiles.cfg.colsb[t]);
}
// TDPBF16PS c, a, b: loops m, k, n as the SDM writes them.
inline void tile_dot(int c, int a, int b) {
    const int M = tiles.cfg.rows[c], N = tiles.cfg.colsb[c] / 4, K = tiles.cfg.colsb[a] / 4;
    for (int m = 0; m < M; ++m)
        for (int k = 0; k < K; ++k)
            for (int n = 0; n < N; ++n) {
                float acc;
                std::uint32_t x, y;
                std::memcpy(&acc, tiles.data[c] + m * 64 + n * 4, 4);
                std::memcpy(&x, tiles.data[a] + m * 64 + k * 4, 4);
                std::memcpy(&y, tiles.data[b] + k * 64 + n * 4, 4);
                acc = emu::tdpbf16(acc, x, y);
                std::memcpy(tiles.data[c] + m * 64 + n * 4, &acc, 4);
            }
}

#define TILE_CONFIG() configure()
#define TILE_RELEASE() release()
#define TILE_ZERO(t) tile_zero(t)
#define TILE_LOAD(t, p, s) tile_load(t, p, s)
#define TILE_STORE(t, p, s) tile_store(t, p, s)
#define TILE_DOT(c, a, b) tile_dot(c, a, b)
#include "gemm_bf16_amx.inc"
#include "gemm_bf16.inc"
#undef TILE_CONFIG
#undef TILE_RELEASE
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_STORE
#undef TILE_DOT
}  // namespace emulated_amx
#pragma GCC pop_options

// ---------------------------------------------------------------- the real instructions

#if defined(__x86_64__) && defined(__GNUC__) && !defined(__clang__)
#define FC_HAVE_BF16_ISA 1

// finish_row and finish_fence of the real variants (using-declarations in each): n a
// multiple of 16 and src 64-byte aligned, rounded as bf16_round_bits does it. Streaming
// stores (a 64-byte aligned dst) write whole lines without reading them first: C's lines
// are written once by the product and read by the next layer.
#pragma GCC push_options
#pragma GCC target("avx512f")
namespace stores_avx512 {
inline void finish_row(float* dst, const float* src, index_t n, bool round, bool relu, bool stream) {
    const __m512i half = _mm512_set1_epi32(0x7FFF), one = _mm512_set1_epi32(1);
    const __m512i high = _mm512_set1_epi32(static_cast<int>(0xFFFF0000u));
    const __m512i magnitude = _mm512_set1_epi32(0x7FFFFFFF), inf = _mm512_set1_epi32(0x7F800000);
    const __m512i qnan = _mm512_set1_epi32(0x7FC00000), bit16 = _mm512_set1_epi32(0x10000);
    stream = stream && reinterpret_cast<std::uintptr_t>(dst) % 64 == 0;
    for (index_t j = 0; j < n; j += 16) {
        __m512i v = _mm512_load_si512(src + j);
        if (round) {
            const __mmask16 odd = _mm512_test_epi32_mask(v, bit16);  // ties to even
            const __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(v, magnitude), inf);
            __m512i r = _mm512_add_epi32(v, half);
            r = _mm512_mask_add_epi32(r, odd, r, one);
            v = _mm512_and_si512(r, high);
            v = _mm512_mask_mov_epi32(v, nan, qnan);
        }
        if (relu) {
            const __mmask16 negative = _mm512_cmp_ps_mask(_mm512_castsi512_ps(v), _mm512_setzero_ps(), _CMP_LT_OQ);
            v = _mm512_mask_mov_epi32(v, negative, _mm512_setzero_si512());
        }
        if (stream)
            _mm512_stream_si512(reinterpret_cast<__m512i*>(dst + j), v);
        else
            _mm512_storeu_si512(dst + j, v);
    }
}
inline void finish_fence() { _mm_sfence(); }
}  // namespace stores_avx512
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512bf16")
namespace avx512bf16 {
using stores_avx512::finish_fence;
using stores_avx512::finish_row;
constexpr int kLanes = 16;
using Acc = __m512;
using Pairs = __m512bh;
inline Acc zero() { return _mm512_setzero_ps(); }
inline Acc load(const float* p) { return _mm512_loadu_ps(p); }
inline void store(float* p, Acc v) { _mm512_storeu_ps(p, v); }
inline Pairs load_pairs(const std::uint32_t* p) { return (Pairs)_mm512_loadu_si512(p); }
inline Pairs broadcast_pair(std::uint32_t u) { return (Pairs)_mm512_set1_epi32(static_cast<int>(u)); }
inline Acc dot(Acc acc, Pairs a, Pairs b) { return _mm512_dpbf16_ps(acc, a, b); }
#include "gemm_bf16_vnni.inc"
#include "gemm_bf16.inc"
}  // namespace avx512bf16
#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw")
namespace amx {
using stores_avx512::finish_fence;
using stores_avx512::finish_row;
inline void configure() {
    const TileConfig cfg = gemm_tile_config();
    asm volatile("" ::"m"(cfg));  // the configuration is in memory before LDTILECFG reads it
    _tile_loadconfig(&cfg);
}
#define TILE_CONFIG() configure()
#define TILE_RELEASE() _tile_release()
#define TILE_ZERO(t) _tile_zero(t)
#define TILE_LOAD(t, p, s) _tile_loadd(t, p, s)
#define TILE_STORE(t, p, s) _tile_stored(t, p, s)
#define TILE_DOT(c, a, b) _tile_dpbf16ps(c, a, b)
#include "gemm_bf16_amx.inc"
#include "gemm_bf16.inc"
#undef TILE_CONFIG
#undef TILE_RELEASE
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_STORE
#undef TILE_DOT
}  // namespace amx
#pragma GCC pop_options
#endif

// ---------------------------------------------------------------- the choice

namespace {


using GeneralFn = void (*)(index_t, index_t, index_t, const Operand&, const Operand&,
                          const CTarget&, bool, const float*);

using PackFn = void (*)(index_t, index_t, const Operand&, PackedBuffer&);

struct Variant {
    const char* name;
    GeneralFn general;       // nullptr: none, or not compiled here
    PackFn pack_a;
    const char* emulation;   // the variant a real one is checked against
};

const Variant kVariants[] = {
#ifdef FC_HAVE_BF16_ISA
    {"amx", &amx::gemm_general, &amx::pack_a, "emulated_amx"},
    {"avx512bf16", &avx512bf16::gemm_general, &avx512bf16::pack_a, "emulated"},
#else
    {"amx", nullptr, nullptr, "emulated_amx"},
    {"avx512bf16", nullptr, nullptr, "emulated"},
#endif
    {"emulated", &emulated::gemm_general, &emulated::pack_a, nullptr},
    {"emulated_amx", &emulated_amx::gemm_general, &emulated_amx::pack_a, nullptr},
    {"none", nullptr, nullptr, nullptr},
};

const Variant* g_variant = nullptr;  // set with the GIL held; read by the kernels
bool g_checked = false;              // a real variant passed (or failed) its self-test

const Variant* find_variant(const std::string& name) {
    for (const Variant& v : kVariants)
        if (name == v.name) return &v;
    return nullptr;
}

// The strided product C = A B on variant v: B read as the rows of B^T.
void run(const Variant& v, index_t M, index_t N, index_t K, StridedMatrix a, StridedMatrix b,
         float* c, index_t ldc, bool accumulate, const float* bias) {
    v.general(M, N, K, Operand{a}, Operand{StridedMatrix{b.data, b.col, b.row}}, CTarget{c, ldc},
              accumulate, bias);
}

// The variant in use, which must have kernels.
const Variant& in_use() {
    if (!g_variant || !g_variant->general)
        throw std::runtime_error("gemm_bf16: no bfloat16 kernels in use (bf16_kernels() is 'none')");
    return *g_variant;
}

#if defined(__x86_64__) || defined(__i386__)
bool cpuid_bit(unsigned leaf, unsigned sub, int reg, int bit) {
    unsigned r[4] = {0, 0, 0, 0};
    if (!__get_cpuid_count(leaf, sub, &r[0], &r[1], &r[2], &r[3])) return false;
    return (r[reg] >> bit) & 1u;
}
#endif

// Linux gives a process the AMX tile state only when asked (arch_prctl); a
// tile instruction without it kills the process. Asked once.
bool amx_permitted() {
#if defined(__linux__) && defined(__x86_64__)
    static const bool granted = [] {
        constexpr long kReqXcompPerm = 0x1023, kXfeatureXtiledata = 18;
        return syscall(SYS_arch_prctl, kReqXcompPerm, kXfeatureXtiledata) == 0;
    }();
    return granted;
#else
    return false;
#endif
}

bool cpu_runs(const std::string& name) {
    if (name == "none" || name == "emulated" || name == "emulated_amx") return true;
    const Variant* v = find_variant(name);
    if (!v || !v->general) return false;
#if defined(__x86_64__)
    __builtin_cpu_init();
    const bool avx512 = __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw");
    if (name == "avx512bf16") return avx512 && cpu_has_avx512bf16();
    if (name == "amx") return avx512 && cpu_has_amx_bf16() && cpu_has_amx_tile() && amx_permitted();
#endif
    return false;
}

void select(const std::string& name, const char* source) {
    const Variant* v = find_variant(name);
    require(v != nullptr, source, name,
            " is not one of amx, avx512bf16, emulated, emulated_amx, none");
    require(cpu_runs(name), source, name,
            ": this CPU (or this build) cannot run it; emulated, emulated_amx and none always run");
    g_variant = v;
    g_checked = false;
}

// A small odd-sized product on a real variant against its emulation: the
// same packing and blocking, so only the instructions can disagree, and then
// by no more than a different float32 summation order.
bool self_test(const Variant& v, const Variant* ref, std::string& why) {
    const index_t M = 37, N = 45, K = 83;
    std::vector<float> a(M * K), b(K * N), bias(M), got(M * N), want(M * N);
    std::uint32_t s = 0x9E3779B9u;
    auto draw = [&] {  // xorshift32: uniform in (-1, 1), never 0
        s ^= s << 13;
        s ^= s >> 17;
        s ^= s << 5;
        return (static_cast<float>(s >> 8) + 0.5f) / 8388608.f - 1.f;
    };
    for (float& x : a) x = draw();
    for (float& x : b) x = draw();
    for (float& x : bias) x = draw();
    // Pass 0: C = bias + A B. Pass 1: C += A B^T, with b read as an N x K matrix
    // in place (B(k, j) = b[j*K + k]). mag bounds the sum of |terms| of each result.
    std::vector<double> mag(M * N, 0.0);
    for (int pass = 0; pass < 2; ++pass) {
        const StridedMatrix A{a.data(), K, 1};
        const StridedMatrix B = pass == 0 ? StridedMatrix{b.data(), N, 1} : StridedMatrix{b.data(), 1, K};
        const float* bias_p = pass == 0 ? bias.data() : nullptr;
        run(v, M, N, K, A, B, got.data(), N, pass == 1, bias_p);
        run(*ref, M, N, K, A, B, want.data(), N, pass == 1, bias_p);
        for (index_t i = 0; i < M; ++i)
            for (index_t j = 0; j < N; ++j) {
                double& m = mag[i * N + j];
                if (pass == 0) m = std::fabs(bias[i]);
                for (index_t k = 0; k < K; ++k)
                    m += std::fabs(double(a[i * K + k]) * (pass == 0 ? b[k * N + j] : b[j * K + k]));
                const double d = std::fabs(double(got[i * N + j]) - want[i * N + j]);
                if (!(d <= 1e-5 * m)) {  // K = 83 float32 sums in any order stay far within
                    std::ostringstream os;
                    os << "C[" << i << "][" << j << "] = " << got[i * N + j] << " where "
                       << ref->name << " gives " << want[i * N + j];
                    why = os.str();
                    return false;
                }
            }
    }
    return true;
}

}  // namespace

#if defined(__x86_64__) || defined(__i386__)
bool cpu_has_avx512bf16() { return cpuid_bit(7, 1, 0, 5); }   // CPUID.(7,1):EAX[5]
bool cpu_has_amx_bf16() { return cpuid_bit(7, 0, 3, 22); }    // CPUID.(7,0):EDX[22]
bool cpu_has_amx_tile() { return cpuid_bit(7, 0, 3, 24); }    // CPUID.(7,0):EDX[24]
#else
bool cpu_has_avx512bf16() { return false; }
bool cpu_has_amx_bf16() { return false; }
bool cpu_has_amx_tile() { return false; }
#endif

void init_bf16_kernels() {
    const char* env = std::getenv("FASTCONV_BF16_ISA");
    if (env && *env) {
        select(env, "FASTCONV_BF16_ISA=");
        return;
    }
    // The emulations are far slower than the float32 kernels: never the default.
    select(cpu_runs("amx") ? "amx" : cpu_runs("avx512bf16") ? "avx512bf16" : "none", "");
}

void set_bf16_kernels(const std::string& name) { select(name, "_set_bf16_isa: "); }

std::string bf16_kernels() {
    if (!g_variant) return "none";
    if (g_variant->emulation && !g_checked) {
        g_checked = true;
        std::string why;
        if (!self_test(*g_variant, find_variant(g_variant->emulation), why)) {
            const std::string msg = std::string("fastconv: the ") + g_variant->name +
                                    " bfloat16 kernels disagree with their emulation (" + why +
                                    "); autocast falls back to the float32 kernels";
            g_variant = find_variant("none");
            if (PyErr_WarnEx(PyExc_RuntimeWarning, msg.c_str(), 1) < 0) throw py::error_already_set();
        }
    }
    return g_variant->name;
}

std::string bf16_self_test(const std::string& variant, const std::string& reference) {
    const Variant* v = find_variant(variant);
    const Variant* r = find_variant(reference);
    require(v && v->general && cpu_runs(variant) && r && r->general && cpu_runs(reference),
            "_bf16_self_test: ", variant, " or ", reference, " cannot run here");
    std::string why;
    return self_test(*v, r, why) ? std::string() : why;
}

void gemm_bf16(index_t M, index_t N, index_t K, StridedMatrix a, StridedMatrix b, float* c,
               index_t ldc, bool accumulate, const float* bias) {
    run(in_use(), M, N, K, a, b, c, ldc, accumulate, bias);
}

void gemm_bf16_general(index_t M, index_t N, index_t K, const Operand& a, const Operand& bt,
                       const CTarget& c, bool accumulate, const float* bias) {
    in_use().general(M, N, K, a, bt, c, accumulate, bias);
}

void gemm_bf16_pack_a(index_t M, index_t K, const Operand& a, PackedBuffer& out) {
    in_use().pack_a(M, K, a, out);
}

void gemm_bf16_on(const std::string& variant, index_t M, index_t N, index_t K, StridedMatrix a,
                  StridedMatrix b, float* c, index_t ldc, bool accumulate, const float* bias) {
    const Variant* v = find_variant(variant);
    require(v && v->general && cpu_runs(variant), "gemm_bf16: variant ", variant, " cannot run here");
    run(*v, M, N, K, a, b, c, ldc, accumulate, bias);
}

// ---------------------------------------------------------------- Python-facing

namespace {

// A 2-D float32 array read in place with its strides (in elements), transposed if asked.
StridedMatrix strided(const py::array& x, bool trans, const char* fn, const char* name) {
    if (!x.dtype().is(py::dtype::of<float>()))
        throw py::type_error(std::string(fn) + ": " + name + " must be a float32 array, got dtype " +
                             std::string(py::str(x.dtype())));
    require_ndim(x, 2, fn, name);
    const index_t s0 = x.strides(0), s1 = x.strides(1);
    require(s0 % index_t(sizeof(float)) == 0 && s1 % index_t(sizeof(float)) == 0 &&
                reinterpret_cast<std::uintptr_t>(x.data()) % alignof(float) == 0,
            fn, ": ", name, " must be float-aligned (strides ", s0, ", ", s1, " bytes)");
    const index_t r = s0 / index_t(sizeof(float)), c = s1 / index_t(sizeof(float));
    const float* d = static_cast<const float*>(x.data());
    return trans ? StridedMatrix{d, c, r} : StridedMatrix{d, r, c};
}

}  // namespace

py::array gemm_bf16_py(const py::array& a, const py::array& b, bool trans_a, bool trans_b,
                       const std::optional<py::array>& bias, const std::optional<py::array>& out) {
    const char* fn = "gemm_bf16";
    const StridedMatrix A = strided(a, trans_a, fn, "a"), B = strided(b, trans_b, fn, "b");
    const index_t M = trans_a ? a.shape(1) : a.shape(0), K = trans_a ? a.shape(0) : a.shape(1);
    const index_t Kb = trans_b ? b.shape(1) : b.shape(0), N = trans_b ? b.shape(0) : b.shape(1);
    require(K == Kb, fn, ": inner dimensions differ: op(a) is (", M, ", ", K, "), op(b) is (", Kb,
            ", ", N, ")");
    const float* bias_p = bias ? channel_vec(bias, M, fn, "bias") : nullptr;
    py::array c;
    if (out) {
        float_data(*out, fn, "out");
        require_shape(*out, {M, N}, fn, "out");
        require(out->writeable(), fn, ": out must be writeable");
        c = *out;
    } else {
        c = new_float({M, N});
    }
    require(bf16_kernels() != "none", fn,
            ": no bfloat16 kernels in use on this CPU (FASTCONV_BF16_ISA selects one)");
    float* C = static_cast<float*>(c.mutable_data());
    {
        py::gil_scoped_release nogil;
        gemm_bf16(M, N, K, A, B, C, N, bool(out), bias_p);
    }
    return c;
}

}  // namespace fc
