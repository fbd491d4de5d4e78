/* The three GEMMs of a convolution over its column matrix, on the kernels of
 * microkernel.h. The column matrix (conv_columns.h: Columns) is never formed whole: the forward
 * product packs it panel by panel, the weight gradient reads its rows where
 * they lie, and the input gradient makes it band by band of output rows and
 * folds each band back onto the image (col2im) while it is in cache.
 */
#pragma once

#include "conv_columns.h"

namespace fc {

// Where a product writes C[i][j] for column j = n*P + p (P = pixels per image):
// data + n*img_stride + i*P + p. For y: data = y + first channel * P, img_stride = OC*P.
struct ColumnOutput {
    float* data;
    index_t img_stride;
};

// A matrix read in place: element (i, k) at data[i * row + k * col]
// (W_g: row = K, col = 1; W_g^T: row = 1, col = K).
struct MatrixView {
    const float* data;
    index_t row, col;
};

// C[i][j] = (bias ? bias[i] : 0) + sum_k A[i][k] cols[k][j] for i < M and the
// nimg * P columns of cols. OpenMP over tiles of columns; each element of C is
// written once, by one thread.
void gemm_columns(MatrixView a, index_t M, const Columns& cols, index_t nimg, const float* bias,
                  ColumnOutput out);

// dx = col2im(W^T dy) for nimg images of geometry g, without a column buffer
// in memory: one image per thread at a time, band by band of output rows,
// the band's column rows computed into L2 and added onto the image's plane
// right away. w_t: W^T (g.rows() x OC_g, a view of W); dy_cols: the columns
// of dy (rows: its OC_g channels); dx[n] at dx + n*dx_img_stride is
// overwritten. Deterministic for any number of threads; parallel over
// images, so use it when there are at least as many images as threads.
void input_grad_columns(MatrixView w_t, const Columns& dy_cols, const ConvGeom& g, index_t nimg,
                        float* dx, index_t dx_img_stride);

// dw[i*ldw + r] = sum over the nimg * P columns j of dy[i][j] cols[r][j], where
// dy[i][n*P + p] is at dy + n*dy_img_stride + i*P + p, and, if db is given,
// db[i] = sum over j of dy[i][j] (the bias gradient, read off the same dy
// panels instead of another pass over dy). The sums run over runs of columns
// in a fixed order, in double between runs: the result is the same for any
// number of threads.
void weight_grad_columns(const float* dy, index_t dy_img_stride, index_t M, const Columns& cols,
                         index_t nimg, float* dw, index_t ldw, float* db = nullptr);

}  // namespace fc
