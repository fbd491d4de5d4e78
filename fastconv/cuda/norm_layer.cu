// norm_layer.cu: group normalisation, which is also layer normalisation (CUDA twin of
// csrc/norm_layer.cpp): layer norm over the last dims is group norm of x viewed as (rows, K)
// with one group, K channels and S = 1.
//
// What it computes
//   x is (N, C, S) with S the product of the trailing dims; the C channels of a sample form G
//   groups of Cg = C/G consecutive channels, so row r = n*G + g is K = Cg*S contiguous values.
//   group_norm_forward_stats   per row: mean = sum(x)/K, var = sum((x - mean)^2)/K (two passes,
//                              biased), rstd = rsqrt(var + eps).
//   group_norm_forward_apply   y = (x - mean[r]) * rstd[r] * weight[c] + bias[c].
//   group_norm_backward_rows   per row, g = dy * weight[c], xhat = (x - mean) * rstd:
//                              dx = rstd * (g - mean(g) - xhat * mean(g * xhat)).
//   group_norm_backward_params dweight[c] += sum over n, s of dy * xhat, dbias[c] += sum of dy.
//   weight / bias may be null (1 and 0).
//
// How the work maps onto threads and blocks
//   Row and channel reductions: one block per row (stats, backward_rows) or per channel
//   (backward_params), grid-stride over rows / channels; the block's threads stride over the
//   row, then warp shuffles and shared memory combine the partial sums in a fixed order (the
//   same result on every run). backward_rows reuses its block for the row's dx pass.
//   group_norm_forward_apply: 1-D grid of 256-thread blocks, one thread per element.
//
// Gradient convention (whole backend): parameter gradients accumulate (dweight +=, dbias +=)
// into the buffers passed in; activation gradients (dx) are written (=).

#ifndef FC_WARP
#define FC_WARP 32   // lanes per warp (the host-emulation test builds with 1)
#endif
#define FC_MAX_WARPS 32

__device__ __forceinline__ float fc_warp_sum(float v)
{
    for (int off = FC_WARP / 2; off > 0; off >>= 1) v += __shfl_down_sync(0xffffffffu, v, off);
    return v;
}

// The sum of v over the block's threads, returned to every thread. sh: FC_MAX_WARPS + 1 floats.
__device__ __forceinline__ float fc_block_sum(float v, float* sh)
{
    v = fc_warp_sum(v);
    const int lane = threadIdx.x % FC_WARP;
    const int warp = threadIdx.x / FC_WARP;
    const int nwarps = (blockDim.x + FC_WARP - 1) / FC_WARP;
    if (lane == 0) sh[warp] = v;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int k = 0; k < nwarps; ++k) t += sh[k];
        sh[FC_MAX_WARPS] = t;
    }
    __syncthreads();
    const float total = sh[FC_MAX_WARPS];
    __syncthreads();   // sh is reused by the next call
    return total;
}

extern "C" __global__ void group_norm_forward_stats(const float* __restrict__ x,
                                                    float* __restrict__ mean,
                                                    float* __restrict__ rstd, long long rows,
                                                    long long K, float eps)
{
    __shared__ float sh[FC_MAX_WARPS + 1];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float* xr = x + r * K;
        float s = 0.0f;
        for (long long i = threadIdx.x; i < K; i += blockDim.x) s += xr[i];
        const float mu = K > 0 ? fc_block_sum(s, sh) / (float)K : 0.0f;
        float q = 0.0f;
        for (long long i = threadIdx.x; i < K; i += blockDim.x) {
            const float d = xr[i] - mu;
            q += d * d;
        }
        const float var = K > 0 ? fc_block_sum(q, sh) / (float)K : 0.0f;
        if (threadIdx.x == 0) {
            mean[r] = mu;
            rstd[r] = rsqrtf(var + eps);
        }
    }
}

extern "C" __global__ void group_norm_forward_apply(const float* __restrict__ x,
                                                    const float* __restrict__ mean,
                                                    const float* __restrict__ rstd,
                                                    const float* __restrict__ weight,
                                                    const float* __restrict__ bias,
                                                    float* __restrict__ y, long long total,
                                                    long long K, long long S, int G, int Cg)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long r = i / K;
        const int c = (int)(r % G) * Cg + (int)((i - r * K) / S);
        const float w = weight ? weight[c] : 1.0f;
        const float b = bias ? bias[c] : 0.0f;
        y[i] = (x[i] - mean[r]) * rstd[r] * w + b;
    }
}

extern "C" __global__ void group_norm_backward_rows(const float* __restrict__ x,
                                                    const float* __restrict__ dy,
                                                    const float* __restrict__ mean,
                                                    const float* __restrict__ rstd,
                                                    const float* __restrict__ weight,
                                                    float* __restrict__ dx, long long rows,
                                                    long long K, long long S, int G, int Cg)
{
    __shared__ float sh[FC_MAX_WARPS + 1];
    for (long long r = blockIdx.x; r < rows; r += gridDim.x) {
        const float *xr = x + r * K, *dr = dy + r * K;
        const float mu = mean[r], rs = rstd[r];
        const int c0 = (int)(r % G) * Cg;
        float a = 0.0f, b = 0.0f;
        for (long long i = threadIdx.x; i < K; i += blockDim.x) {
            const float g = dr[i] * (weight ? weight[c0 + (int)(i / S)] : 1.0f);
            a += g;
            b += g * (xr[i] - mu) * rs;
        }
        const float mean_g = K > 0 ? fc_block_sum(a, sh) / (float)K : 0.0f;
        const float mean_gx = K > 0 ? fc_block_sum(b, sh) / (float)K : 0.0f;
        for (long long i = threadIdx.x; i < K; i += blockDim.x) {
            const float g = dr[i] * (weight ? weight[c0 + (int)(i / S)] : 1.0f);
            dx[r * K + i] = rs * (g - mean_g - (xr[i] - mu) * rs * mean_gx);
        }
    }
}

extern "C" __global__ void group_norm_backward_params(const float* __restrict__ x,
                                                      const float* __restrict__ dy,
                                                      const float* __restrict__ mean,
                                                      const float* __restrict__ rstd,
                                                      float* __restrict__ dweight,
                                                      float* __restrict__ dbias, int N, int C,
                                                      long long S, int G, int Cg)
{
    __shared__ float sh[FC_MAX_WARPS + 1];
    const long long M = (long long)N * S;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        float a = 0.0f, b = 0.0f;
        for (long long e = threadIdx.x; e < M; e += blockDim.x) {
            const long long n = e / S;
            const long long off = (n * C + c) * S + (e - n * S);
            const long long r = n * G + c / Cg;
            const float g = dy[off];
            a += g * (x[off] - mean[r]) * rstd[r];
            b += g;
        }
        const float sw = fc_block_sum(a, sh);
        const float sb = fc_block_sum(b, sh);
        if (threadIdx.x == 0) {
            dweight[c] += sw;
            dbias[c] += sb;
        }
    }
}
