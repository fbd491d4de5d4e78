// lrn.cu: local response normalisation across channels (CUDA twin of csrc/lrn.cpp), PyTorch /
// Caffe semantics (alpha is divided by the window size).
//
// What it computes, for x (N, C, H, W) float32, per pixel p = (h, w):
//   scale[c] = k + alpha / size * sum_{j = c - size/2}^{c + (size-1)/2} x[j]^2   (j clipped to [0, C))
//   y[c]     = x[c] * scale[c]^-beta
//   backward (y_j = x_j s_j^-beta):
//   dx[c]    = dy[c] * scale[c]^-beta
//              - 2 * alpha * beta / size * x[c] * sum_{j = c - (size-1)/2}^{c + size/2} dy[j] * y[j] / scale[j]
//   (the backward window is the forward one mirrored: c is in window(j) iff j is in it.)
//   TensorFlow's depth_radius r, bias, alpha_tf map to size = 2r + 1, k = bias,
//   alpha = alpha_tf * size.
//   x^2 is the float32 square (inf past float's range, as PyTorch forms it); the sums are in
//   double. Non-finite values follow PyTorch's autograd of x / (k + alpha * avg(x^2))^beta:
//   where scale = inf, dy * y / scale is 0 for beta <= 1 but NaN for beta > 1
//   (0 * inf^(beta-1)), and beta = 0 has no such term (pow's gradient at exponent 0 is 0):
//   dx = dy + 0 * x.
//
// How the work maps onto threads and blocks
//   One pass over the channels per pixel with a running window sum: a thread owns one pixel
//   (n, h, w) and a run of `seg` consecutive channels [c0, c0 + seg). It sums the window of c0
//   directly (at most size loads) and then slides: each further channel adds the term
//   entering the window and subtracts the one leaving it, so the cost per element is O(1)
//   whatever the size. Each output must depend on its own window only, so the thread sums the
//   window again, directly, when the running sum is NaN (an inf or NaN has left the window:
//   inf - inf, or one is in it) or has fallen below 1/FC_LRN_DROP of the largest value it held
//   since (a large value has left, and what it rounded away would show). On finite data of
//   one scale that never happens. The Python side picks seg so that there are enough
//   threads to fill the GPU (seg = C when N*H*W alone is enough).
//   Thread index i = (s * N + n) * HW + p with the pixel fastest, so a warp's loads and stores
//   of one channel are one coalesced segment. 1-D grid of 256-thread blocks, grid-stride loop.
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=). LRN has no parameters.

// A running sum below 1/FC_LRN_DROP of its peak since it was last summed directly is summed
// again: its rounding error (about steps * 2^-53 * peak) stays far below float precision.
#define FC_LRN_DROP 65536.0

__device__ __forceinline__ bool fc_lrn_stale(double sum, double peak)
{
    return !(peak <= FC_LRN_DROP * sum);   // true for NaN too
}

// x[j]^2 in float (as PyTorch forms it), for j in [0, C); 0 outside.
__device__ __forceinline__ double fc_lrn_square(const float* __restrict__ x, long long base,
                                                long long HW, int C, int j)
{
    if (j < 0 || j >= C) return 0.0;
    const float v = x[base + (long long)j * HW];
    return (double)(v * v);
}

// dy[j] * y[j] / scale[j] for j in [0, C) (NaN where scale = inf and beta > 1, `steep`); 0
// outside.
__device__ __forceinline__ double fc_lrn_term(const float* __restrict__ y,
                                              const float* __restrict__ scale,
                                              const float* __restrict__ dy, long long base,
                                              long long HW, int C, int j, bool steep)
{
    if (j < 0 || j >= C) return 0.0;
    const long long e = base + (long long)j * HW;
    const float s = scale[e];
    if (steep && s == __int_as_float(0x7f800000)) return (double)__int_as_float(0x7fc00000);
    return (double)(dy[e] * y[e] / s);
}

