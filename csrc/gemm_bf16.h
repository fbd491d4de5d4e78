/* A bfloat16 GEMM with float32 accumulation, on the CPU's bfloat16
 * instructions where it has them, and the choice between its variants.
 *
 * What: C[M x N] (= or +=) bias[i] + A[M x K] B[K x N], where A and B are
 * float32 matrices read with any row / column strides (so A^T and B^T cost
 * nothing) and rounded to bfloat16 (nearest, ties to even, NaN kept) while
 * they are packed; the products of two bfloat16 numbers are exact in float32
 * and summed in float32.
 * Why: autocast's products (conv2d, linear, matmul) take bfloat16 inputs;
 * on CPUs with AVX512-BF16 (VDPBF16PS) or AMX-BF16 (TDPBF16PS) they run at
 * two (AVX-512) to many (AMX) times the float32 rate.
 * Variants (gemm_bf16.cpp), picked once at import (FASTCONV_BF16_ISA):
 *   amx           AMX tiles (16 rows x 32 bfloat16), TDPBF16PS
 *   avx512bf16    AVX-512 registers, VDPBF16PS
 *   emulated      the VDPBF16PS kernels with the instruction done in portable
 *                 C++, bit for bit as the SDM defines it (DAZ, FTZ, RNE)
 *   emulated_amx  the AMX kernels with the tiles and TDPBF16PS in software
 *   none          no bfloat16 kernels: autocast rounds and runs float32 ones
 * The emulated variants share all packing and blocking code with the real
 * ones, so tests on any machine cover everything but the instructions.
 * Layout: row-major; packed A is [M][K/2] pairs of bfloat16, packed B is
 * panels of [K/2][NR] pairs (the "VNNI" layout both instructions read).
 */
#pragma once

#include <cstddef>
#include <cstdint>
#include <new>
#include <string>
#include <vector>

#include "common.h"

namespace fc {

// Packed operands, 64-byte aligned: every 64-byte row of an AMX tile is then one
// cache line (at malloc's 16-byte alignment each row spans two, and the tile loads
// ran at a third of the speed: benchmarks/bf16_peak.cpp).
template <class T>
struct CacheLineAllocator {
    using value_type = T;
    CacheLineAllocator() = default;
    template <class U>
    CacheLineAllocator(const CacheLineAllocator<U>&) {}
    T* allocate(size_t n) { return static_cast<T*>(::operator new(n * sizeof(T), std::align_val_t(64))); }
    void deallocate(T* p, size_t) { ::operator delete(p, std::align_val_t(64)); }
    bool operator==(const CacheLineAllocator&) const { return true; }
    bool operator!=(const CacheLineAllocator&) const { return false; }
};
using PackedBuffer = std::vector<std::uint32_t, CacheLineAllocator<std::uint32_t>>;

// A float32 matrix read in place: element (i, k) at data[i * row + k * col].
struct StridedMatrix {
    const float* data;
    index_t row, col;
};

// An operand of the general product: a float32 matrix read in place, or a
// function that produces rows of it (the convolutions' columns and gradients,
// images side by side). For B, "rows" are B's columns (rows of B^T).
struct Operand {
    StridedMatrix m{};
    // Rows [i0, i0 + ni) over the whole depth K, as a matrix whose row 0 is
    // row i0: a view of the data where one exists, else written into scratch
    // (ni * K floats). Called from OpenMP threads: it must be thread-safe.
    StridedMatrix (*rows)(const void* ctx, index_t i0, index_t ni, index_t K, float* scratch) = nullptr;
    const void* ctx = nullptr;
    // A only: already packed by gemm_bf16_pack_a (same M, K and variant), so a
    // product repeated over chunks of images packs its weights once.
    const std::uint32_t* packed = nullptr;
    // Or a producer that writes its rows straight into the packed layout,
    // already bfloat16 (the convolutions, from a rounded copy of their input):
    // rows [i0, i0 + ni) over pairs [0, KP), pair kp of row i0 + r at
    //   out + (kp / chunk) * chunk_stride + (r / group) * group * chunk
    //       + (rows_adjacent ? (kp % chunk) * group + r % group : (r % group) * chunk + kp % chunk)
    // (zero past the matrix). B's panels have rows adjacent, A's pairs.
    // Called from OpenMP threads: it must be thread-safe.
    void (*pack)(const void* ctx, index_t i0, index_t ni, index_t KP, index_t chunk, index_t group,
                 index_t chunk_stride, std::uint32_t* out, bool rows_adjacent) = nullptr;
};

// Where C(i, j) lives: c + i * ldc + j, or with groups of columns (images side
// by side in the product, each in its own block of the output):
// c + i * ldc + (j / group) * group_stride + j % group.
struct CTarget {
    float* c;
    index_t ldc;
    index_t group = 0, group_stride = 0;
    bool round = false;  // each result rounded to bfloat16 as it is finished (autocast's outputs)
    // C is part of an output of kStreamBytes or more that nothing reads before the product
    // returns: written past the caches (streaming stores) where the product does not add to it.
    bool stream = false;
    // then max(result, 0), as relu_forward (NaN and -0 kept): a convolution's ReLU applied as
    // its output is written instead of in a pass of its own
    bool relu = false;
    float* at(index_t i, index_t j) const {
        return c + i * ldc + (group ? (j / group) * group_stride + j % group : j);
    }
};

// C(i, j) = (accumulate ? C(i, j) : 0) + (bias ? bias[i] : 0) + sum_k A(i, k) B(k, j)
// on the variant in use, for any operands and target (above). OpenMP inside:
// call it outside any parallel region.
void gemm_bf16_general(index_t M, index_t N, index_t K, const Operand& a, const Operand& bt,
                       const CTarget& c, bool accumulate, const float* bias);

// Packs operand a (M x K) as gemm_bf16_general would, into out, for Operand::packed.
void gemm_bf16_pack_a(index_t M, index_t K, const Operand& a, PackedBuffer& out);

// C[i][j] = (accumulate ? C[i][j] : 0) + (bias ? bias[i] : 0) + sum_k A(i, k) B(k, j)
// for i < M, j < N, C[i][j] at c[i * ldc + j], on the variant in use (not
// "none"). A and B are fully packed before C is written, so C may alias them.
// OpenMP inside: call it outside any parallel region.
void gemm_bf16(index_t M, index_t N, index_t K, StridedMatrix a, StridedMatrix b, float* c,
               index_t ldc, bool accumulate, const float* bias);

// The same on a variant named explicitly (the self-test, the tests).
void gemm_bf16_on(const std::string& variant, index_t M, index_t N, index_t K, StridedMatrix a,
                  StridedMatrix b, float* c, index_t ldc, bool accumulate, const float* bias);

// The variant in use. A real one (amx, avx512bf16) is checked against its
// emulation the first time this is asked (with the GIL held); if they
// disagree, a RuntimeWarning says so and the answer becomes "none".
std::string bf16_kernels();

// The first-use check of a real variant, run on any two: "" if variant agrees
// with reference within float32 summation-order tolerance, else where not (tests).
std::string bf16_self_test(const std::string& variant, const std::string& reference);

// Picks the variant at import: FASTCONV_BF16_ISA, or amx / avx512bf16 when
// the CPU (and, for AMX, the OS) allows them, else none. An unknown name, or
// one this CPU cannot run, throws (the import fails).
void init_bf16_kernels();

// Switches the variant at run time (tests): the same names and checks.
void set_bf16_kernels(const std::string& name);

// CPUID bits (false off x86).
bool cpu_has_avx512bf16();
bool cpu_has_amx_bf16();
bool cpu_has_amx_tile();

}  // namespace fc
