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
//
// How the work maps onto threads and blocks
//   One pass over the channels per pixel with a running window sum: a thread owns one pixel
//   (n, h, w) and a run of `seg` consecutive channels [c0, c0 + seg). It fills the window sum of
//   c0 once (at most size loads) and then slides: each further channel adds the square
//   entering the window and subtracts the one leaving it, so the cost per element is O(1)
//   whatever the size, never a loop per element per window. The Python side picks seg so that
//   there are enough threads to fill the GPU (seg = C when N*H*W alone is enough).
//   Thread index i = (s * N + n) * HW + p with the pixel fastest, so a warp's loads and stores
//   of one channel are one coalesced segment. 1-D grid of 256-thread blocks, grid-stride loop.
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=). LRN has no parameters.

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
        // Seed with j in [c0 - lo - 1, c0 + hi - 1]: the first slide below then adds c0 + hi and
        // removes c0 - lo - 1, leaving exactly the window [c0 - lo, c0 + hi] of channel c0.
        float acc = 0.0f;
        for (int j = max(c0 - lo - 1, 0); j < min(c0 + hi, C); ++j) {
            const float v = x[base + (long long)j * HW];
            acc += v * v;
        }
        for (int c = c0; c < c1; ++c) {
            const int jin = c + hi;
            if (jin < C) {
                const float v = x[base + (long long)jin * HW];
                acc += v * v;
            }
            const int jout = c - lo - 1;
            if (jout >= 0) {
                const float v = x[base + (long long)jout * HW];
                acc -= v * v;
            }
            const float sc = k + a_over_n * fmaxf(acc, 0.0f);
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
    // backward window of c: j in [c - hi, c + lo] (forward window mirrored)
    const int lo = (size - 1) / 2;
    const int hi = size / 2;
    const float coef = 2.0f * alpha * beta / (float)size;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % HW;
        long long t = i / HW;
        const int n = (int)(t % N);
        const int s = (int)(t / N);
        const int c0 = s * seg;
        const int c1 = min(c0 + seg, C);
        const long long base = (long long)n * C * HW + p;
        float acc = 0.0f;   // running sum of r[j] = dy[j] * y[j] / scale[j], seeded as above
        for (int j = max(c0 - lo - 1, 0); j < min(c0 + hi, C); ++j) {
            const long long e = base + (long long)j * HW;
            acc += dy[e] * y[e] / scale[e];
        }
        for (int c = c0; c < c1; ++c) {
            const int jin = c + hi;
            if (jin < C) {
                const long long e = base + (long long)jin * HW;
                acc += dy[e] * y[e] / scale[e];
            }
            const int jout = c - lo - 1;
            if (jout >= 0) {
                const long long e = base + (long long)jout * HW;
                acc -= dy[e] * y[e] / scale[e];
            }
            const long long e = base + (long long)c * HW;
            dx[e] = dy[e] * powf(scale[e], -beta) - coef * x[e] * acc;
        }
    }
}
