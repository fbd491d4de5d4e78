// pool.cu: max, average and global average pooling over NCHW float32 (CUDA twin of
// csrc/pool.cpp), PyTorch semantics.
//
// What it computes
//   Every (n, c) plane is pooled on its own, so the kernels see x as NC planes of H x W.
//   A window starts at (oh*SH - PH, ow*SW - PW) and spans KH x KW taps, DH / DW apart
//   (dilation: max pooling only; 1 for average pooling).
//   max_pool2d_forward   y = max over the window's in-image elements; indices (int32) = the
//       flat offset h*W + w of the winner inside its input plane. Tie rule: the first maximum in
//       row-major scan order of the window wins (a later equal value does not replace it), as in
//       PyTorch and the CPU backend; padding never wins; a NaN wins and propagates (as in
//       PyTorch, the last NaN of the window gives the index).
//   max_pool2d_backward  dx[h, w] = sum of dy over the windows whose saved index is h*W + w.
//   adaptive_max_pool2d_forward / _backward   the same over PyTorch's adaptive windows: output
//       row oh covers input rows [oh*H/OH, ceil((oh+1)*H/OH)), columns likewise.
//   avg_pool2d_forward   PyTorch's divisor: with count_include_pad the window clipped to the
//       padded image (H + PH, W + PW), otherwise the window clipped to the image itself.
//   avg_pool2d_backward  dx[h, w] = sum over windows containing (h, w) of dy / divisor.
//   global_avg_pool2d_forward / _backward   kernel = the whole plane: y = mean of the plane,
//       dx = dy / (H*W) broadcast.
//   ceil_mode only changes OH/OW, which the Python side computes (fastconv/output_size.py);
//   the last window is then clipped here exactly as in PyTorch.
//
// How the work maps onto threads and blocks
//   Forward: one thread per output element (nc, oh, ow), 1-D grid of 256-thread blocks with a
//   grid-stride loop; neighbouring threads own neighbouring ow (coalesced stores, overlapping
//   loads served by L1).
//   Backward: one thread per input element (nc, h, w) that gathers from the (at most
//   ceil(span/SH) per axis, span = DH*(KH-1)+1) windows covering it and writes dx once. No
//   atomics, so the result is deterministic even with overlapping windows.
//   Global average pooling: one warp per plane (8 planes per 256-thread block), lanes stride
//   over the plane, then a shuffle reduction; the backward is one thread per input element.
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=). Pooling has no parameters.

#define FC_WARP 32   // lanes per warp: the shuffle reductions below assume all 32
#define FC_NEG_INF __int_as_float(0xff800000)

extern "C" __global__ void max_pool2d_forward(const float* __restrict__ x, float* __restrict__ y,
                                              int* __restrict__ indices, long long NC,
                                              int H, int W, int OH, int OW, int KH, int KW,
                                              int SH, int SW, int PH, int PW, int DH, int DW)
{
    const long long total = NC * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(i % OW);
        long long t = i / OW;
        const int oh = (int)(t % OH);
        const long long nc = t / OH;
        const float* xp = x + nc * H * W;
        // the first tap inside the input (PyTorch's index when every value is -inf)
        int hstart = oh * SH - PH;
        int wstart = ow * SW - PW;
        const int hend = min(hstart + (KH - 1) * DH + 1, H);
        const int wend = min(wstart + (KW - 1) * DW + 1, W);
        while (hstart < 0) hstart += DH;
        while (wstart < 0) wstart += DW;
        float best = FC_NEG_INF;
        // -1: a dilated window whose taps all miss the input (y stays -inf)
        int best_idx = hstart < H && wstart < W ? hstart * W + wstart : -1;
        for (int h = hstart; h < hend; h += DH) {
            for (int w = wstart; w < wend; w += DW) {
                const int idx = h * W + w;
                const float v = xp[idx];
                // strict '>' keeps the first maximum; (v != v) lets a NaN win, as PyTorch does.
                if (v > best || v != v) {
                    best = v;
                    best_idx = idx;
                }
            }
        }
        y[i] = best;
        indices[i] = best_idx;
    }
}

