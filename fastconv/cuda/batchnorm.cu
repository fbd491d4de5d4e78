// batchnorm.cu: batch normalisation over (N, C) or (N, C, H, W) float32 (CUDA twin of
// csrc/batchnorm.cpp). Statistics are over every axis but C; the variance is biased.
//
// What it computes (M = N*H*W elements per channel, HW = 1 for (N, C) input)
//   training forward   mean[c], var[c] in ONE pass over x with Welford's update per thread and
//                      Chan's pairwise merge between threads, warps, blocks (numerically stable:
//                      no E[x^2] - E[x]^2 cancellation), then
//                      y = (x - mean) * rsqrt(var + eps) * weight + bias.
//   eval forward       the same affine map with the running statistics.
//   backward           xhat = (x - mean) * invstd, with S1 = sum dy and S2 = sum dy * xhat per
//                      channel: dbias += S1, dweight += S2,
//                      dx = weight * invstd / M * (M * dy - S1 - xhat * S2).
//   weight / bias may be null (affine=False): weight = 1, bias = 0.
//
// How the work maps onto threads and blocks
//   Reductions (batch_norm_forward_partial, batch_norm_backward_partial): a 2-D grid
//   (C, splits), channels on x (up to 2^31 - 1 of them; y is limited to 65535, and a
//   BatchNorm1d layer can have more features than that). Block (c, s) reduces the s-th slice of
//   channel c's M elements: each thread walks the slice with a stride of blockDim.x, keeping a
//   private Welford triple (count, mean, M2) or a pair of sums; lanes merge with warp
//   shuffles, warps merge through shared memory, and thread 0 writes one partial per block.
//   The Python side picks splits so that splits * C blocks fill the GPU even when C is small
//   and M is large. A finalize kernel (one thread per channel) merges the splits partials in a
//   fixed order: the result is deterministic.
//   Elementwise passes (batch_norm_forward_apply, batch_norm_backward_apply): 1-D grid of
//   256-thread blocks, one thread per element, grid-stride loop; channel = (i / HW) % C.
//
// Gradient convention (whole backend): parameter gradients accumulate (dweight += , dbias +=)
// into the buffers passed in; activation gradients (dx) are written (=).

#define FC_WARP 32   // lanes per warp: the shuffle reductions below assume all 32
#define FC_MAX_WARPS 32

struct Welford { float n, mean, m2; };

__device__ __forceinline__ Welford welford_merge(Welford a, Welford b)
{
    const float n = a.n + b.n;
    if (n == 0.0f) return a;
    const float delta = b.mean - a.mean;
    const float wb = b.n / n;
    Welford r;
    r.n = n;
    r.mean = a.mean + delta * wb;
    r.m2 = a.m2 + b.m2 + delta * delta * a.n * wb;
    return r;
}

__device__ __forceinline__ Welford warp_merge(Welford w)
{
    for (int off = FC_WARP / 2; off > 0; off >>= 1) {
        Welford o;
        o.n = __shfl_down_sync(0xffffffffu, w.n, off);
        o.mean = __shfl_down_sync(0xffffffffu, w.mean, off);
        o.m2 = __shfl_down_sync(0xffffffffu, w.m2, off);
        w = welford_merge(w, o);
    }
    return w;
}

__device__ __forceinline__ float warp_sum(float v)
{
    for (int off = FC_WARP / 2; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// part: (C, splits, 3) = Welford triples of each (channel, slice)
extern "C" __global__ void batch_norm_forward_partial(const float* __restrict__ x,
                                                      float* __restrict__ part, int N, int C,
                                                      long long HW, int splits)
{
    __shared__ float sh[FC_MAX_WARPS][3];
    const int c = blockIdx.x;
    const int s = blockIdx.y;
    const long long M = (long long)N * HW;
    const long long chunk = (M + splits - 1) / splits;
    const long long start = (long long)s * chunk;
    const long long end = min(start + chunk, M);
    Welford w; w.n = 0.0f; w.mean = 0.0f; w.m2 = 0.0f;
    for (long long e = start + threadIdx.x; e < end; e += blockDim.x) {
        const long long n = e / HW;
        const long long p = e - n * HW;
        const float v = x[(n * C + c) * HW + p];
        w.n += 1.0f;
        const float d = v - w.mean;
        w.mean += d / w.n;
        w.m2 += d * (v - w.mean);
    }
    w = warp_merge(w);
    const int lane = threadIdx.x % FC_WARP;
    const int warp = threadIdx.x / FC_WARP;
    const int nwarps = (blockDim.x + FC_WARP - 1) / FC_WARP;
    if (lane == 0) { sh[warp][0] = w.n; sh[warp][1] = w.mean; sh[warp][2] = w.m2; }
    __syncthreads();
    if (threadIdx.x == 0) {
        Welford t; t.n = sh[0][0]; t.mean = sh[0][1]; t.m2 = sh[0][2];
        for (int k = 1; k < nwarps; ++k) {
            Welford o; o.n = sh[k][0]; o.mean = sh[k][1]; o.m2 = sh[k][2];
            t = welford_merge(t, o);
        }
        float* out = part + ((long long)c * splits + s) * 3;
        out[0] = t.n; out[1] = t.mean; out[2] = t.m2;
    }
}

// one thread per channel: merge the slices, write mean and biased var
extern "C" __global__ void batch_norm_forward_finalize(const float* __restrict__ part,
                                                       float* __restrict__ mean,
                                                       float* __restrict__ var, int C, int splits)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
        const float* p = part + (long long)c * splits * 3;
        Welford t; t.n = p[0]; t.mean = p[1]; t.m2 = p[2];
        for (int s = 1; s < splits; ++s) {
            Welford o; o.n = p[3 * s]; o.mean = p[3 * s + 1]; o.m2 = p[3 * s + 2];
            t = welford_merge(t, o);
        }
        mean[c] = t.mean;
        var[c] = t.n > 0.0f ? fmaxf(t.m2 / t.n, 0.0f) : 0.0f;
    }
}

