/* Shared helpers for the CPU kernels: argument checking, array allocation,
 * the per-thread scratch buffers, the machine and the BLAS entry points
 * (each section names the file that implements it).
 *
 * Every kernel takes NumPy arrays, checks them here (dtype float32,
 * C-contiguous, aligned, the expected rank), allocates its outputs with the
 * GIL held, then releases the GIL for the arithmetic. A failed check throws
 * std::invalid_argument, which pybind11 turns into ValueError (TypeError for a
 * wrong dtype), so no kernel ever reads or writes outside the arrays it got.
 * The kernels check only what guards memory (dtypes, contiguity, shapes that
 * agree with each other and with the sizes the loops derive from them,
 * values that index or divide); what an argument means for the user (label
 * smoothing in [0, 1], PyTorch's pooling padding rule, ...) is checked once,
 * at the public op in fastconv/ops (validate.py and the op functions).
 */
#pragma once

#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <atomic>
#include <optional>
#include <cstdint>
#include <cstdlib>
#include <memory>
#include <sstream>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#ifdef _OPENMP
#include <omp.h>
#endif
#if defined(__SSE2__)
#include <emmintrin.h>
#endif

namespace py = pybind11;

namespace fc {

using index_t = std::int64_t;
using Pair = std::pair<index_t, index_t>;  // (h, w) as in the Python interface

// Outputs at least this large are written with streaming stores (convolutions, ReLU): they
// do not fit in cache anyway, and a plain store would first read each line in. Smaller
// ones stay cached for the next layer.
constexpr index_t kStreamBytes = index_t(4) << 20;

// y[i] = f(i) for i < n, vectorised (`omp simd`: f must be free of side effects; a select
// in f otherwise compiles to branches); with `stream`, past the caches (SSE2 streaming
// stores for the whole 16-byte blocks, plain ones for the ends). A thread that streamed
// calls stream_fence() before its stores may be read by another thread.
template <class F>
inline void write_run(float* __restrict y, index_t n, bool stream, F f) {
#if defined(__SSE2__)
    if (stream) {
        index_t i = 0;
        for (; i < n && reinterpret_cast<std::uintptr_t>(y + i) % 16; ++i) y[i] = f(i);
        for (; i + 16 <= n; i += 16) {
            alignas(16) float v[16];
#pragma omp simd
            for (int j = 0; j < 16; ++j) v[j] = f(i + j);
            for (int j = 0; j < 16; j += 4) _mm_stream_ps(y + i + j, _mm_load_ps(v + j));
        }
        for (; i < n; ++i) y[i] = f(i);
        return;
    }
#endif
#pragma omp simd
    for (index_t i = 0; i < n; ++i) y[i] = f(i);
}

inline void stream_fence() {
#if defined(__SSE2__)
    _mm_sfence();
#endif
}

// Arrays of at most this many elements are worked on by one thread: waking the team costs
// more than the work.
constexpr index_t kParallelMin = index_t(1) << 15;

// Runs f(begin, count) over [0, n) in one contiguous range per thread (one thread for
// n <= serial_up_to).
template <typename F>
inline void split(index_t n, F f, index_t serial_up_to = kParallelMin) {
#pragma omp parallel if (n > serial_up_to)
    {
#ifdef _OPENMP
        const index_t T = omp_get_num_threads(), id = omp_get_thread_num();
#else
        const index_t T = 1, id = 0;
#endif
        const index_t begin = n * id / T, end = n * (id + 1) / T;
        f(begin, end - begin);
    }
}

// ---------------------------------------------------------------- errors

template <typename... Args>
[[noreturn]] void fail(const Args&... args) {
    std::ostringstream os;
    (os << ... << args);
    throw std::invalid_argument(os.str());
}

// require(cond, "message pieces", ...): throw ValueError when cond is false.
template <typename... Args>
inline void require(bool ok, const Args&... args) {
    if (!ok) fail(args...);
}

inline std::string shape_str(const py::array& a) {
    std::ostringstream os;
    os << "(";
    for (py::ssize_t i = 0; i < a.ndim(); ++i) os << (i ? ", " : "") << a.shape(i);
    os << (a.ndim() == 1 ? ",)" : ")");
    return os.str();
}

inline std::string shape_str(const std::vector<index_t>& s) {
    std::ostringstream os;
    os << "(";
    for (size_t i = 0; i < s.size(); ++i) os << (i ? ", " : "") << s[i];
    os << (s.size() == 1 ? ",)" : ")");
    return os.str();
}

// ---------------------------------------------------------------- input checks

// The array must already be C-contiguous, aligned float32: the kernels never
// make silent copies, so a wrong input shows up as an error, not a slowdown.
inline const float* float_data(const py::array& a, const char* fn, const char* name) {
    if (!py::isinstance<py::array_t<float>>(a))
        throw py::type_error(std::string(fn) + ": " + name + " must be a float32 array, got dtype " +
                             std::string(py::str(a.dtype())));
    require(a.flags() & py::array::c_style, fn, ": ", name, " must be C-contiguous");
    require(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(float) == 0, fn, ": ", name,
            " must be aligned");
    return static_cast<const float*>(a.data());
}

inline void require_ndim(const py::array& a, int ndim, const char* fn, const char* name) {
    require(a.ndim() == ndim, fn, ": ", name, " must be ", ndim, "-D, got shape ", shape_str(a));
}

inline void require_shape(const py::array& a, const std::vector<index_t>& shape, const char* fn,
                          const char* name) {
    bool ok = a.ndim() == static_cast<py::ssize_t>(shape.size());
    for (size_t i = 0; ok && i < shape.size(); ++i) ok = a.shape(i) == shape[i];
    require(ok, fn, ": ", name, " must have shape ", shape_str(shape), ", got ", shape_str(a));
}

// Integer class targets / indices: any integer dtype is rejected unless it is
// exactly the one asked for (int64 targets, int32 pooling indices).
template <typename T>
inline const T* int_data(const py::array& a, const char* fn, const char* name, const char* dtype) {
    if (!py::isinstance<py::array_t<T>>(a))
        throw py::type_error(std::string(fn) + ": " + name + " must be an " + dtype +
                             " array, got dtype " + std::string(py::str(a.dtype())));
    require(a.flags() & py::array::c_style, fn, ": ", name, " must be C-contiguous");
    require(reinterpret_cast<std::uintptr_t>(a.data()) % alignof(T) == 0, fn, ": ", name,
            " must be aligned");
    return static_cast<const T*>(a.data());
}

inline void require_pair(const Pair& p, index_t min_value, const char* fn, const char* name) {
    require(p.first >= min_value && p.second >= min_value, fn, ": ", name, " must be >= ",
            min_value, ", got (", p.first, ", ", p.second, ")");
}

// ---------------------------------------------------------------- outputs (alloc.cpp)

// A new C-contiguous float32 array for a kernel's output. Large ones (>= 1 MB)
// reuse memory freed by earlier outputs (alloc.cpp); contents are undefined,
// so every kernel writes each element of its outputs.
py::array_t<float> new_float(const std::vector<index_t>& shape);
py::array_t<std::int32_t> new_int32(const std::vector<index_t>& shape);  // as new_float

inline std::vector<index_t> shape_of(const py::array& a) {
    return std::vector<index_t>(a.shape(), a.shape() + a.ndim());
}

// A per-channel parameter (C,) or, when absent, nullptr.
inline const float* channel_vec(const std::optional<py::array>& a, index_t C, const char* fn,
                                const char* name) {
    if (!a) return nullptr;
    const float* p = float_data(*a, fn, name);
    require_shape(*a, {C}, fn, name);
    return p;
}

inline float* mut(py::array_t<float>& a) { return a.mutable_data(); }

// ---------------------------------------------------------------- reductions

// Sum of n floats. 16 independent float partial sums (short: n/16 terms each)
// let the compiler vectorise the loop; they are combined in double.
inline double sum_floats(const float* __restrict x, index_t n) {
    float acc[16] = {};
    index_t i = 0;
    for (; i + 16 <= n; i += 16)
        for (int k = 0; k < 16; ++k) acc[k] += x[i + k];
    double s = 0;
    for (int k = 0; k < 16; ++k) s += acc[k];
    for (; i < n; ++i) s += x[i];
    return s;
}

// ---------------------------------------------------------------- scratch memory (alloc.cpp)

// A per-thread scratch buffer that only grows. Convolution needs tens of MB of
// column buffer per call; allocating it fresh every call would page-fault the
// whole buffer in again each time, which costs as much as packing the columns.
// thread_local keeps concurrent callers (the GIL is released) apart.
// Bytes held by the scratch buffers of all threads (cache_info reports them).
std::atomic<size_t>& scratch_bytes();

class Scratch {
  public:
    float* get(size_t count) {
        if (count > size_) {
            release();
            buf_.reset(static_cast<float*>(std::aligned_alloc(64, round_up(count * sizeof(float)))));
            if (!buf_) throw std::bad_alloc();
            size_ = count;
            scratch_bytes() += round_up(size_ * sizeof(float));
        }
        return buf_.get();
    }

