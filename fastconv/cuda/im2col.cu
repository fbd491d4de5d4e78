// im2col.cu: the data movement around the convolution GEMMs (the CPU forms its columns in
// csrc/conv_columns.cpp).
//
// What it computes
//   im2col_forward   x (B, C, H, W) -> col (C*KH*KW, B, OH*OW):
//            col[(c*KH + kh)*KW + kw][b][oh*OW + ow]
//            = x[b][c][oh*SH - PH + kh*DH][ow*SW - PW + kw*DW], 0 where that lands in padding.
//            The batch sits between the patch row and the output pixel so that one GEMM with
//            K = B*OH*OW gives the weight gradient, and a strided-batched GEMM (one matrix per
//            image, leading dimension B*OH*OW) writes the forward output straight into NCHW.
//   col2im_backward   the adjoint: dx[b][c][h][w] = sum of every col entry that im2col_forward
//            read from it.
//   conv2d_forward_to_nchw   (C, B, P) -> (B, C, P) for a chunk of the batch, adding an
//            optional per-channel bias on the way (the forward's single-GEMM route).
//   conv2d_backward_to_cnhw   (B, C, P) -> (C, B, P): dy for the weight-gradient GEMM, and x
//            for the 1x1 weight gradient.
//   All arrays are float32, C-contiguous. B is the size of the chunk of the batch the Python side
//   hands over (it bounds the column buffer); x / dx point at the first image of the chunk.
//
// How the work maps onto threads and blocks
//   1-D grids of 256-thread blocks with grid-stride loops, so any grid size is correct.
//   im2col_forward: one thread per (c, b, oh, ow); it writes its KH*KW column entries.
//           Neighbouring threads own neighbouring ow, so every store of a warp is one
//           coalesced segment.
//   col2im_backward: one thread per input element (b, c, h, w); it gathers the KH*KW (or
//           fewer) column entries that came from it and writes dx once. No atomics: the result
//           is deterministic and identical from run to run.
//   transposes: one thread per element, the pixel index fastest on both sides (coalesced).
//
// Gradient convention (whole backend): activation gradients (dx here) are written (=);
// parameter gradients accumulate (+=) into the buffer they are given. This file only moves data.

extern "C" __global__ void im2col_forward(const float* __restrict__ x, float* __restrict__ col,
                                          int B, int C, int H, int W, int KH, int KW, int SH,
                                          int SW, int PH, int PW, int DH, int DW, int OH, int OW)
{
    const long long P = (long long)OH * OW;
    const long long total = (long long)C * B * P;
    const int KK = KH * KW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int ow = (int)(i % OW);
        long long t = i / OW;
        const int oh = (int)(t % OH);
        t /= OH;
        const int b = (int)(t % B);
        const int c = (int)(t / B);
        const float* xp = x + ((long long)b * C + c) * H * W;
        // col row (c*KK + kidx), column (b*P + oh*OW + ow); rows are B*P apart.
        float* cp = col + ((long long)c * KK * B + b) * P + (long long)oh * OW + ow;
        const long long row_stride = (long long)B * P;
        const int h0 = oh * SH - PH;
        const int w0 = ow * SW - PW;
        for (int kh = 0; kh < KH; ++kh) {
            const int h = h0 + kh * DH;
            const bool hin = (h >= 0) && (h < H);
            for (int kw = 0; kw < KW; ++kw) {
                const int w = w0 + kw * DW;
                float v = 0.0f;
                if (hin && w >= 0 && w < W) v = xp[(long long)h * W + w];
                *cp = v;
                cp += row_stride;
            }
        }
    }
}

extern "C" __global__ void col2im_backward(const float* __restrict__ col, float* __restrict__ dx,
                                           int B, int C, int H, int W, int KH, int KW, int SH,
                                           int SW, int PH, int PW, int DH, int DW, int OH, int OW)
{
    const long long P = (long long)OH * OW;
    const long long total = (long long)B * C * H * W;
    const int KK = KH * KW;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const int w = (int)(i % W);
        long long t = i / W;
        const int h = (int)(t % H);
        t /= H;
        const int c = (int)(t % C);
        const int b = (int)(t / C);
        float acc = 0.0f;
        for (int kh = 0; kh < KH; ++kh) {
            const int hh = h + PH - kh * DH;          // = oh * SH when (oh, kh) reads row h
            if (hh < 0) break;                        // hh only decreases with kh
            if (hh % SH != 0) continue;
            const int oh = hh / SH;
            if (oh >= OH) continue;
            for (int kw = 0; kw < KW; ++kw) {
                const int ww = w + PW - kw * DW;
                if (ww < 0) break;
                if (ww % SW != 0) continue;
                const int ow = ww / SW;
                if (ow >= OW) continue;
                const long long row = (long long)c * KK + kh * KW + kw;
                acc += col[(row * B + b) * P + (long long)oh * OW + ow];
            }
        }
        dx[i] = acc;
    }
}

// x (B, C, P) -> out (C, B, P)
extern "C" __global__ void conv2d_backward_to_cnhw(const float* __restrict__ x,
                                                   float* __restrict__ out, int B, int C,
                                                   long long P)
{
    const long long total = (long long)B * C * P;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % P;
        long long t = i / P;
        const int b = (int)(t % B);
        const int c = (int)(t / B);
        out[i] = x[((long long)b * C + c) * P + p];
    }
}

// tmp (C, B, P) -> y (B, C, P), adding bias[c] when bias is not null.
extern "C" __global__ void conv2d_forward_to_nchw(const float* __restrict__ tmp,
                                                  const float* __restrict__ bias,
                                                  float* __restrict__ y, int B, int C, long long P)
{
    const long long total = (long long)B * C * P;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        const long long p = i % P;
        long long t = i / P;
        const int c = (int)(t % C);
        const int b = (int)(t / C);
        float v = tmp[((long long)c * B + b) * P + p];
        if (bias != 0) v += bias[c];
        y[i] = v;
    }
}
