/* The shape of one 2-D convolution call, checked once for every convolution entry
 * point (conv.cpp, conv_bf16.cpp): batch, channels, groups and the per-group
 * geometry of conv_columns.h.
 */
#pragma once

#include "conv_columns.h"

namespace fc {

struct Conv {
    index_t N, C, OC, G, Cg, OCg;
    ConvGeom g;  // per-group geometry: g.C == Cg
    index_t HW() const { return g.H * g.W; }
    index_t P() const { return g.plane(); }
    index_t rows() const { return g.rows(); }
    bool pointwise() const { return g.pointwise(); }
};

// x (N, C, H, W) and w (OC, C/groups, KH, KW) with their arguments, or an error naming fn.
Conv check_conv(const char* fn, const py::array& x, const py::array& w, const Pair& stride,
                const Pair& padding, const Pair& dilation, index_t groups);

}  // namespace fc