    void release() {
        if (buf_) scratch_bytes() -= round_up(size_ * sizeof(float));
        buf_.reset();
        size_ = 0;
    }

    ~Scratch() { release(); }

  private:
    static size_t round_up(size_t bytes) { return (bytes + 63) / 64 * 64; }
    struct Free {
        void operator()(float* p) const { std::free(p); }
    };
    std::unique_ptr<float, Free> buf_;
    size_t size_ = 0;
};

// The scratch buffers of a thread, by what they hold. Names that share a
// number belong to kernels that never hold them at the same time (the number
// of buffers, and so the memory kept, stays at kScratchSlots); names with
// different numbers are held together, e.g. a chunk of columns (0) while
// col2im fills its planes (2), or a thread's panel (5) next to its tile (6).
enum class Slot : int {
    columns = 0,             // conv.cpp: a chunk of column rows (dcol, or OpenBLAS's dW columns)
    wino_input = 0,          // winograd.cpp: the transformed input V, then dV
    packed_a = 1,            // conv_gemm.cpp: A packed in blocks of MR rows (W^T)
    gathered_dy = 1,         // conv.cpp: dy reordered for one GEMM over a chunk of images
    wino_output = 1,         // winograd.cpp: the transformed output M, then M'
    planes = 2,              // col2im's prepared planes; each thread's plane in input_grad_columns
    dw_partials = 2,         // conv.cpp: per-image weight gradients of a 1x1 layer
    wino_padded = 2,         // winograd.cpp: zero-padded x, then padded dx
    wino_weights = 3,        // winograd.cpp: the transformed weights U
    wino_weight_grad = 4,    // winograd.cpp: dU
    panel = 5,               // conv_gemm.cpp: each thread's packed column (or dy^T) panel
    tile = 6,                // conv_gemm.cpp: each thread's edge tile or band of column rows
    prepared_x = 7,          // conv_columns.cpp: the zero-padded, phase-split copy of x
};
constexpr int kScratchSlots = 8;
Scratch& scratch(Slot slot);

// ---------------------------------------------------------------- machine (runtime.cpp)

// The largest OpenMP team since import: a team this size includes every pool
// thread that may hold scratch buffers (empty_cache).
int largest_team();

// Whether the CPU has the AVX-512 subset (F, BW, DQ, VL) that OpenBLAS's
// SkylakeX kernels use.
bool cpu_has_avx512();

// n, at most what one OpenMP team may have (OMP_THREAD_LIMIT); 1 without OpenMP.
int openmp_thread_cap(int n);

// ---------------------------------------------------------------- BLAS (blas.cpp)

// Row-major C = alpha * op(A) * op(B) + beta * C through the loaded OpenBLAS.
// op(A) is M x K, op(B) is K x N. Must not be called inside an OpenMP region.
void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
           index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc);

// `batch` independent products C_i = op(A_i) op(B_i) (+ beta C_i), with
// X_i = X + i * stride_x. Uses OpenBLAS's strided batch call when the library
// has it (it spreads the small products over its threads), a loop otherwise.
void sgemm_batch_strided(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                         const float* A, index_t lda, index_t stride_a, const float* B, index_t ldb,
                         index_t stride_b, float beta, float* C, index_t ldc, index_t stride_c,
                         index_t batch);

bool blas_loaded();
int blas_threads();  // OpenBLAS's thread count (1 before load_blas)
void blas_set_threads(int n);  // no-op before load_blas; set_num_threads calls it

}  // namespace fc
