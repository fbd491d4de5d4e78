// pad.cu: padding in every mode as a gather through per-dim index tables (CUDA twin of
// csrc/pad.cpp). The tables carry the mode (constant, reflect, replicate, circular; negative
// constant amounts crop); fastconv/ops/pad.py builds them.
//
// What it computes (any rank nd <= FC_PAD_MAX_DIMS, C-contiguous float32)
//   pad_forward   y[o_0, ..., o_k] = x[t_0(o_0), ..., t_k(o_k)], or value if any t_d(o_d) = -1;
//                 t_d is dim d's table (the identity for a dim that is kept).
//   pad_backward  dx[i_0, ..., i_k] = sum of dy over every output whose sources are
//                 (i_0, ..., i_k): per dim, the list of output positions that read i_d (the
//                 inverse of t_d, built on the host), walked as an odometer over the dims.
//   plan (int64, on the device): in_shape[nd], out_shape[nd], then per dim an offset into the
//   plan (-1 for a kept dim): forward, the table t_d (out_shape[d] entries); backward, the
//   start of dim d's list for each input position (in_shape[d] + 1 entries, absolute offsets
//   into the plan of the output positions, which follow).
//
// How the work maps onto threads and blocks
//   1-D grid of 256-thread blocks with a grid-stride loop: the forward has one thread per
//   output element, the backward one thread per input element that gathers (no atomics: the
//   same dx on every run).
//
// Gradient convention (whole backend): activation gradients (dx) are written (=); parameter
// gradients accumulate (+=). Padding has no parameters.

#define FC_PAD_MAX_DIMS 8

extern "C" __global__ void pad_forward(const float* __restrict__ x, float* __restrict__ y,
                                       const long long* __restrict__ plan, int nd,
                                       long long total, float value)
{
    const long long* in_shape = plan;
    const long long* out_shape = plan + nd;
    const long long* table = plan + 2 * nd;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        long long rest = i, src = 0, stride = 1;
        bool inside = true;
        for (int d = nd - 1; d >= 0; --d) {
            const long long o = rest % out_shape[d];
            rest /= out_shape[d];
            const long long t = table[d] < 0 ? o : plan[table[d] + o];
            inside = inside && t >= 0;
            src += t * stride;
            stride *= in_shape[d];
        }
        y[i] = inside ? x[src] : value;
    }
}

extern "C" __global__ void pad_backward(const float* __restrict__ dy, float* __restrict__ dx,
                                        const long long* __restrict__ plan, int nd,
                                        long long total)
{
    const long long* in_shape = plan;
    const long long* out_shape = plan + nd;
    const long long* starts = plan + 2 * nd;
    for (long long i = (long long)blockIdx.x * blockDim.x + threadIdx.x; i < total;
         i += (long long)blockDim.x * gridDim.x) {
        // per dim: the range [beg, end) of list entries (a kept dim: the position itself)
        long long beg[FC_PAD_MAX_DIMS], end[FC_PAD_MAX_DIMS], cur[FC_PAD_MAX_DIMS];
        long long ostride[FC_PAD_MAX_DIMS];
        long long rest = i, stride = 1;
        bool empty = false;
        for (int d = nd - 1; d >= 0; --d) {
            const long long p = rest % in_shape[d];
            rest /= in_shape[d];
            if (starts[d] < 0) {
                beg[d] = p;
                end[d] = p + 1;
            } else {
                beg[d] = plan[starts[d] + p];
                end[d] = plan[starts[d] + p + 1];
            }
            empty = empty || beg[d] == end[d];
            cur[d] = beg[d];
            ostride[d] = stride;
            stride *= out_shape[d];
        }
        float acc = 0.0f;
        while (!empty) {
            long long off = 0;
            for (int d = 0; d < nd; ++d)
                off += (starts[d] < 0 ? cur[d] : plan[cur[d]]) * ostride[d];
            acc += dy[off];
            int d = nd - 1;   // next combination, the last dim fastest
            for (; d >= 0; --d) {
                if (++cur[d] < end[d]) break;
                cur[d] = beg[d];
            }
            if (d < 0) break;
        }
        dx[i] = acc;
    }
}
