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

// Unfold nb images. x points at channel 0 of the group in image 0; images are
// x_img_stride floats apart, channels H*W apart. Padding reads as zero.
// OpenMP over (image, row) pairs; call outside any parallel region.
void im2col(const float* x, index_t nb, index_t x_img_stride, const ConvGeom& g, float* col,
            ColLayout layout);

// The adjoint: dx = sum of the column entries that im2col copied from each
// pixel. Each (image, channel) plane is owned by one thread, zeroed, then
// accumulated, so dx is written (not added to).
void col2im(const float* col, index_t nb, index_t x_img_stride, const ConvGeom& g, float* dx,
            ColLayout layout);

// Check the convolution arguments and compute the output size (PyTorch's
// floor rule); throws ValueError naming `fn` when they do not fit.
ConvGeom make_geom(const char* fn, index_t C, index_t H, index_t W, index_t KH, index_t KW,
                   const Pair& stride, const Pair& padding, const Pair& dilation);

}  // namespace fc
