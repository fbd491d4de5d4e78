/* Max pooling one plane at a time, for kernels that pool values they make
 * themselves (batchnorm.cpp's batch norm + max pool): the windows, ties, NaN
 * and indices of max_pool2d_forward (pool.cpp), which pools with it too.
 */
#pragma once

#include <cstdint>
#include <vector>

#include "common.h"

namespace fc {

struct MaxPoolPlanes {
    index_t H, W, OH, OW, KH, KW, SH, SW, PH, PW, DH, DW;
    index_t inside_lo, inside_hi;  // output columns whose every tap lies inside the input
    void (*plane)(const MaxPoolPlanes&, const float*, float*, std::int32_t*);
    // y and idx (OH x OW) of the plane x (H x W).
    void operator()(const float* x, float* y, std::int32_t* idx) const { plane(*this, x, y, idx); }
};

// The pooling of x's planes (x_shape (N, C, H, W)), or an error naming fn and the argument.
MaxPoolPlanes max_pool_planes(const char* fn, const std::vector<index_t>& x_shape, const Pair& kernel,
                              const Pair& stride, const Pair& padding, bool ceil_mode, const Pair& dilation);

// dx's plane (H*W values, zeroed first) from dy's (OHW values) through the argmax indices;
// false (and the bad index left out) if an index lies outside the plane.
bool max_unpool_plane(const float* dy, const std::int32_t* idx, index_t OHW, float* dx, index_t HW);

}  // namespace fc
