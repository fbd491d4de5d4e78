/* Uniform [0, 1) float32 draws: the CPU backend's random_uniform (RReLU, Gumbel noise,
 * fractional pooling), and dropout's masks drawn and applied in the same pass.
 *
 * What: out[i] = (u >> 8) * 2^-24 (24 random bits), u the (i % 4)-th word of
 * Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3",
 * SC 2011) with key = seed and counter = (i / 4, offset): the CUDA backend's
 * random_uniform (fastconv/cuda/elementwise.cu) as a function of (seed, offset,
 * i), bit for bit. The CPU backend draws a fresh 64-bit seed from fastconv's
 * NumPy generator for every call, so manual_seed and checkpointed generator
 * states keep making the same draws.
 * dropout_forward: mask[i] = scale where out[i] >= p (the draws random_uniform
 * makes for the same seed, offset 0), else 0; y = x * mask. dropout_backward:
 * dx = dy * mask. One pass each instead of NumPy's five single-threaded ones
 * (draw, compare, convert, scale, multiply).
 * Why not NumPy's generator: it fills one element at a time on one thread
 * (6 ms for a 3M-element dropout mask, half of NIN's dropout).
 * Threads: OpenMP, one contiguous range of blocks of four outputs per thread; every
 * output is a pure function of its index, so the result does not depend on the
 * thread count.
 * Gradients: dx is written (returned new).
 */
#include <cstdint>

#include "kernels.h"

namespace fc {

namespace {

struct Words {
    std::uint32_t x, y, z, w;
};

inline Words philox4x32_10(Words c, std::uint32_t k0, std::uint32_t k1) {
    constexpr std::uint32_t M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    constexpr std::uint32_t W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
        const std::uint64_t p0 = std::uint64_t(M0) * c.x, p1 = std::uint64_t(M1) * c.z;
        c = Words{static_cast<std::uint32_t>(p1 >> 32) ^ c.y ^ k0, static_cast<std::uint32_t>(p1),
                  static_cast<std::uint32_t>(p0 >> 32) ^ c.w ^ k1, static_cast<std::uint32_t>(p0)};
        k0 += W0;
        k1 += W1;
    }
    return c;
}

// The four words of block g (outputs 4g .. 4g + 3) for key (k0, k1) and offset (o0, o1).
inline Words block(index_t g, std::uint32_t k0, std::uint32_t k1, std::uint32_t o0, std::uint32_t o1) {
    const auto lo = static_cast<std::uint32_t>(g), hi = static_cast<std::uint32_t>(std::uint64_t(g) >> 32);
    return philox4x32_10(Words{lo, hi, o0, o1}, k0, k1);
}

inline float unit(std::uint32_t u) { return static_cast<float>(u >> 8) * (1.0f / 16777216.0f); }

// Blocks [g0, g1) of four outputs, whole ones only. A loop over blocks in vector lanes
// (each lane its own Philox block), compiled for AVX-512, AVX2 and the baseline, picked at
// load time: the ten rounds of 32 x 32 -> 64-bit products are the whole cost.
__attribute__((target_clones("avx512f", "avx2", "default")))
void fill_blocks(float* __restrict out, index_t g0, index_t g1, std::uint32_t k0, std::uint32_t k1,
                 std::uint32_t o0, std::uint32_t o1) {
#pragma omp simd
    for (index_t g = g0; g < g1; ++g) {
        const Words r = block(g, k0, k1, o0, o1);
        out[4 * g] = unit(r.x);
        out[4 * g + 1] = unit(r.y);
        out[4 * g + 2] = unit(r.z);
        out[4 * g + 3] = unit(r.w);
    }
}

// Dropout over blocks [g0, g1): the mask from the draws of fill_blocks (offset 0), and y.
__attribute__((target_clones("avx512f", "avx2", "default")))
void dropout_blocks(const float* __restrict x, float* __restrict y, float* __restrict mask,
                    index_t g0, index_t g1, std::uint32_t k0, std::uint32_t k1, float p,
                    float scale) {
#pragma omp simd
    for (index_t g = g0; g < g1; ++g) {
        const Words r = block(g, k0, k1, 0, 0);
        const std::uint32_t u[4] = {r.x, r.y, r.z, r.w};
        for (int j = 0; j < 4; ++j) {
            const float m = unit(u[j]) >= p ? scale : 0.0f;
            mask[4 * g + j] = m;
            y[4 * g + j] = x[4 * g + j] * m;
        }
    }
}

// The four words of the last, partial block of n outputs (n % 4 != 0).
void tail_words(index_t n, std::uint32_t k0, std::uint32_t k1, std::uint32_t o0, std::uint32_t o1,
                std::uint32_t u[4]) {
    const Words r = block(n / 4, k0, k1, o0, o1);
    u[0] = r.x, u[1] = r.y, u[2] = r.z, u[3] = r.w;
}

}  // namespace

