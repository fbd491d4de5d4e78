/* OpenBLAS, loaded at run time, and the GEMM entry points on it.
 *
 * What: C = op(A) op(B) for float32 matrices (sgemm, sgemm_batch_strided, and
 * the gemm() binding). load_blas() dlopen()s the OpenBLAS of the
 * `scipy-openblas32` wheel (symbols prefixed `scipy_`); blas_info() reports
 * what it picked.
 * Why a private OpenBLAS: NumPy's BLAS may not know this CPU and fall back to
 * AVX2 kernels; loading our own copy lets us choose the AVX-512 kernels
 * without touching NumPy's.
 * Layout: row-major (C order) 2-D matrices.
 * Threads: one pool for everything. OpenBLAS hands the parts of each product
 * to a callback (openblas_set_threads_callback_function, OpenBLAS >= 0.3.28),
 * which runs them on OpenMP's threads, the same ones the other kernels use.
 * With a pool of its own, OpenBLAS's idle workers and OpenMP's would take
 * turns spinning on the cores the other pool needs (BENCHMARKS.md, "Why the
 * CPU kernels are tuned as they are"). OpenMP is never active around a BLAS
 * call. Setting FASTCONV_BLAS_OWN_THREADS before the import gives OpenBLAS
 * its own pool back, to compare. The thread count itself is set in
 * runtime.cpp (set_num_threads), which passes it on through blas_set_threads.
 * Gradients: none here; gemm() returns a new array.
 */
#include <dlfcn.h>

#include <algorithm>
#include <climits>
#include <mutex>

#include "common.h"
#include "kernels.h"

