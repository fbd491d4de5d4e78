"""Type stubs for fastconv._C, the compiled CPU kernels (private: use fastconv.backend.cpu).

Conventions shared by every kernel:

* Float arrays must be C-contiguous, aligned float32 (no silent conversion):
  a wrong dtype raises TypeError; a wrong rank, shape, contiguity or value raises
  ValueError whose message names the function, the argument and the shapes.
* The kernels check what guards memory; what an argument means for the user (label
  smoothing in [0, 1], the pooling padding rule, enough values for batch statistics)
  is checked once by the public ops (fastconv/ops), which are the only callers.
* Pairs (kernel, stride, padding, dilation) are ``(h, w)`` tuples of ints.
* Layout NCHW. Every kernel returns new arrays; parameter gradients are summed
  over the batch, and the caller (the autograd layer) accumulates them into ``.grad``.
* The GIL is released while a kernel computes. Work is split across OpenMP
  threads; matrix products run on the OpenBLAS loaded by :func:`load_blas`.
"""

from typing import Optional, Sequence, Tuple

import numpy as np
import numpy.typing as npt

F32 = npt.NDArray[np.float32]
I32 = npt.NDArray[np.int32]
I64 = npt.NDArray[np.int64]
Pair = Tuple[int, int]

ABI_VERSION: int
"""Changes with any signature or semantic change; fastconv.backend.cpu checks it."""

# ---------------------------------------------------------------- BLAS and machine

def load_blas(path: str) -> dict:
    """dlopen the scipy-openblas32 library at ``path`` (RTLD_LOCAL) and return blas_info().

    Call once before any GEMM; later calls return the info of the first load.
    On a CPU with AVX-512 (F/BW/DQ/VL) and no OPENBLAS_CORETYPE set, the SkylakeX
    kernels are requested for the duration of the load. Raises ImportError on failure.
    """

def blas_info() -> dict:
    """{'loaded', 'path', 'corename', 'config', 'num_threads', 'batch_strided'}."""

def cpu_features() -> dict:
    """SIMD flags (sse4_2, avx, avx2, fma, avx512f/bw/dq/vl/vnni, avx512bf16, amx_bf16,
    amx_tile), 'conv_kernels' (the instruction set of the convolution kernels in use: avx512,
    avx2 or baseline), 'bf16_kernels' (the bfloat16 GEMM in use, as bf16_kernels()), 'openmp',
    'omp_max_threads', 'omp_num_procs'."""

def set_num_threads(n: int) -> None:
    """Set OpenMP's thread count (for the calling thread) and OpenBLAS's."""

def get_num_threads() -> int:
    """OpenMP's maximum thread count."""

def cache_info() -> dict:
    """The cache of freed output blocks: {'cached_bytes', 'cached_blocks', 'hits', 'misses',
    'max_cached_bytes', 'min_block_bytes'}, and 'scratch_bytes': the kernels' working
    buffers, kept per thread between calls.

    Kernel outputs of at least min_block_bytes reuse the memory of earlier outputs of the
    same size once NumPy frees them, which saves the OS's zero-filling of fresh pages.
    At most max_cached_bytes of free blocks are kept.
    """

def empty_cache() -> None:
    """Return every cached free block, and the scratch buffers (packed columns, Winograd
    transforms, at most a few tens of MB per thread) of the calling thread and of every
    OpenMP pool thread, to the operating system."""

def gemm(a: F32, b: F32, trans_a: bool = False, trans_b: bool = False) -> F32:
    """op(a) @ op(b), 2-D, through OpenBLAS sgemm; op transposes when its flag is set."""

# ---------------------------------------------------------------- bfloat16 products (autocast)

def bf16_kernels() -> str:
    """The bfloat16 GEMM variant in use: 'amx', 'avx512bf16', 'emulated', 'emulated_amx' or
    'none'. A real variant is checked against its emulation on the first call (RuntimeWarning
    and 'none' if they disagree)."""

