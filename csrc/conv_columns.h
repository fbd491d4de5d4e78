/* The columns of a convolution's GEMM without the column matrix: the prepared
 * copy of x they are read from, panel packing, and the adjoint col2im
 * (conv_columns.cpp); shared by the convolution kernels. */
#pragma once

#include <vector>

#include "common.h"

namespace fc {

// Geometry of one convolution (per group: C counts one group's channels).
struct ConvGeom {
    index_t C, H, W;        // input channels handled (one group) and plane size
    index_t KH, KW;         // kernel
    index_t SH, SW;         // stride
    index_t PH, PW;         // zero padding
    index_t DH, DW;         // dilation
    index_t OH, OW;         // output plane
    index_t rows() const { return C * KH * KW; }
    index_t plane() const { return OH * OW; }
    // 1x1, stride 1, no padding: each image's [C, H*W] plane is its column matrix.
    bool pointwise() const { return KH == 1 && KW == 1 && SH == 1 && SW == 1 && PH == 0 && PW == 0; }
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
// each image, read as it is; any other geometry reads a prepared copy of x.
struct Columns {
    const float* x;      // channel 0 of the group in image 0 (or the prepared copy)
    index_t img_stride;  // floats between images
    ConvGeom g;
    // Set for a prepared copy: row r of output pixel (oh, ow) starts at
    // x + offset[r] + oh*SH*row_len + ow, and the pixels of an output row are adjacent.
    const index_t* offset = nullptr;
    index_t row_len = 0;
};

// The columns of nimg images of src in a form pack_columns reads: src itself
// for a 1x1 geometry, else a prepared copy of x in the calling thread's
// Slot::prepared_x, valid until the next call: each plane zero-padded (Hp = H +
// 2PH rows of Wp = W + 2PW), and each padded row split by column phase into
// SW runs of Wq = ceil(Wp / SW) values (run phase_w holds columns phase_w, phase_w + SW, ...;
// with stride 1 the row itself). Then every run of output pixels in every
// column row is one plain copy, with no bounds tests (in first layers the
// tests would dominate the packing). One pass over x (OpenMP); `offsets`
// receives the rows' offsets and must outlive the result.
Columns readable_columns(const Columns& src, index_t nimg, std::vector<index_t>& offsets);

// Copy rows [r0, r1) of columns [j0, j0 + n) into dst, row r at dst + (r - r0) * ld,
// without forming the rest of the matrix: the GEMM panel packer, and per
// chunk of images the columns of OpenBLAS's products (pack_all_columns).
// src comes from readable_columns.
// Single-threaded; no bounds are crossed for any r1 <= rows, j0 + n <= N * OH*OW.
void pack_columns(const Columns& src, index_t r0, index_t r1, index_t j0, index_t n, float* dst,
                  index_t ld);

// All rows of columns [j0, j0 + n) into dst ([rows][n]), one block of rows
// per OpenMP thread. Call outside any parallel region.
void pack_all_columns(const Columns& src, index_t j0, index_t n, float* dst);

// The adjoint: dx = sum of the column entries that were copied from each
// pixel. Each (image, channel) plane is owned by one thread, zeroed, then
// accumulated, so dx is written (not added to).
void col2im(const float* col, index_t nb, index_t x_img_stride, const ConvGeom& g, float* dx,
            ColLayout layout);

// The same in parts, for callers that produce the columns piece by piece:
// a plane buffer of col2im_plane_floats(g) floats (all C channels, prepared
// layout; dx itself when col2im_in_place(g)) is zeroed, col2im_rows adds the
// column rows of output rows [oh0, oh1) (pixel (oh, ow) of row r at
// col[r*ld + (oh - oh0)*OW + ow]), and col2im_crop writes the plane into dx
// (nothing to do when in place). Single-threaded.
index_t col2im_plane_floats(const ConvGeom& g);
bool col2im_in_place(const ConvGeom& g);
// col2im adds the column rows band by band of this many output rows; a
// caller that adds in the same bands gets the same dx, bit for bit.
index_t col2im_band_rows(const ConvGeom& g);
void col2im_rows(const float* col, index_t ld, const ConvGeom& g, index_t oh0, index_t oh1,
                 float* plane);
void col2im_crop(const float* plane, const ConvGeom& g, float* dx);

// Check the convolution arguments and compute the output size (PyTorch's
// floor rule); throws ValueError naming `fn` when they do not fit.
ConvGeom make_geom(const char* fn, index_t C, index_t H, index_t W, index_t KH, index_t KW,
                   const Pair& stride, const Pair& padding, const Pair& dilation);

}  // namespace fc