extern "C" __global__ void lrn_forward(const float* __restrict__ x, float* __restrict__ y,
                                       float* __restrict__ scale, int N, int C, long long HW,
                                       int size, float alpha, float beta, float k, int seg)
{
    const int nseg = (C + seg - 1) / seg;
    const long long total = (long long)nseg * N * HW;
    const int lo = size / 2;         // channels below c in the window
    const int hi = (size - 1) / 2;   // channels above c in the window
    const float a_over_n = alpha / (float)size;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % HW;
        long long t = i / HW;
        const int n = (int)(t % N);
        const int s = (int)(t / N);
        const int c0 = s * seg;
        const int c1 = min(c0 + seg, C);
        const long long base = (long long)n * C * HW + p;   // element (n, c, p) at base + c*HW
        double acc = 0.0, peak = 0.0;
        for (int c = c0; c < c1; ++c) {
            double sum = acc + fc_lrn_square(x, base, HW, C, c + hi);  // enters the window
            const double top = fmax(peak, sum);
            sum -= fc_lrn_square(x, base, HW, C, c - lo - 1);         // leaves it
            if (c == c0 || fc_lrn_stale(sum, top)) {                   // the window, directly
                sum = 0.0;
                for (int j = max(c - lo, 0); j <= min(c + hi, C - 1); ++j)
                    sum += fc_lrn_square(x, base, HW, C, j);
                peak = sum;
            } else {
                peak = top;
            }
            acc = sum;
            const float sc = k + a_over_n * (float)acc;
            const long long e = base + (long long)c * HW;
            scale[e] = sc;
            y[e] = x[e] * powf(sc, -beta);
        }
    }
}

extern "C" __global__ void lrn_backward(const float* __restrict__ x, const float* __restrict__ y,
                                        const float* __restrict__ scale,
                                        const float* __restrict__ dy, float* __restrict__ dx,
                                        int N, int C, long long HW, int size, float alpha,
                                        float beta, int seg)
{
    const int nseg = (C + seg - 1) / seg;
    const long long total = (long long)nseg * N * HW;
    // backward window of c: j in [c - lo, c + hi] (forward window mirrored)
    const int lo = (size - 1) / 2;
    const int hi = size / 2;
    const float coef = 2.0f * alpha * beta / (float)size;
    const bool steep = beta > 1.0f;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % HW;
        long long t = i / HW;
        const int n = (int)(t % N);
        const int s = (int)(t / N);
        const int c0 = s * seg;
        const int c1 = min(c0 + seg, C);
        const long long base = (long long)n * C * HW + p;
        if (beta == 0.0f) {   // y = x: dx = dy, NaN where x is not finite (as 0 * x)
            for (int c = c0; c < c1; ++c) {
                const long long e = base + (long long)c * HW;
                dx[e] = dy[e] + 0.0f * x[e];
            }
            continue;
        }
        // running sum of r[j] = dy[j] * y[j] / scale[j]; the sum of |r| (mag) tells when it
        // must be summed again: its rounding error follows the size of the terms, not its own
        double acc = 0.0, mag = 0.0, peak = 0.0;
        for (int c = c0; c < c1; ++c) {
            const double rin = fc_lrn_term(y, scale, dy, base, HW, C, c + hi, steep);
            const double rout = fc_lrn_term(y, scale, dy, base, HW, C, c - lo - 1, steep);
            double m = mag + fabs(rin);
            const double top = fmax(peak, m);
            m -= fabs(rout);
            if (c == c0 || fc_lrn_stale(m, top)) {
                acc = m = 0.0;
                for (int j = max(c - lo, 0); j <= min(c + hi, C - 1); ++j) {
                    const double r = fc_lrn_term(y, scale, dy, base, HW, C, j, steep);
                    acc += r;
                    m += fabs(r);
                }
                peak = m;
            } else {
                acc += rin - rout;
                peak = top;
            }
            mag = m;
            const long long e = base + (long long)c * HW;
            dx[e] = dy[e] * powf(scale[e], -beta) - coef * x[e] * (float)acc;
        }
    }
}