def _set_bf16_isa(name: str) -> None:
    """Tests only: switch the bfloat16 GEMM variant (FASTCONV_BF16_ISA's names and checks)."""

def _bf16_self_test(variant: str, reference: str) -> str:
    """Tests only: the first-use check of a real variant, of variant against reference ('' if
    they agree within float32 summation-order tolerance, else the first disagreement)."""

def gemm_bf16(a: F32, b: F32, trans_a: bool = False, trans_b: bool = False,
              bias: Optional[F32] = None, out: Optional[F32] = None) -> F32:
    """op(a) @ op(b) (+ bias[:, None]), a and b 2-D float32 with any strides, rounded to
    bfloat16 as packed, float32 sums; with out (M, N) the product is added to it."""

def conv2d_forward_bf16(x: F32, w: F32, b: Optional[F32], stride: Pair, padding: Pair,
                        dilation: Pair, groups: int, relu: bool = False) -> F32:
    """conv2d_forward with x and w rounded to bfloat16, on the bfloat16 GEMM; y rounded to
    bfloat16, then max(y, 0) with relu (as relu_forward)."""

def conv2d_backward_bf16(x: F32, w: F32, dy: F32, stride: Pair, padding: Pair, dilation: Pair,
                         groups: int, need_dx: bool = True, need_dw: bool = True,
                         need_db: bool = False
                         ) -> Tuple[Optional[F32], Optional[F32], Optional[F32]]:
    """(dx, dw, db) of conv2d_forward_bf16 with dy rounded to bfloat16: dx rounded to
    bfloat16; dw and db summed across images in double."""

# ---------------------------------------------------------------- convolution

def conv2d_forward(x: F32, w: F32, b: Optional[F32], stride: Pair, padding: Pair, dilation: Pair,
                   groups: int) -> F32:
    """y (N, OC, OH, OW) = conv2d(x (N, C, H, W), w (OC, C/groups, KH, KW), b (OC,) or None).

    OH = (H + 2*PH - DH*(KH-1) - 1) // SH + 1, likewise OW. Algorithm: Winograd F(2x2, KxK)
    for stride-1 undilated 3x3 / 5x5 layers with >= 32 input and >= 16 output channels per
    group; otherwise GEMMs over the column matrix, packed panel by panel from x (1x1
    stride-1 unpadded layers: x itself). The route table is at the top of csrc/conv.cpp.
    """

def conv2d_backward(x: F32, w: F32, dy: F32, stride: Pair, padding: Pair, dilation: Pair,
                    groups: int, need_dx: bool = True, need_dw: bool = True,
                    need_db: bool = True) -> Tuple[Optional[F32], Optional[F32], Optional[F32]]:
    """(dx, dw, db) of conv2d_forward for dy (N, OC, OH, OW); None where need_* is False."""

# ---------------------------------------------------------------- pooling

def max_pool2d_forward(x: F32, kernel: Pair, stride: Pair, padding: Pair,
                       ceil_mode: bool, dilation: Pair = (1, 1)) -> Tuple[F32, I32]:
    """(y, indices) for x (N, C, H, W); indices int32 (N, C, OH, OW) = ih*W + iw of the max.
    Window taps oh*SH - PH + kh*DH, columns likewise; a dilated window whose taps all miss the
    input gives y = -inf and index -1 (max_pool2d_backward skips it).

    Ties: the first maximum in row-major window order wins; padding never wins; NaN wins.
    PyTorch's rule padding <= kernel // 2 is checked by the caller (fastconv.ops.pool), not here.
    """

def max_pool2d_backward(dy: F32, indices: I32, x_shape: Sequence[int]) -> F32:
    """dx of shape x_shape: dy summed onto the positions in indices (checked to lie in range)."""

