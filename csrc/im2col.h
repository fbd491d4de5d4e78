/* im2col / col2im on raw pointers, shared by the convolution kernels. */
#pragma once

#include "common.h"

namespace fc {

// Geometry of one convolution (or of the im2col window).
struct ConvGeom {
    index_t C, H, W;        // input channels handled (one group) and plane size
    index_t KH, KW;         // kernel
    index_t SH, SW;         // stride
    index_t PH, PW;         // zero padding
    index_t DH, DW;         // dilation
    index_t OH, OW;         // output plane
    index_t rows() const { return C * KH * KW; }
    index_t plane() const { return OH * OW; }
};

// Where the columns of image i start and how far apart the rows are:
//   col[(c*KH + kh)*KW + kw][oh*OW + ow] lives at col + i*img_offset + row*row_stride + oh*OW + ow.
// [rows, nb*OH*OW] (all images side by side):  img_offset = OH*OW,       row_stride = nb*OH*OW
// [nb, rows, OH*OW] (one block per image):     img_offset = rows*OH*OW,  row_stride = OH*OW
struct ColLayout {
    index_t img_offset, row_stride;
};

// The columns of a convolution GEMM: column j = n * OH*OW + oh*OW + ow is
// output pixel (oh, ow) of image n, and row (c*KH + kh)*KW + kw holds
// x[n][c][oh*SH - PH + kh*DH][ow*SW - PW + kw*DW] (0 in the padding). With a
// 1x1 geometry (stride 1, no padding) that is just the [C, H*W] matrix of
// each image.
struct Columns {
    const float* x;      // channel 0 of the group in image 0
    index_t img_stride;  // floats between images
    ConvGeom g;
};

// Copy rows [r0, r1) of columns [j0, j0 + n) into dst, row r at dst + (r - r0) * ld,
// without forming the rest of the matrix: the GEMM tile packer and the
// weight gradient's per-chunk columns. Single-threaded; no bounds are crossed
// for any r1 <= rows, j0 + n <= N * OH*OW.
void pack_columns(const Columns& src, index_t r0, index_t r1, index_t j0, index_t n, float* dst,
                  index_t ld);

// The adjoint: dx = sum of the column entries that were copied from each
// pixel. Each (image, channel) plane is owned by one thread, zeroed, then
// accumulated, so dx is written (not added to).
void col2im(const float* col, index_t nb, index_t x_img_stride, const ConvGeom& g, float* dx,
            ColLayout layout);

// Check the convolution arguments and compute the output size (PyTorch's
// floor rule); throws ValueError naming `fn` when they do not fit.
ConvGeom make_geom(const char* fn, index_t C, index_t H, index_t W, index_t KH, index_t KW,
                   const Pair& stride, const Pair& padding, const Pair& dilation);

}  // namespace fc