namespace fc {

namespace {

// CBLAS enum values (cblas.h).
constexpr int kRowMajor = 101, kNoTrans = 111, kTrans = 112;

using sgemm_t = void (*)(int, int, int, int, int, int, float, const float*, int, const float*, int,
                         float, float*, int);
using sgemm_batch_strided_t = void (*)(int, int, int, int, int, int, float, const float*, int, int,
                                       const float*, int, int, float, float*, int, int, int);
using corename_t = char* (*)();
// openblas_dojob_callback / openblas_threads_callback (OpenBLAS's openblas_config.h).
using dojob_t = void (*)(int thread_num, void* jobdata, int dojob_data);
using threads_callback_t = void (*)(int sync, dojob_t dojob, int numjobs, size_t jobdata_elsize,
                                    void* jobdata, int dojob_data);
using set_threads_callback_t = void (*)(threads_callback_t);
using set_threads_t = void (*)(int);
using get_threads_t = int (*)();

struct Blas {
    void* handle = nullptr;
    std::string path;
    sgemm_t sgemm = nullptr;
    sgemm_batch_strided_t sgemm_batch_strided = nullptr;  // OpenBLAS >= 0.3.30 only
    corename_t corename = nullptr;
    corename_t config = nullptr;
    set_threads_t set_threads = nullptr;
    get_threads_t get_threads = nullptr;
    bool on_openmp = false;  // the callback below runs OpenBLAS's parts
};

Blas g_blas;  // written once by load_blas() with the GIL held, read-only afterwards
std::mutex g_blas_mutex;

int to_blasint(index_t v, const char* what) {
    require(v >= 0 && v <= INT_MAX, "sgemm: ", what, " = ", v, " does not fit a 32-bit BLAS int");
    return static_cast<int>(v);
}

// Runs OpenBLAS's numjobs parts of one product at once, one per OpenMP thread.
// The parts of a level-3 product wait on each other's progress, so all of them
// must run concurrently: numjobs never exceeds OpenBLAS's thread count, which
// load_blas and set_num_threads keep within OpenMP's limit, and BLAS is never
// called from inside an OpenMP region (so the team is not nested and gets all
// its threads).
void run_blas_jobs_on_openmp(int /*sync*/, dojob_t dojob, int numjobs, size_t elsize,
                             void* jobdata, int dojob_data) {
    char* jobs = static_cast<char*>(jobdata);
#ifdef _OPENMP
#pragma omp parallel for num_threads(numjobs) schedule(static, 1)
#endif
    for (int i = 0; i < numjobs; ++i) dojob(i, jobs + size_t(i) * elsize, dojob_data);
}

}  // namespace

bool blas_loaded() { return g_blas.sgemm != nullptr; }

int blas_threads() { return g_blas.get_threads ? std::max(1, g_blas.get_threads()) : 1; }

void blas_set_threads(int n) {
    if (g_blas.set_threads) g_blas.set_threads(n);
}

void sgemm(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha, const float* A,
           index_t lda, const float* B, index_t ldb, float beta, float* C, index_t ldc) {
    if (M == 0 || N == 0) return;
    if (K == 0) {  // BLAS would leave C alone with alpha*0; do beta*C ourselves
        for (index_t i = 0; i < M; ++i)
            for (index_t j = 0; j < N; ++j) C[i * ldc + j] = beta == 0.f ? 0.f : beta * C[i * ldc + j];
        return;
    }
    if (!g_blas.sgemm) throw std::runtime_error("fastconv._C: BLAS not loaded; call load_blas() first");
    g_blas.sgemm(kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans,
                 to_blasint(M, "M"), to_blasint(N, "N"), to_blasint(K, "K"), alpha, A,
                 to_blasint(lda, "lda"), B, to_blasint(ldb, "ldb"), beta, C, to_blasint(ldc, "ldc"));
}

void sgemm_batch_strided(bool trans_a, bool trans_b, index_t M, index_t N, index_t K, float alpha,
                         const float* A, index_t lda, index_t stride_a, const float* B, index_t ldb,
                         index_t stride_b, float beta, float* C, index_t ldc, index_t stride_c,
                         index_t batch) {
    if (batch == 0 || M == 0 || N == 0) return;
    if (g_blas.sgemm_batch_strided && K > 0) {
        // OpenBLAS forms i * stride in 32-bit ints: split the batch so that never overflows.
        const index_t stride = std::max({stride_a, stride_b, stride_c, index_t(1)});
        const index_t step = std::max<index_t>(1, INT_MAX / stride);
        for (index_t i0 = 0; i0 < batch; i0 += step) {
            const index_t count = std::min(step, batch - i0);
            g_blas.sgemm_batch_strided(
                kRowMajor, trans_a ? kTrans : kNoTrans, trans_b ? kTrans : kNoTrans,
                to_blasint(M, "M"), to_blasint(N, "N"), to_blasint(K, "K"), alpha,
                A + i0 * stride_a, to_blasint(lda, "lda"), to_blasint(stride_a, "stride_a"),
                B + i0 * stride_b, to_blasint(ldb, "ldb"), to_blasint(stride_b, "stride_b"), beta,
                C + i0 * stride_c, to_blasint(ldc, "ldc"), to_blasint(stride_c, "stride_c"),
                to_blasint(count, "batch"));
        }
        return;
    }
    for (index_t i = 0; i < batch; ++i)
        sgemm(trans_a, trans_b, M, N, K, alpha, A + i * stride_a, lda, B + i * stride_b, ldb, beta,
              C + i * stride_c, ldc);
}

// ---------------------------------------------------------------- Python-facing

py::dict blas_info() {
    py::dict d;
    d["loaded"] = blas_loaded();
    if (!blas_loaded()) return d;
    d["path"] = g_blas.path;
    d["corename"] = std::string(g_blas.corename ? g_blas.corename() : "unknown");
    d["config"] = std::string(g_blas.config ? g_blas.config() : "unknown");
    d["num_threads"] = g_blas.get_threads ? g_blas.get_threads() : -1;
    d["batch_strided"] = g_blas.sgemm_batch_strided != nullptr;
    d["threads_on_openmp"] = g_blas.on_openmp;
    return d;
}

py::dict load_blas(const std::string& path) {
    std::lock_guard<std::mutex> lock(g_blas_mutex);
    if (g_blas.handle) return blas_info();  // first successful load wins

    // OpenBLAS reads its settings once, when it is loaded, so they are passed as
    // environment variables that live only for the duration of dlopen(), and
    // only where the user has not set them.
    // Core type: some releases do not recognise newer AVX-512 CPUs (e.g. AMD
    // Zen 5) and fall back to AVX2; on any CPU with the AVX-512 subset that the
    // SkylakeX kernels use, ask for those.
    const bool set_core = cpu_has_avx512() && std::getenv("OPENBLAS_CORETYPE") == nullptr;
    // Idle time, for when OpenBLAS keeps its own pool (FASTCONV_BLAS_OWN_THREADS):
    // after every call its workers keep polling for new work for 2^28 cycles
    // (~0.1 s), taking a core from the OpenMP regions that run between our GEMMs.
    // 2^18 cycles (~0.1 ms) lets them sleep soon after a product ends.
    const bool set_timeout = std::getenv("OPENBLAS_THREAD_TIMEOUT") == nullptr;
    if (set_core) setenv("OPENBLAS_CORETYPE", "SkylakeX", 1);
    if (set_timeout) setenv("OPENBLAS_THREAD_TIMEOUT", "18", 1);
    void* h = dlopen(path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (set_core) unsetenv("OPENBLAS_CORETYPE");
    if (set_timeout) unsetenv("OPENBLAS_THREAD_TIMEOUT");
    if (!h) {
        const char* err = dlerror();
        throw py::import_error("fastconv._C: cannot load OpenBLAS from '" + path +
                               "': " + (err ? err : "unknown error"));
    }
    auto sym = [h](const char* name) { return dlsym(h, name); };
    Blas b;
    b.handle = h;
    b.path = path;
    b.sgemm = reinterpret_cast<sgemm_t>(sym("scipy_cblas_sgemm"));
    b.sgemm_batch_strided = reinterpret_cast<sgemm_batch_strided_t>(sym("scipy_cblas_sgemm_batch_strided"));
    b.corename = reinterpret_cast<corename_t>(sym("scipy_openblas_get_corename"));
    b.config = reinterpret_cast<corename_t>(sym("scipy_openblas_get_config"));
    b.set_threads = reinterpret_cast<set_threads_t>(sym("scipy_openblas_set_num_threads"));
    b.get_threads = reinterpret_cast<get_threads_t>(sym("scipy_openblas_get_num_threads"));
    if (!b.sgemm) {
        dlclose(h);
        throw py::import_error("fastconv._C: '" + path +
                               "' has no scipy_cblas_sgemm; it is not the scipy-openblas32 library");
    }
#ifdef _OPENMP
    auto set_callback = reinterpret_cast<set_threads_callback_t>(
        sym("scipy_openblas_set_threads_callback_function"));
    if (set_callback && std::getenv("FASTCONV_BLAS_OWN_THREADS") == nullptr) {
        set_callback(run_blas_jobs_on_openmp);
        b.on_openmp = true;
        // OpenBLAS counts the cores itself; it must not split a product into
        // more parts than OpenMP will run at once.
        if (b.set_threads) b.set_threads(openmp_thread_cap(omp_get_max_threads()));
    }
#endif
    g_blas = b;
    return blas_info();
}

py::array gemm(const py::array& a, const py::array& b, bool trans_a, bool trans_b) {
    const char* fn = "gemm";
    const float* A = float_data(a, fn, "a");
    const float* B = float_data(b, fn, "b");
    require_ndim(a, 2, fn, "a");
    require_ndim(b, 2, fn, "b");
    const index_t M = trans_a ? a.shape(1) : a.shape(0);
    const index_t K = trans_a ? a.shape(0) : a.shape(1);
    const index_t Kb = trans_b ? b.shape(1) : b.shape(0);
    const index_t N = trans_b ? b.shape(0) : b.shape(1);
    require(K == Kb, fn, ": inner dimensions differ: op(a) is (", M, ", ", K, "), op(b) is (", Kb,
            ", ", N, ")");
    auto c = new_float({M, N});
    float* C = mut(c);
    {
        py::gil_scoped_release nogil;
        sgemm(trans_a, trans_b, M, N, K, 1.f, A, a.shape(1), B, b.shape(1), 0.f, C, N);
    }
    return std::move(c);
}

}  // namespace fc
