// resize.cu: nearest and bilinear resizing of (N, C, H, W) float32 maps (CUDA twin of
// csrc/resize.cpp; interpolate / Upsample).
//
// What it computes
//   The source positions come in per-axis tables (fastconv/ops/upsample.py builds them with
//   PyTorch's rules): output row oh reads rows h0 = hi[oh] and h1 = min(h0 + 1, H - 1) with
//   weights 1 - hl[oh] and hl[oh]; columns likewise (wi, wl). linear = 0: nearest, y = x[h0, w0].
//   An axis that keeps its size (OH = H) is copied: h1 = h0, as in PyTorch, so that an inf or
//   NaN in the next row does not reach the output through its weight 0 (0 * inf = NaN).
//   interpolate_forward   y = (1 - lh) ((1 - lw) x[h0, w0] + lw x[h0, w1])
//                             + lh ((1 - lw) x[h1, w0] + lw x[h1, w1])
//   interpolate_backward  dx[h, w] = sum over the outputs that read (h, w) of dy times the
//                         weight they read it with. The outputs that read input row h lie in
//                         [h_lo[h], h_hi[h]) (the tables are monotone; the host finds the
//                         ranges), columns likewise; an output in the range that does not read
//                         h (a kept size) adds nothing, not 0 * dy.
//
// How the work maps onto threads and blocks
//   1-D grid of 256-thread blocks with a grid-stride loop: the forward has one thread per
//   output element, the backward one thread per input element that gathers from its ranges
//   (no atomics: the same dx on every run).
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=). Resizing has no parameters.

// The second source position of output position o: i0 + 1 clipped, or i0 where the axis keeps
// its size (out == size).
__device__ __forceinline__ int fc_second_tap(int a, int size, int out)
{
    return out == size ? a : min(a + 1, size - 1);
}

// Whether output position o (sources i0[o] and its second tap, weight l[o] of the second)
// reads input position p, and with what weight (*w).
__device__ __forceinline__ bool fc_tap_weight(const long long* __restrict__ i0,
                                              const float* __restrict__ l, int linear, int size,
                                              int out, int o, int p, float* w)
{
    const int a = (int)i0[o];
    if (!linear) {
        *w = 1.0f;
        return a == p;
    }
    const int b = fc_second_tap(a, size, out);
    *w = (a == p ? 1.0f - l[o] : 0.0f) + (b == p ? l[o] : 0.0f);
    return a == p || b == p;
}

extern "C" __global__ void interpolate_forward(const float* __restrict__ x, float* __restrict__ y,
                                               const long long* __restrict__ hi,
                                               const float* __restrict__ hl,
                                               const long long* __restrict__ wi,
                                               const float* __restrict__ wl, long long NC, int H,
                                               int W, int OH, int OW, int linear)
{
    const long long total = NC * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(i % OW);
        const long long t = i / OW;
        const int oh = (int)(t % OH);
        const float* xp = x + (t / OH) * H * W;
        const int h0 = (int)hi[oh], w0 = (int)wi[ow];
        if (!linear) {
            y[i] = xp[h0 * W + w0];
            continue;
        }
        const int h1 = fc_second_tap(h0, H, OH), w1 = fc_second_tap(w0, W, OW);
        const float lh = hl[oh], lw = wl[ow];
        y[i] = (1.0f - lh) * ((1.0f - lw) * xp[h0 * W + w0] + lw * xp[h0 * W + w1])
               + lh * ((1.0f - lw) * xp[h1 * W + w0] + lw * xp[h1 * W + w1]);
    }
}

extern "C" __global__ void interpolate_backward(const float* __restrict__ dy,
                                                float* __restrict__ dx,
                                                const long long* __restrict__ hi,
                                                const float* __restrict__ hl,
                                                const long long* __restrict__ wi,
                                                const float* __restrict__ wl,
                                                const long long* __restrict__ h_range,
                                                const long long* __restrict__ w_range,
                                                long long NC, int H, int W, int OH, int OW,
                                                int linear)
{
    const long long total = NC * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(i % W);
        const long long t = i / W;
        const int h = (int)(t % H);
        const float* g = dy + (t / H) * OH * OW;
        float acc = 0.0f;
        for (int oh = (int)h_range[2 * h]; oh < (int)h_range[2 * h + 1]; ++oh) {
            float a, b;
            if (!fc_tap_weight(hi, hl, linear, H, OH, oh, h, &a)) continue;
            float row = 0.0f;
            for (int ow = (int)w_range[2 * w]; ow < (int)w_range[2 * w + 1]; ++ow)
                if (fc_tap_weight(wi, wl, linear, W, OW, ow, w, &b)) row += b * g[oh * OW + ow];
            acc += a * row;
        }
        dx[i] = acc;
    }
}
