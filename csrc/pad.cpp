/* Padding in every mode (constant, reflect, replicate, circular; negative
 * constant amounts crop) as one gather through per-dim index tables.
 *
 * What: for each dim d of x, index[d] is None (the dim is kept as it is) or an
 * int64 table of the output's length along d: output position o reads input
 * position index[d][o], or is `value` when that is -1. The tables carry the
 * mode (fastconv/ops/pad.py builds them), so one kernel serves every mode:
 *   forward   y[o_0, ..., o_k] = x[index_0[o_0], ..., index_k[o_k]]  (value if any is -1)
 *   backward  dx[i] = sum of dy over the outputs that read input position i
 * Along the last dim the longest run of consecutive sources (the unpadded
 * interior) is copied or added as a block; only the border goes through the table.
 * Layout: any rank, C-contiguous float32; the work is done in rows along the last dim.
 * Threads: forward, OpenMP over output rows. Backward, over blocks of the
 * leading dims that no table touches: each thread owns whole dx blocks and
 * scatters into them in order, so no two threads add to one element and the
 * result is the same on every run.
 * Gradients: dx is written (returned new).
 */
#include <algorithm>
#include <cstdint>
#include <cstring>
#include <optional>

#include "kernels.h"

namespace fc {

namespace {

struct PadPlan {
    int nd = 0;
    std::vector<index_t> in, out, in_stride;
    std::vector<const std::int64_t*> table;  // nullptr: the dim is kept
    // Last dim: outputs [lo, hi) read inputs o - shift (a contiguous run).
    index_t lo = 0, hi = 0, shift = 0;

    index_t source(int d, index_t o) const { return table[d] ? table[d][o] : o; }
};

PadPlan make_plan(const char* fn, const std::vector<index_t>& in_shape,
                  const std::vector<std::optional<py::array>>& index) {
    PadPlan p;
    p.nd = static_cast<int>(in_shape.size());
    require(p.nd >= 1, fn, ": x must have at least one dim");
    require(index.size() == in_shape.size(), fn, ": index must have one entry per dim of x ",
            shape_str(in_shape), ", got ", index.size());
    p.in = in_shape;
    p.out.resize(p.nd);
    p.table.assign(p.nd, nullptr);
    for (int d = 0; d < p.nd; ++d) {
        require(in_shape[d] >= 0, fn, ": negative size in shape ", shape_str(in_shape));
        if (!index[d]) {
            p.out[d] = in_shape[d];
            continue;
        }
        const py::array& t = *index[d];
        const std::int64_t* T = int_data<std::int64_t>(t, fn, "index", "int64");
        require(t.ndim() == 1, fn, ": index[", d, "] must be 1-D, got shape ", shape_str(t));
        p.out[d] = t.shape(0);
        for (index_t o = 0; o < p.out[d]; ++o)  // guards every read and write below
            require(T[o] >= -1 && T[o] < in_shape[d], fn, ": index[", d, "][", o, "] = ", T[o],
                    " is outside [-1, ", in_shape[d], ") for x of shape ", shape_str(in_shape));
        p.table[d] = T;
    }
    p.in_stride.assign(p.nd, 1);
    for (int d = p.nd - 2; d >= 0; --d) p.in_stride[d] = p.in_stride[d + 1] * p.in[d + 1];
    // the longest run of consecutive sources along the last dim
    const int L = p.nd - 1;
    for (index_t o = 0; o < p.out[L];) {
        const index_t t = p.source(L, o);
        index_t e = o + 1;
        if (t >= 0)
            while (e < p.out[L] && p.source(L, e) == t + (e - o)) ++e;
        if (t >= 0 && e - o > p.hi - p.lo) {
            p.lo = o;
            p.hi = e;
            p.shift = o - t;
        }
        o = e;
    }
    return p;
}

index_t product(const std::vector<index_t>& s, int begin, int end) {
    index_t n = 1;
    for (int d = begin; d < end; ++d) n *= s[d];
    return n;
}

// Offset in x of the input row that output row `row` reads (dims [begin, nd-1) of
// the output decoded from `row`), or -1 when it reads `value`.
index_t source_row(const PadPlan& p, int begin, index_t row) {
    index_t off = 0;
    for (int d = p.nd - 2; d >= begin; --d) {
        const index_t o = row % p.out[d];
        row /= p.out[d];
        const index_t t = p.source(d, o);
        if (t < 0) return -1;
        off += t * p.in_stride[d];
    }
    return off;
}

}  // namespace

py::array pad_forward(const py::array& x, const std::vector<std::optional<py::array>>& index,
                      float value) {
    const char* fn = "pad_forward";
    const float* X = float_data(x, fn, "x");
    const PadPlan p = make_plan(fn, shape_of(x), index);
    auto y = new_float(p.out);
    float* Y = mut(y);
    {
        py::gil_scoped_release nogil;
        const int L = p.nd - 1;
        const index_t OW = p.out[L], rows = product(p.out, 0, L);
        const std::int64_t* T = p.table[L];
#pragma omp parallel for schedule(static) if (rows * OW > kParallelMin)
        for (index_t r = 0; r < rows; ++r) {
            float* yr = Y + r * OW;
            const index_t src = source_row(p, 0, r);
            if (src < 0) {
                std::fill(yr, yr + OW, value);
                continue;
            }
            const float* xr = X + src;
            for (index_t o = 0; o < p.lo; ++o) yr[o] = T[o] >= 0 ? xr[T[o]] : value;
            if (p.hi > p.lo) std::memcpy(yr + p.lo, xr + p.lo - p.shift, (p.hi - p.lo) * 4);
            for (index_t o = p.hi; o < OW; ++o) yr[o] = T[o] >= 0 ? xr[T[o]] : value;
        }
    }
    return std::move(y);
}

py::array pad_backward(const py::array& dy, const std::vector<index_t>& x_shape,
                       const std::vector<std::optional<py::array>>& index) {
    const char* fn = "pad_backward";
    const float* DY = float_data(dy, fn, "dy");
    const PadPlan p = make_plan(fn, x_shape, index);
    require_shape(dy, p.out, fn, "dy");
    auto dx = new_float(x_shape);
    float* DX = mut(dx);
    {
        py::gil_scoped_release nogil;
        const int L = p.nd - 1;
        // Blocks: the leading dims that no table touches; dx blocks never overlap.
        int first = 0;
        while (first < L && !p.table[first]) ++first;
        const index_t blocks = product(p.in, 0, first);
        const index_t dx_block = product(p.in, first, p.nd);
        const index_t dy_rows = product(p.out, first, L), OW = p.out[L];
        const std::int64_t* T = p.table[L];
#pragma omp parallel for schedule(static) if (blocks * dx_block > kParallelMin)
        for (index_t b = 0; b < blocks; ++b) {
            float* d = DX + b * dx_block;
            std::fill(d, d + dx_block, 0.f);
            for (index_t r = 0; r < dy_rows; ++r) {
                const index_t src = source_row(p, first, r);
                if (src < 0) continue;
                const float* g = DY + (b * dy_rows + r) * OW;
                float* dr = d + src;
                for (index_t o = 0; o < p.lo; ++o)
                    if (T[o] >= 0) dr[T[o]] += g[o];
                for (index_t o = p.lo; o < p.hi; ++o) dr[o - p.shift] += g[o];
                for (index_t o = p.hi; o < OW; ++o)
                    if (T[o] >= 0) dr[T[o]] += g[o];
            }
        }
    }
    return std::move(dx);
}

}  // namespace fc
