// loss.cu: softmax cross-entropy with label smoothing over logits (N, K) float32 and integer
// targets (N,) int64 (CUDA twin of the CPU loss kernels).
//
// What it computes, with eps = label_smoothing and lse_i = log sum_j exp(x_ij):
//   prob_ij  = exp(x_ij - lse_i)
//   loss_i   = -[(1 - eps) log prob_it + eps/K sum_j log prob_ij]
//            = lse_i - (1 - eps) x_it - eps/K sum_j x_ij
//   loss     = mean_i loss_i (a device scalar: no host synchronisation, so a training step
//              stays capturable in a CUDA graph)
//   dlogits  = dloss / N * (prob_ij - (1 - eps) [j == t_i] - eps / K)
//   A target outside [0, K) is never used as an index: its row's loss is NaN and its gradient
//   row is NaN (the ops layer rejects such targets with a clear error before calling).
//
// How the work maps onto threads and blocks
//   softmax_cross_entropy_forward: one warp per row (8 rows per 256-thread block); the lanes
//   stride over the K classes for the max, then for sum exp and sum x, each reduced with warp
//   shuffles; the lanes then write prob. softmax_cross_entropy_forward_mean: a single block
//   sums the N row losses in a fixed order (deterministic). softmax_cross_entropy_backward: one
//   thread per logit, grid-stride loop.
//   dloss is read from device memory when a pointer is given (the autograd seed of a captured
//   step), otherwise the by-value dloss_value is used.
//
// Gradient convention (whole backend): activation gradients (dlogits) are written (=);
// parameter gradients accumulate (+=). The loss has no parameters.

#define FC_WARP 32   // lanes per warp: the shuffle reductions below assume all 32
#define FC_MAX_WARPS 32

__device__ __forceinline__ float fc_warp_sum(float v)
{
    for (int off = FC_WARP / 2; off > 0; off >>= 1) v += __shfl_xor_sync(0xffffffffu, v, off);
    return v;   // every lane holds the sum (xor butterfly)
}

__device__ __forceinline__ float fc_warp_max(float v)
{
    for (int off = FC_WARP / 2; off > 0; off >>= 1)
        v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, off));
    return v;
}

extern "C" __global__ void softmax_cross_entropy_forward(const float* __restrict__ logits,
                                                         const long long* __restrict__ target,
                                                         float* __restrict__ prob,
                                                         float* __restrict__ row_loss, int N, int K,
                                                         float eps)
{
    const int lane = threadIdx.x % FC_WARP;
    const int warps_per_block = (blockDim.x + FC_WARP - 1) / FC_WARP;
    const int warp0 = blockIdx.x * warps_per_block + threadIdx.x / FC_WARP;
    const int warp_stride = gridDim.x * warps_per_block;
    for (int row = warp0; row < N; row += warp_stride) {
        const float* x = logits + (long long)row * K;
        float m = __int_as_float(0xff800000);   // -inf
        for (int j = lane; j < K; j += FC_WARP) m = fmaxf(m, x[j]);
        m = fc_warp_max(m);
        float se = 0.0f, sx = 0.0f;
        for (int j = lane; j < K; j += FC_WARP) {
            se += expf(x[j] - m);
            sx += x[j];
        }
        se = fc_warp_sum(se);
        sx = fc_warp_sum(sx);
        const float lse = m + logf(se);
        float* pr = prob + (long long)row * K;
        for (int j = lane; j < K; j += FC_WARP) pr[j] = expf(x[j] - lse);
        if (lane == 0) {
            const long long t = target[row];
            float l;
            if (t < 0 || t >= K) l = __int_as_float(0x7fc00000);   // NaN, no out-of-range read
            // the smoothing term only when eps > 0: eps * sx is NaN for a -inf logit
            else l = lse - (1.0f - eps) * x[t] - (eps > 0.0f ? eps / (float)K * sx : 0.0f);
            row_loss[row] = l;
        }
    }
}

// out[0] = mean of v[0..n); launched with a single block.
extern "C" __global__ void softmax_cross_entropy_forward_mean(const float* __restrict__ v,
                                                              float* __restrict__ out, int n)
{
    __shared__ float sh[FC_MAX_WARPS];
    float acc = 0.0f;
    for (int i = threadIdx.x; i < n; i += blockDim.x) acc += v[i];
    acc = fc_warp_sum(acc);
    const int lane = threadIdx.x % FC_WARP;
    const int warp = threadIdx.x / FC_WARP;
    const int nwarps = (blockDim.x + FC_WARP - 1) / FC_WARP;
    if (lane == 0) sh[warp] = acc;
    __syncthreads();
    if (threadIdx.x == 0) {
        float t = 0.0f;
        for (int k = 0; k < nwarps; ++k) t += sh[k];
        out[0] = n > 0 ? t / (float)n : 0.0f;
    }
}

extern "C" __global__ void softmax_cross_entropy_backward(const float* __restrict__ prob,
                                                          const long long* __restrict__ target,
                                                          const float* __restrict__ dloss,
                                                          float dloss_value,
                                                          float* __restrict__ dlogits, int N, int K,
                                                          float eps)
{
    const long long total = (long long)N * K;
    const float g = (dloss != 0 ? dloss[0] : dloss_value) / (float)N;
    const float off = eps / (float)K;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int row = (int)(i / K);
        const int j = (int)(i - (long long)row * K);
        const long long t = target[row];
        float d;
        if (t < 0 || t >= K) d = __int_as_float(0x7fc00000);
        else d = prob[i] - off - (j == t ? 1.0f - eps : 0.0f);
        dlogits[i] = g * d;
    }
}
