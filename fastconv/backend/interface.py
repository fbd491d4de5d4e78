"""The kernel interface: what every backend exports, declared once.

The ops (``fastconv/ops``) call a backend only through these names, as ``self.kernels.<name>``
(or ``get_backend(device).<name>``), so an op is written once for every device.
``backend/cpu.py`` (NumPy + ``fastconv._C``) and ``backend/cuda/`` (CuPy + ``fastconv/cuda/*.cu``)
each export exactly :data:`KERNELS` plus their own :data:`CONTROLS` (user-facing settings the
ops never call); ``tests/test_backend_interface.py`` holds them to it.

The ops have already checked what the arguments mean (``fastconv/ops/validate.py``), made the
arrays C-contiguous float32 and turned every size argument into an ``(h, w)`` pair of ints.
A backend only computes; it still refuses arrays whose shapes would make it read or write out
of bounds.

Conventions: NCHW float32; ``x, w, b, y`` and their gradients ``dx, dw, db, dy``. Functions
return new arrays, except those whose name ends in ``_`` (in place).
"""

from __future__ import annotations

from typing import Any, Protocol

Pair = tuple[int, int]
Array = Any          # numpy.ndarray on the CPU, cupy.ndarray on the GPU


class Kernels(Protocol):
    xp: Any
    """The array module: numpy or cupy."""

    def gemm(self, a: Array, b: Array, trans_a: bool = False, trans_b: bool = False) -> Array:
        """op(a) @ op(b) for 2-D float32 arrays, through the backend's BLAS."""

    def conv2d_forward(self, x: Array, w: Array, b: Array | None, stride: Pair, padding: Pair,
                       dilation: Pair, groups: int) -> Array:
        """y = conv2d(x, w) + b: x (N, C, H, W), w (OC, C // groups, KH, KW), b (OC,) or None."""

    def conv2d_backward(self, x: Array, w: Array, dy: Array, stride: Pair, padding: Pair,
                        dilation: Pair, groups: int, need_dx: bool, need_dw: bool,
                        need_db: bool) -> tuple[Array | None, Array | None, Array | None]:
        """(dx, dw, db); each is None unless its ``need_*`` is set."""

    def max_pool2d_forward(self, x: Array, kernel: Pair, stride: Pair, padding: Pair,
                           ceil_mode: bool, dilation: Pair = (1, 1)) -> tuple[Array, Array]:
        """(y, indices): indices int32 (N, C, OH, OW), the flat offset oh*W + ow of the max
        inside its input plane. Window taps oh*SH - PH + kh*DH (columns likewise). The first
        maximum in row-major order of the window wins (as in PyTorch); padding never wins. A
        dilated window whose taps all miss the input gets y = -inf and index -1 (no gradient)."""

    def max_pool2d_backward(self, dy: Array, indices: Array, x_shape: tuple, kernel: Pair,
                            stride: Pair, padding: Pair, dilation: Pair = (1, 1)) -> Array:
        """dx, the same on every run. The window lets a backend gather per input element
        instead of scattering with atomics (the CPU, which scatters each plane in order
        on one thread, does not need it)."""

    def adaptive_max_pool2d_forward(self, x: Array, output_size: Pair) -> tuple[Array, Array]:
        """(y, indices) as max_pool2d_forward, over PyTorch's adaptive windows: output row oh
        covers input rows [oh*H // OH, ceil((oh+1)*H / OH)), columns likewise."""

    def adaptive_max_pool2d_backward(self, dy: Array, indices: Array, x_shape: tuple) -> Array:
        """dx of adaptive_max_pool2d_forward, the same on every run."""

    def avg_pool2d_forward(self, x: Array, kernel: Pair, stride: Pair, padding: Pair,
                           ceil_mode: bool, count_include_pad: bool) -> Array:
        """y: window means with PyTorch's divisor rules."""

    def avg_pool2d_backward(self, dy: Array, x_shape: tuple, kernel: Pair, stride: Pair,
                            padding: Pair, ceil_mode: bool, count_include_pad: bool) -> Array:
        """dx of avg_pool2d_forward."""

    def lrn_forward(self, x: Array, size: int, alpha: float, beta: float,
                    k: float) -> tuple[Array, Array]:
        """(y, scale): scale[c] = k + alpha / size * sum_{j=c-size//2}^{c+(size-1)//2} x[j]^2,
        y = x * scale^-beta."""

    def lrn_backward(self, x: Array, y: Array, scale: Array, dy: Array, size: int, alpha: float,
                     beta: float, k: float) -> Array:
        """dx of lrn_forward, given its x, y and scale."""

    def batch_norm_forward_train(self, x: Array, weight: Array | None, bias: Array | None,
                                 eps: float) -> tuple[Array, Array, Array]:
        """(y, mean, var) with statistics over every axis but C of x (N, C) or (N, C, H, W);
        var is biased."""

    def batch_norm_forward_eval(self, x: Array, mean: Array, var: Array, weight: Array | None,
                                bias: Array | None, eps: float) -> Array:
        """y = (x - mean) / sqrt(var + eps) * weight + bias, per channel."""

    def batch_norm_backward(self, x: Array, weight: Array | None, mean: Array, var: Array,
                            eps: float, dy: Array) -> tuple[Array, Array, Array]:
        """(dx, dweight, dbias) of the training-mode batch norm (mean, var: batch statistics)."""

    def batch_norm_max_pool2d_forward(self, x: Array, weight: Array | None, bias: Array | None,
                                      eps: float, kernel: Pair, stride: Pair, padding: Pair,
                                      ceil_mode: bool, dilation: Pair = (1, 1)
                                      ) -> tuple[Array, Array, Array, Array]:
        """(y, indices, mean, var): max_pool2d_forward of batch_norm_forward_train's output for
        x (N, C, H, W), each as those two give it; the normalised x need not be stored."""

    def batch_norm_max_pool2d_backward(self, x: Array, weight: Array | None, mean: Array,
                                       var: Array, eps: float, dy: Array, indices: Array,
                                       kernel: Pair, stride: Pair, padding: Pair,
                                       dilation: Pair = (1, 1)) -> tuple[Array, Array, Array]:
        """(dx, dweight, dbias): batch_norm_backward of max_pool2d_backward(dy, indices, ...)
        (the window as there)."""

    def relu_forward(self, x: Array) -> Array:
        """y = max(x, 0)."""

    def relu_backward(self, y: Array, dy: Array) -> Array:
        """dx = dy where y > 0, else 0."""

    def leaky_relu_forward(self, x: Array, negative_slope: float) -> Array:
        """y = x where x > 0, else negative_slope * x."""

    def leaky_relu_backward(self, x: Array, dy: Array, negative_slope: float) -> Array:
        """dx = dy where x > 0, else negative_slope * dy."""

    def elu_forward(self, x: Array, alpha: float) -> Array:
        """y = x where x > 0, else alpha * (exp(x) - 1)."""

    def elu_backward(self, x: Array, dy: Array, alpha: float) -> Array:
        """dx = dy where x > 0, else dy * alpha * exp(x)."""

    def gelu_forward(self, x: Array, approximate: str) -> Array:
        """y = x * Phi(x) ("none": the exact normal CDF) or, with "tanh",
        x / 2 * (1 + tanh(sqrt(2 / pi) * (x + 0.044715 x^3)))."""

    def gelu_backward(self, x: Array, dy: Array, approximate: str) -> Array:
        """dx of gelu_forward, from its input x."""

    def silu_forward(self, x: Array) -> Array:
        """y = x * sigmoid(x)."""

    def silu_backward(self, x: Array, dy: Array) -> Array:
        """dx = dy * s * (1 + x * (1 - s)), s = sigmoid(x)."""

    def sigmoid_forward(self, x: Array) -> Array:
        """y = 1 / (1 + exp(-x))."""

    def sigmoid_backward(self, y: Array, dy: Array) -> Array:
        """dx = dy * y * (1 - y), from the forward's output y."""

    def tanh_forward(self, x: Array) -> Array:
        """y = tanh(x)."""

    def tanh_backward(self, y: Array, dy: Array) -> Array:
        """dx = dy * (1 - y^2), from the forward's output y."""

    def group_norm_forward(self, x: Array, weight: Array | None, bias: Array | None,
                           groups: int, eps: float) -> tuple[Array, Array, Array]:
        """(y, mean, rstd) of group norm over x (N, C, *): statistics per sample and group of
        C // groups channels (biased variance), mean and rstd = 1 / sqrt(var + eps) of shape
        (N * groups,); weight, bias (C,) or None. Layer norm is x viewed as (rows, K) with
        groups = 1 and weight, bias (K,)."""

    def group_norm_backward(self, x: Array, weight: Array | None, mean: Array, rstd: Array,
                            dy: Array, groups: int, need_dx: bool,
                            need_dparams: bool) -> tuple[Array | None, Array | None,
                                                         Array | None]:
        """(dx, dweight, dbias) of group_norm_forward given its mean and rstd; dx is None unless
        ``need_dx``, dweight and dbias None unless ``need_dparams``."""

    def pad_forward(self, x: Array, index: tuple, value: float) -> Array:
        """y gathered from x through one table per dim: ``index[d]`` is None (dim d kept) or a
        NumPy int64 array of the output's length along d whose entry o is the input position
        that output position o reads, or -1 for ``value``. Every padding mode is such a table
        (fastconv/ops/pad.py builds them)."""

    def pad_backward(self, dy: Array, x_shape: tuple, index: tuple) -> Array:
        """dx of pad_forward: each dy added onto the input position it read; the same on every
        run."""

    def interpolate_forward(self, x: Array, h_index: Any, h_weight: Any, w_index: Any,
                            w_weight: Any) -> Array:
        """Nearest or bilinear resize of x (N, C, H, W), with the source positions in NumPy
        tables: output row oh reads rows h0 = h_index[oh] (int64) and min(h0 + 1, H - 1) with
        weights 1 - h_weight[oh] and h_weight[oh] (float32); columns likewise. Both weights
        None: nearest (y = x[h0, w0])."""

    def interpolate_backward(self, dy: Array, x_shape: tuple, h_index: Any, h_weight: Any,
                             w_index: Any, w_weight: Any) -> Array:
        """dx of interpolate_forward: each dy added to the inputs it read, with the same
        weights; the same on every run."""

    def accumulate_(self, dst: Array, src: Array) -> None:
        """dst += src in place (autograd's sums of leaf gradients)."""

    def round_bf16_(self, x: Array) -> None:
        """Round float32 x (C-contiguous) in place to the nearest bfloat16, ties to even, NaN
        to 0x7FC00000 (torch's conversion): autocast's bf16 values kept in float32."""

    def softmax_cross_entropy_forward(self, logits: Array, target: Array,
                                      label_smoothing: float) -> tuple[Array, Array]:
        """(loss, prob): logits (N, K) float32, target (N,) int64 in [0, K); loss is the mean
        (a 0-d array on the GPU: no host round trip), prob = softmax(logits)."""

    def softmax_cross_entropy_backward(self, prob: Array, target: Array, label_smoothing: float,
                                       dloss: Any) -> Array:
        """dlogits = dloss / N * (prob - (1 - ls) onehot - ls / K). ``dloss`` is a number or,
        on the GPU, a device scalar."""

    def random_uniform(self, shape: tuple) -> Array:
        """Uniform [0, 1) float32 draws from the device's generator (seeded by
        fastconv.manual_seed)."""

    def dropout_forward(self, x: Array, p: float) -> tuple[Array, Array]:
        """(y, mask): mask = 1 / (1 - p) where a uniform draw of the device's generator (as
        ``random_uniform(x.shape)`` makes it) is >= p, else 0; y = x * mask; 0 <= p < 1."""

    def dropout_backward(self, dy: Array, mask: Array) -> Array:
        """dx = dy * mask."""

    def is_capturing(self) -> bool:
        """True while the work is being recorded into a CUDA graph: the ops then skip every
        check that reads device data on the host. Always False on the CPU."""


def _names(protocol) -> tuple[str, ...]:
    own = [n for n in vars(protocol) if not n.startswith("_")]
    return tuple(sorted(set(own) | set(protocol.__annotations__)))


KERNELS: tuple[str, ...] = _names(Kernels)
"""Every name of the kernel interface."""

CONTROLS: dict[str, tuple[str, ...]] = {
    "cpu": ("ABI_VERSION", "blas_info", "cache_info", "cpu_features", "empty_cache",
            "get_num_threads", "set_num_threads",
            "bf16_kernels", "gemm_bf16", "conv2d_forward_bf16", "conv2d_backward_bf16"),
    "cuda": ("CapturedStep", "capture", "device_count", "get_rng_state", "get_tf32",
             "manual_seed", "set_rng_state", "set_tf32", "set_workspace_limit",
             "bf16_kernels", "gemm_bf16", "conv2d_forward_bf16", "conv2d_backward_bf16"),
}
"""Per backend, what it exports besides the kernels: settings, diagnostics and CUDA graphs,
for users, tests and benchmarks. The ops never call them, except the bfloat16 products,
which the autocast ops use where the backend has them (``Function.use_bf16_gemm``)."""
