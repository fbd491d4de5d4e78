/* The machine the kernels run on: CPU features and the thread count.
 *
 * What: cpu_features() reports the CPU's SIMD features and which kernel sets
 * (microkernel.h, gemm_bf16.h) were picked; set_num_threads() / get_num_threads() set and
 * read the one thread count that OpenMP and OpenBLAS share (blas.cpp runs
 * OpenBLAS's parts on OpenMP's threads, so both must agree on it).
 * largest_team() remembers the largest OpenMP team since import, so that
 * empty_cache (alloc.cpp) reaches every thread that may hold scratch buffers.
 * Threads: set_num_threads sets OpenMP's count for the calling thread.
 * Gradients: none.
 */
#include <algorithm>

#include "common.h"
#include "gemm_bf16.h"
#include "kernels.h"
#include "microkernel.h"

namespace fc {

namespace {
std::atomic<int> g_largest_team{0};  // the most threads a team had since import (set_num_threads)
}  // namespace

bool cpu_has_avx512() {
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512dq") && __builtin_cpu_supports("avx512vl");
#else
    return false;
#endif
}

int openmp_thread_cap(int n) {
#ifdef _OPENMP
    return std::max(1, std::min(n, omp_get_thread_limit()));
#else
    return 1;
#endif
}

py::dict cpu_features() {
    py::dict d;
#if defined(__x86_64__) || defined(__i386__)
    __builtin_cpu_init();
    d["sse4_2"] = bool(__builtin_cpu_supports("sse4.2"));
    d["avx"] = bool(__builtin_cpu_supports("avx"));
    d["avx2"] = bool(__builtin_cpu_supports("avx2"));
    d["fma"] = bool(__builtin_cpu_supports("fma"));
    d["avx512f"] = bool(__builtin_cpu_supports("avx512f"));
    d["avx512bw"] = bool(__builtin_cpu_supports("avx512bw"));
    d["avx512dq"] = bool(__builtin_cpu_supports("avx512dq"));
    d["avx512vl"] = bool(__builtin_cpu_supports("avx512vl"));
    d["avx512vnni"] = bool(__builtin_cpu_supports("avx512vnni"));
#endif
    d["avx512bf16"] = cpu_has_avx512bf16();
    d["amx_bf16"] = cpu_has_amx_bf16();
    d["amx_tile"] = cpu_has_amx_tile();
    d["conv_kernels"] = std::string(microkernels().isa);
    d["bf16_kernels"] = bf16_kernels();
#ifdef _OPENMP
    d["openmp"] = true;
    d["omp_max_threads"] = omp_get_max_threads();
    d["omp_num_procs"] = omp_get_num_procs();
#else
    d["openmp"] = false;
#endif
    return d;
}

int largest_team() { return std::max(g_largest_team.load(), get_num_threads()); }

void set_num_threads(int n) {
    require(n >= 1, "set_num_threads: n must be >= 1, got ", n);
#ifdef _OPENMP
    n = openmp_thread_cap(n);
    g_largest_team = largest_team();  // the threads of the team before, which keep their buffers
    omp_set_num_threads(n);
#endif
    blas_set_threads(n);
}

int get_num_threads() {
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

}  // namespace fc