py::array random_uniform(const std::vector<index_t>& shape, std::uint64_t seed, std::uint64_t offset) {
    for (index_t d : shape) require(d >= 0, "random_uniform: negative size in shape ", shape_str(shape));
    auto out = new_float(shape);
    float* O = mut(out);
    const index_t n = out.size(), blocks = (n + 3) / 4;
    const auto k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    const auto o0 = static_cast<std::uint32_t>(offset), o1 = static_cast<std::uint32_t>(offset >> 32);
    {
        py::gil_scoped_release nogil;
        const index_t whole = n / 4;
#pragma omp parallel if (n > (index_t(1) << 15))
        {
#ifdef _OPENMP
            const index_t T = omp_get_num_threads(), id = omp_get_thread_num();
#else
            const index_t T = 1, id = 0;
#endif
            fill_blocks(O, whole * id / T, whole * (id + 1) / T, k0, k1, o0, o1);
        }
        if (whole < blocks) {
            std::uint32_t u[4];
            tail_words(n, k0, k1, o0, o1, u);
            for (index_t i = 4 * whole; i < n; ++i) O[i] = unit(u[i - 4 * whole]);
        }
    }
    return std::move(out);
}

py::tuple dropout_forward(const py::array& x, double p, std::uint64_t seed) {
    const char* fn = "dropout_forward";
    const float* X = float_data(x, fn, "x");
    require(p >= 0.0 && p < 1.0, fn, ": p must be in [0, 1), got ", p);
    auto y = new_float(shape_of(x)), mask = new_float(shape_of(x));
    float *Y = mut(y), *M = mut(mask);
    const index_t n = x.size(), whole = n / 4;
    const auto k0 = static_cast<std::uint32_t>(seed), k1 = static_cast<std::uint32_t>(seed >> 32);
    // as NumPy compares float32 draws with a Python float and scales by np.float32(1 / (1 - p))
    const auto pf = static_cast<float>(p), scale = static_cast<float>(1.0 / (1.0 - p));
    {
        py::gil_scoped_release nogil;
        split(whole, [&](index_t g, index_t m) { dropout_blocks(X, Y, M, g, g + m, k0, k1, pf, scale); });
        if (4 * whole < n) {
            std::uint32_t u[4];
            tail_words(n, k0, k1, 0, 0, u);
            for (index_t i = 4 * whole; i < n; ++i) {
                M[i] = unit(u[i - 4 * whole]) >= pf ? scale : 0.0f;
                Y[i] = X[i] * M[i];
            }
        }
    }
    return py::make_tuple(y, mask);
}

py::array dropout_backward(const py::array& dy, const py::array& mask) {
    const char* fn = "dropout_backward";
    const float* DY = float_data(dy, fn, "dy");
    const float* M = float_data(mask, fn, "mask");
    require_shape(mask, shape_of(dy), fn, "mask");
    auto dx = new_float(shape_of(dy));
    float* DX = mut(dx);
    {
        py::gil_scoped_release nogil;
        const bool stream = index_t(dy.size()) * index_t(sizeof(float)) >= kStreamBytes;
        split(dy.size(), [&](index_t i, index_t m) {
            const float *d = DY + i, *k = M + i;
            write_run(DX + i, m, stream, [&](index_t j) { return d[j] * k[j]; });
            if (stream) stream_fence();
        });
    }
    return std::move(dx);
}

}  // namespace fc