extern "C" __global__ void max_pool2d_backward(const float* __restrict__ dy,
                                               const int* __restrict__ indices,
                                               float* __restrict__ dx, long long NC,
                                               int H, int W, int OH, int OW, int KH, int KW,
                                               int SH, int SW, int PH, int PW, int DH, int DW)
{
    const int span_h = (KH - 1) * DH + 1, span_w = (KW - 1) * DW + 1;
    const long long total = NC * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(i % W);
        long long t = i / W;
        const int h = (int)(t % H);
        const long long nc = t / H;
        // windows oh with oh*SH - PH <= h < oh*SH - PH + span_h; a saved index equal to
        // (h, w) also means that h falls on one of the window's taps
        const int phstart = (h + PH < span_h) ? 0 : (h + PH - span_h) / SH + 1;
        const int phend = min((h + PH) / SH + 1, OH);
        const int pwstart = (w + PW < span_w) ? 0 : (w + PW - span_w) / SW + 1;
        const int pwend = min((w + PW) / SW + 1, OW);
        const int target = h * W + w;
        const float* dyp = dy + nc * OH * OW;
        const int* ip = indices + nc * OH * OW;
        float acc = 0.0f;
        for (int oh = phstart; oh < phend; ++oh) {
            for (int ow = pwstart; ow < pwend; ++ow) {
                const int o = oh * OW + ow;
                if (ip[o] == target) acc += dyp[o];
            }
        }
        dx[i] = acc;
    }
}

extern "C" __global__ void adaptive_max_pool2d_forward(const float* __restrict__ x,
                                                       float* __restrict__ y,
                                                       int* __restrict__ indices, long long NC,
                                                       int H, int W, int OH, int OW)
{
    const long long total = NC * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(i % OW);
        long long t = i / OW;
        const int oh = (int)(t % OH);
        const float* xp = x + (t / OH) * H * W;
        const int hstart = (int)((long long)oh * H / OH);
        const int hend = (int)(((long long)(oh + 1) * H + OH - 1) / OH);
        const int wstart = (int)((long long)ow * W / OW);
        const int wend = (int)(((long long)(ow + 1) * W + OW - 1) / OW);
        float best = FC_NEG_INF;
        int best_idx = hstart * W + wstart;
        for (int h = hstart; h < hend; ++h)
            for (int w = wstart; w < wend; ++w) {
                const float v = xp[h * W + w];
                if (v > best || v != v) {   // the first maximum; a NaN wins
                    best = v;
                    best_idx = h * W + w;
                }
            }
        y[i] = best;
        indices[i] = best_idx;
    }
}

extern "C" __global__ void adaptive_max_pool2d_backward(const float* __restrict__ dy,
                                                        const int* __restrict__ indices,
                                                        float* __restrict__ dx, long long NC,
                                                        int H, int W, int OH, int OW)
{
    const long long total = NC * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(i % W);
        long long t = i / W;
        const int h = (int)(t % H);
        const long long nc = t / H;
        // the windows that contain h: [floor(h*OH/H), ceil((h+1)*OH/H))
        const int ohs = (int)((long long)h * OH / H);
        const int ohe = (int)(((long long)(h + 1) * OH + H - 1) / H);
        const int ows = (int)((long long)w * OW / W);
        const int owe = (int)(((long long)(w + 1) * OW + W - 1) / W);
        const int target = h * W + w;
        const float* dyp = dy + nc * OH * OW;
        const int* ip = indices + nc * OH * OW;
        float acc = 0.0f;
        for (int oh = ohs; oh < ohe; ++oh)
            for (int ow = ows; ow < owe; ++ow) {
                const int o = oh * OW + ow;
                if (ip[o] == target) acc += dyp[o];
            }
        dx[i] = acc;
    }
}

