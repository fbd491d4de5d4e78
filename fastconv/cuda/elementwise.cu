// elementwise.cu: ReLU, bias add / bias gradient of the convolutions, and the random numbers
// behind dropout (a counter-based Philox4x32-10 generator).
//
// What it computes (float32, C-contiguous)
//   relu_forward          y = max(x, 0)
//   relu_backward         dx = dy where y > 0, else 0
//   round_bf16            x[i] rounded in place to the nearest bfloat16, ties to even (NaN ->
//                         0x7FC00000), kept as float32: autocast's bf16 values
//   to_bf16               out[i] = the same rounding of x[i], as bfloat16 bits (uint16): the
//                         packed operands of the bfloat16 GEMMs (blas.py)
//   conv2d_forward_bias   y[n, c, p] += b[c]                       (in place, y is (N, C, P))
//   conv2d_backward_bias  db[c] += sum over n, p of dy[n, c, p]    (bias gradient)
//   random_uniform        out[i] = uniform [0, 1) float (24 random bits), Philox4x32-10 with
//                         key = seed and counter = (i / 4, call offset): a pure function of
//                         (seed, offset, i), so it is reproducible, needs no per-thread state
//                         and gives the same numbers whatever the launch configuration.
//   rng_advance           state[1] += 1 (the call offset). The generator state (seed, offset)
//                         lives in device memory and every draw reads it there: a captured CUDA
//                         graph that replays a dropout step draws fresh numbers on every replay.
//
// How the work maps onto threads and blocks
//   1-D grids of 256-thread blocks with grid-stride loops, one thread per element (per group of
//   four outputs for random_uniform, one Philox call each). conv2d_backward_bias: one block per
//   channel; threads stride over the channel's N*P elements, then a shuffle + shared-memory
//   reduction in a fixed order (deterministic). rng_advance: a single thread.
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=): conv2d_backward_bias adds into db.

#define FC_WARP 32   // lanes per warp: the shuffle reductions below assume all 32
#define FC_MAX_WARPS 32

extern "C" __global__ void relu_forward(const float* __restrict__ x, float* __restrict__ y,
                                        long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        const float v = x[i];
        y[i] = v > 0.0f ? v : 0.0f;
    }
}

extern "C" __global__ void relu_backward(const float* __restrict__ y, const float* __restrict__ dy,
                                         float* __restrict__ dx, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        dx[i] = y[i] > 0.0f ? dy[i] : 0.0f;
    }
}

__device__ __forceinline__ unsigned int bf16_round_bits(unsigned int b)
{
    const unsigned int r = (b + 0x7FFFu + ((b >> 16) & 1u)) & 0xFFFF0000u;
    return (b & 0x7FFFFFFFu) > 0x7F800000u ? 0x7FC00000u : r;
}

extern "C" __global__ void round_bf16(unsigned int* __restrict__ x, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        x[i] = bf16_round_bits(x[i]);
    }
}

extern "C" __global__ void to_bf16(const unsigned int* __restrict__ x,
                                   unsigned short* __restrict__ out, long long n)
{
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (long long)blockDim.x * gridDim.x) {
        out[i] = (unsigned short)(bf16_round_bits(x[i]) >> 16);
    }
}

extern "C" __global__ void conv2d_forward_bias(float* __restrict__ y, const float* __restrict__ b,
                                               int N, int C, long long P)
{
    const long long total = (long long)N * C * P;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        y[i] += b[(i / P) % C];
    }
}

extern "C" __global__ void conv2d_backward_bias(const float* __restrict__ dy,
                                                float* __restrict__ db, int N, int C, long long P)
{
    __shared__ float sh[FC_MAX_WARPS];
    const long long M = (long long)N * P;
    for (int c = blockIdx.x; c < C; c += gridDim.x) {
        float acc = 0.0f;
        for (long long e = threadIdx.x; e < M; e += blockDim.x) {
            const long long n = e / P;
            const long long p = e - n * P;
            acc += dy[(n * C + c) * P + p];
        }
        for (int off = FC_WARP / 2; off > 0; off >>= 1)
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        const int lane = threadIdx.x % FC_WARP;
        const int warp = threadIdx.x / FC_WARP;
        const int nwarps = (blockDim.x + FC_WARP - 1) / FC_WARP;
        if (lane == 0) sh[warp] = acc;
        __syncthreads();
        if (threadIdx.x == 0) {
            float t = 0.0f;
            for (int k = 0; k < nwarps; ++k) t += sh[k];
            db[c] += t;
        }
        __syncthreads();
    }
}

// ---- Philox4x32-10 (Salmon et al., "Parallel random numbers: as easy as 1, 2, 3", SC 2011) ----

struct FcU4 { unsigned int x, y, z, w; };

__device__ __forceinline__ FcU4 philox4x32_10(FcU4 ctr, unsigned int k0, unsigned int k1)
{
    const unsigned int M0 = 0xD2511F53u, M1 = 0xCD9E8D57u;
    const unsigned int W0 = 0x9E3779B9u, W1 = 0xBB67AE85u;
    for (int r = 0; r < 10; ++r) {
        const unsigned int hi0 = __umulhi(M0, ctr.x);
        const unsigned int lo0 = M0 * ctr.x;
        const unsigned int hi1 = __umulhi(M1, ctr.z);
        const unsigned int lo1 = M1 * ctr.z;
        FcU4 n;
        n.x = hi1 ^ ctr.y ^ k0;
        n.y = lo1;
        n.z = hi0 ^ ctr.w ^ k1;
        n.w = lo0;
        ctr = n;
        k0 += W0;
        k1 += W1;
    }
    return ctr;
}

__device__ __forceinline__ float fc_u01(unsigned int u)
{
    return (float)(u >> 8) * (1.0f / 16777216.0f);   // [0, 1), 24 bits
}

// The four uniforms of Philox block `g` for the generator state (seed, offset).
__device__ __forceinline__ FcU4 fc_philox_block(unsigned long long g,
                                                const unsigned long long* __restrict__ state)
{
    const unsigned long long seed = state[0];
    const unsigned long long offset = state[1];
    FcU4 ctr;
    ctr.x = (unsigned int)g;
    ctr.y = (unsigned int)(g >> 32);
    ctr.z = (unsigned int)offset;
    ctr.w = (unsigned int)(offset >> 32);
    return philox4x32_10(ctr, (unsigned int)seed, (unsigned int)(seed >> 32));
}

extern "C" __global__ void random_uniform(float* __restrict__ out, long long n,
                                          const unsigned long long* __restrict__ state)
{
    const long long nblocks = (n + 3) / 4;
    for (long long g = (long long)blockIdx.x * blockDim.x + threadIdx.x; g < nblocks;
         g += (long long)blockDim.x * gridDim.x) {
        const FcU4 r = fc_philox_block((unsigned long long)g, state);
        const long long i = g * 4;
        out[i] = fc_u01(r.x);
        if (i + 1 < n) out[i + 1] = fc_u01(r.y);
        if (i + 2 < n) out[i + 2] = fc_u01(r.z);
        if (i + 3 < n) out[i + 3] = fc_u01(r.w);
    }
}

extern "C" __global__ void rng_advance(unsigned long long* state)
{
    if (blockIdx.x == 0 && threadIdx.x == 0) state[1] += 1ull;
}