def adaptive_max_pool2d_forward(x: F32, output_size: Pair) -> Tuple[F32, I32]:
    """(y, indices) as max_pool2d_forward over PyTorch's adaptive windows: output row oh
    covers rows [oh*H // OH, ceil((oh+1)*H / OH)), columns likewise. The backward is
    max_pool2d_backward."""

def avg_pool2d_forward(x: F32, kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                       count_include_pad: bool) -> F32:
    """Average pooling of x (N, C, H, W) with PyTorch's divisor rule."""

def avg_pool2d_backward(dy: F32, x_shape: Sequence[int], kernel: Pair, stride: Pair, padding: Pair,
                        ceil_mode: bool, count_include_pad: bool) -> F32:
    """dx of shape x_shape: every dy spread as dy / divisor over its window."""

# ---------------------------------------------------------------- normalisation

def lrn_forward(x: F32, size: int, alpha: float, beta: float, k: float) -> Tuple[F32, F32]:
    """(y, scale) for x (N, C, ...):
    scale[c] = k + alpha/size * sum_{j=c-size//2}^{c+(size-1)//2} x[j]^2,  y = x * scale^-beta."""

def lrn_backward(x: F32, y: F32, scale: F32, dy: F32, size: int, alpha: float, beta: float,
                 k: float) -> F32:
    """dx of lrn_forward, given its x, y and scale."""

def batch_norm_forward_train(x: F32, weight: Optional[F32], bias: Optional[F32],
                             eps: float) -> Tuple[F32, F32, F32]:
    """(y, mean, var) with batch statistics over every axis but 1 of x (N, C) or (N, C, H, W).

    var is biased (divides by the count); weight/bias (C,) or None for 1 and 0.
    """

def batch_norm_forward_eval(x: F32, mean: F32, var: F32, weight: Optional[F32],
                            bias: Optional[F32], eps: float) -> F32:
    """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel."""

def batch_norm_backward(x: F32, weight: Optional[F32], mean: F32, var: F32, eps: float,
                        dy: F32) -> Tuple[F32, F32, F32]:
    """(dx, dweight, dbias) of training-mode batch norm (mean, var: the batch statistics)."""

def batch_norm_max_pool2d_forward(x: F32, weight: Optional[F32], bias: Optional[F32], eps: float,
                                  kernel: Pair, stride: Pair, padding: Pair, ceil_mode: bool,
                                  dilation: Pair = (1, 1)) -> Tuple[F32, I32, F32, F32]:
    """(y, indices, mean, var): max_pool2d_forward of batch_norm_forward_train's output, each
    plane normalised in L1 and pooled, never stored; bit for bit the two kernels' results."""

def batch_norm_max_pool2d_backward(x: F32, weight: Optional[F32], mean: F32, var: F32, eps: float,
                                   dy: F32, indices: I32) -> Tuple[F32, F32, F32]:
    """(dx, dweight, dbias): batch_norm_backward of max_pool2d_backward(dy, indices), each
    plane of the pooled gradient scattered in L1; bit for bit the two kernels' results."""

# ---------------------------------------------------------------- activation and loss

def relu_forward(x: F32) -> F32:
    """max(x, 0), any shape; NaN propagates."""

def relu_backward(y: F32, dy: F32) -> F32:
    """dy where y > 0, else 0."""

def random_uniform(shape: Sequence[int], seed: int, offset: int = 0) -> F32:
    """Uniform [0, 1) draws, 24 bits: Philox4x32-10, key seed, counter (i / 4, offset)."""

def dropout_forward(x: F32, p: float, seed: int) -> Tuple[F32, F32]:
    """(y, mask): mask = 1 / (1 - p) where random_uniform(x.shape, seed) >= p, else 0;
    y = x * mask."""

def dropout_backward(dy: F32, mask: F32) -> F32:
    """dx = dy * mask."""

def round_bf16_inplace(x: F32) -> None:
    """Round each float32 of x, in place, to the nearest bfloat16 (ties to even)."""

def add_inplace(dst: F32, src: F32) -> None:
    """dst += src in place; same shape, C-contiguous, not overlapping."""