extern "C" __global__ void avg_pool2d_forward(const float* __restrict__ x, float* __restrict__ y,
                                              long long NC, int H, int W, int OH, int OW,
                                              int KH, int KW, int SH, int SW, int PH, int PW,
                                              int count_include_pad)
{
    const long long total = NC * OH * OW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(i % OW);
        long long t = i / OW;
        const int oh = (int)(t % OH);
        const long long nc = t / OH;
        const float* xp = x + nc * H * W;
        int hstart = oh * SH - PH;
        int wstart = ow * SW - PW;
        int hend = min(hstart + KH, H + PH);
        int wend = min(wstart + KW, W + PW);
        const int pool_size = (hend - hstart) * (wend - wstart);
        hstart = max(hstart, 0);
        wstart = max(wstart, 0);
        hend = min(hend, H);
        wend = min(wend, W);
        float acc = 0.0f;
        for (int h = hstart; h < hend; ++h)
            for (int w = wstart; w < wend; ++w)
                acc += xp[h * W + w];
        const int divisor = count_include_pad ? pool_size : (hend - hstart) * (wend - wstart);
        y[i] = divisor > 0 ? acc / (float)divisor : 0.0f;
    }
}

extern "C" __global__ void avg_pool2d_backward(const float* __restrict__ dy,
                                               float* __restrict__ dx, long long NC,
                                               int H, int W, int OH, int OW, int KH, int KW,
                                               int SH, int SW, int PH, int PW,
                                               int count_include_pad)
{
    const long long total = NC * H * W;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(i % W);
        long long t = i / W;
        const int h = (int)(t % H);
        const long long nc = t / H;
        const int phstart = (h + PH < KH) ? 0 : (h + PH - KH) / SH + 1;
        const int phend = min((h + PH) / SH + 1, OH);
        const int pwstart = (w + PW < KW) ? 0 : (w + PW - KW) / SW + 1;
        const int pwend = min((w + PW) / SW + 1, OW);
        const float* dyp = dy + nc * OH * OW;
        float acc = 0.0f;
        for (int oh = phstart; oh < phend; ++oh) {
            for (int ow = pwstart; ow < pwend; ++ow) {
                int hstart = oh * SH - PH;
                int wstart = ow * SW - PW;
                int hend = min(hstart + KH, H + PH);
                int wend = min(wstart + KW, W + PW);
                const int pool_size = (hend - hstart) * (wend - wstart);
                hstart = max(hstart, 0);
                wstart = max(wstart, 0);
                hend = min(hend, H);
                wend = min(wend, W);
                const int divisor =
                    count_include_pad ? pool_size : (hend - hstart) * (wend - wstart);
                if (divisor > 0) acc += dyp[oh * OW + ow] / (float)divisor;
            }
        }
        dx[i] = acc;
    }
}

// y[nc] = mean of plane nc (HW elements). One warp per plane.
extern "C" __global__ void global_avg_pool2d_forward(const float* __restrict__ x,
                                                     float* __restrict__ y, long long NC,
                                                     long long HW)
{
    const int lane = threadIdx.x % FC_WARP;
    const long long warps_per_block = (blockDim.x + FC_WARP - 1) / FC_WARP;
    const long long warp0 = (long long)blockIdx.x * warps_per_block + threadIdx.x / FC_WARP;
    const long long warp_stride = (long long)gridDim.x * warps_per_block;
    for (long long nc = warp0; nc < NC; nc += warp_stride) {
        const float* xp = x + nc * HW;
        float acc = 0.0f;
        for (long long j = lane; j < HW; j += FC_WARP) acc += xp[j];
        for (int off = FC_WARP / 2; off > 0; off >>= 1)
            acc += __shfl_down_sync(0xffffffffu, acc, off);
        if (lane == 0) y[nc] = acc / (float)HW;
    }
}

extern "C" __global__ void global_avg_pool2d_backward(const float* __restrict__ dy,
                                                      float* __restrict__ dx, long long NC,
                                                      long long HW)
{
    const long long total = NC * HW;
    const float inv = 1.0f / (float)HW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        dx[i] = dy[i / HW] * inv;
    }
}