// y = (x - mean[c]) * rsqrt(var[c] + eps) * weight[c] + bias[c]   (training and eval)
extern "C" __global__ void batch_norm_forward_apply(const float* __restrict__ x,
                                                    const float* __restrict__ mean,
                                                    const float* __restrict__ var,
                                                    const float* __restrict__ weight,
                                                    const float* __restrict__ bias,
                                                    float* __restrict__ y, int N, int C,
                                                    long long HW, float eps)
{
    const long long total = (long long)N * C * HW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((i / HW) % C);
        const float g = weight != 0 ? weight[c] : 1.0f;
        const float b = bias != 0 ? bias[c] : 0.0f;
        const float invstd = rsqrtf(var[c] + eps);
        y[i] = (x[i] - mean[c]) * (invstd * g) + b;
    }
}

// part: (C, splits, 2) = (sum dy, sum dy * (x - mean)) of each (channel, slice)
extern "C" __global__ void batch_norm_backward_partial(const float* __restrict__ x,
                                                       const float* __restrict__ dy,
                                                       const float* __restrict__ mean,
                                                       float* __restrict__ part, int N, int C,
                                                       long long HW, int splits)
{
    __shared__ float sh[FC_MAX_WARPS][2];
    const int c = blockIdx.x;
    const int s = blockIdx.y;
    const long long M = (long long)N * HW;
    const long long chunk = (M + splits - 1) / splits;
    const long long start = (long long)s * chunk;
    const long long end = min(start + chunk, M);
    const float mu = mean[c];
    float s1 = 0.0f, s2 = 0.0f;
    for (long long e = start + threadIdx.x; e < end; e += blockDim.x) {
        const long long n = e / HW;
        const long long p = e - n * HW;
        const long long idx = (n * C + c) * HW + p;
        const float g = dy[idx];
        s1 += g;
        s2 += g * (x[idx] - mu);
    }
    s1 = warp_sum(s1);
    s2 = warp_sum(s2);
    const int lane = threadIdx.x % FC_WARP;
    const int warp = threadIdx.x / FC_WARP;
    const int nwarps = (blockDim.x + FC_WARP - 1) / FC_WARP;
    if (lane == 0) { sh[warp][0] = s1; sh[warp][1] = s2; }
    __syncthreads();
    if (threadIdx.x == 0) {
        float t1 = 0.0f, t2 = 0.0f;
        for (int k = 0; k < nwarps; ++k) { t1 += sh[k][0]; t2 += sh[k][1]; }
        float* out = part + ((long long)c * splits + s) * 2;
        out[0] = t1; out[1] = t2;
    }
}

// One thread per channel: sums[c] = (S1, S2) with S2 = sum dy * xhat; dweight += S2, dbias += S1.
extern "C" __global__ void batch_norm_backward_finalize(const float* __restrict__ part,
                                                        const float* __restrict__ var,
                                                        float* __restrict__ sums,
                                                        float* __restrict__ dweight,
                                                        float* __restrict__ dbias, int C,
                                                        int splits, float eps)
{
    for (int c = blockIdx.x * blockDim.x + threadIdx.x; c < C; c += blockDim.x * gridDim.x) {
        const float* p = part + (long long)c * splits * 2;
        float t1 = 0.0f, t2 = 0.0f;
        for (int s = 0; s < splits; ++s) { t1 += p[2 * s]; t2 += p[2 * s + 1]; }
        const float invstd = rsqrtf(var[c] + eps);
        const float s2 = t2 * invstd;
        sums[2 * c] = t1;
        sums[2 * c + 1] = s2;
        if (dweight != 0) dweight[c] += s2;
        if (dbias != 0) dbias[c] += t1;
    }
}

extern "C" __global__ void batch_norm_backward_apply(const float* __restrict__ x,
                                                     const float* __restrict__ dy,
                                                     const float* __restrict__ mean,
                                                     const float* __restrict__ var,
                                                     const float* __restrict__ weight,
                                                     const float* __restrict__ sums,
                                                     float* __restrict__ dx, int N, int C,
                                                     long long HW, float eps)
{
    const long long total = (long long)N * C * HW;
    const float M = (float)((long long)N * HW);
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int c = (int)((i / HW) % C);
        const float invstd = rsqrtf(var[c] + eps);
        const float g = weight != 0 ? weight[c] : 1.0f;
        const float xhat = (x[i] - mean[c]) * invstd;
        dx[i] = g * invstd / M * (M * dy[i] - sums[2 * c] - xhat * sums[2 * c + 1]);
    }
}