def softmax_cross_entropy_forward(logits: F32, target: I64,
                                  label_smoothing: float = 0.0) -> Tuple[float, F32]:
    """(loss, prob) for logits (N, K) and int64 targets (N,) in [0, K).

    loss = mean_i[(1 - ls) * -log p_i[t_i] + ls * mean_k(-log p_i[k])], prob = softmax(logits).
    """

def softmax_cross_entropy_backward(prob: F32, target: I64, label_smoothing: float,
                                   dloss: float) -> F32:
    """dlogits = dloss / N * (prob - (1 - ls) * onehot(target) - ls / K)."""

# ---------------------------------------------------------------- activations beyond ReLU
# The backward passes take the forward's input x, except sigmoid and tanh (its output y).

def leaky_relu_forward(x: F32, negative_slope: float) -> F32:
    """y = x > 0 ? x : negative_slope * x."""

def leaky_relu_backward(x: F32, dy: F32, negative_slope: float) -> F32:
    """dx = dy * (x > 0 ? 1 : negative_slope)."""

def elu_forward(x: F32, alpha: float) -> F32:
    """y = x > 0 ? x : alpha * (exp(x) - 1)."""

def elu_backward(x: F32, dy: F32, alpha: float) -> F32:
    """dx = dy * (x > 0 ? 1 : alpha * exp(x))."""

def gelu_forward(x: F32, tanh_approximation: bool) -> F32:
    """y = x * Phi(x), or x/2 (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))."""

def gelu_backward(x: F32, dy: F32, tanh_approximation: bool) -> F32:
    """dx of gelu_forward."""

def silu_forward(x: F32) -> F32:
    """y = x * sigmoid(x)."""

def silu_backward(x: F32, dy: F32) -> F32:
    """dx = dy * s * (1 + x (1 - s)), s = sigmoid(x)."""

def sigmoid_forward(x: F32) -> F32:
    """y = 1 / (1 + exp(-x))."""

def sigmoid_backward(y: F32, dy: F32) -> F32:
    """dx = dy * y * (1 - y)."""

def tanh_forward(x: F32) -> F32:
    """y = tanh(x)."""

def tanh_backward(y: F32, dy: F32) -> F32:
    """dx = dy * (1 - y^2)."""

# ---------------------------------------------------------------- group and layer norm

def group_norm_forward(x: F32, weight: Optional[F32], bias: Optional[F32], groups: int,
                       eps: float) -> Tuple[F32, F32, F32]:
    """(y, mean, rstd) for x (N, C, *): statistics per (n, group of C/groups channels),
    mean and rstd (N * groups,). Layer norm: x viewed as (rows, K), groups = 1."""

def group_norm_backward(x: F32, weight: Optional[F32], mean: F32, rstd: F32, dy: F32,
                        groups: int, need_dx: bool = True,
                        need_dparams: bool = True) -> Tuple[Optional[F32], Optional[F32],
                                                            Optional[F32]]:
    """(dx, dweight, dbias); None where not asked for."""

# ---------------------------------------------------------------- padding and resizing

def pad_forward(x: F32, index: Sequence[Optional[I64]], value: float) -> F32:
    """y gathered through one int64 table per dim (None keeps the dim); -1 reads value."""

def pad_backward(dy: F32, x_shape: Sequence[int], index: Sequence[Optional[I64]]) -> F32:
    """dx: each dy added onto the input position it read."""

def interpolate_forward(x: F32, h_index: I64, h_weight: Optional[F32], w_index: I64,
                        w_weight: Optional[F32]) -> F32:
    """Nearest (weights None) or bilinear resize of x (N, C, H, W) through per-axis tables."""

def interpolate_backward(dy: F32, x_shape: Sequence[int], h_index: I64,
                         h_weight: Optional[F32], w_index: I64,
                         w_weight: Optional[F32]) -> F32:
    """dx of interpolate_forward."""
