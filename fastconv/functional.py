"""The public functional API (``import fastconv.functional as F``), named as in PyTorch.

Each function validates its arguments (raising TypeError/ValueError that name the
argument and the shapes) and runs its op on the backend of its inputs.
"""

from __future__ import annotations

from fastconv.ops.activation import (
    alpha_dropout,
    celu,
    dropout,
    dropout1d,
    dropout2d,
    dropout3d,
    elu,
    feature_alpha_dropout,
    gelu,
    glu,
    gumbel_softmax,
    hardshrink,
    hardsigmoid,
    hardswish,
    hardtanh,
    leaky_relu,
    log_softmax,
    logsigmoid,
    mish,
    prelu,
    relu,
    relu6,
    rrelu,
    selu,
    silu,
    softmax,
    softmin,
    softplus,
    softshrink,
    softsign,
    tanhshrink,
    threshold,
)
from fastconv.ops.activation import in_place as _in_place
from fastconv.ops.attention import scaled_dot_product_attention
from fastconv.ops.conv import bilinear, conv2d, conv_transpose2d, linear
from fastconv.ops.ctc import ctc_loss
from fastconv.ops.distance import cosine_similarity, normalize, pairwise_distance, pdist
from fastconv.ops.embedding_bag import embedding_bag
from fastconv.ops.fractional_pool import fractional_max_pool2d
from fastconv.ops.grid_sample import affine_grid, grid_sample
from fastconv.ops.index import embedding
from fastconv.ops.loss import (
    accuracy,
    binary_cross_entropy,
    binary_cross_entropy_with_logits,
    cosine_embedding_loss,
    cross_entropy,
    gaussian_nll_loss,
    hinge_embedding_loss,
    huber_loss,
    kl_div,
    l1_loss,
    margin_ranking_loss,
    mse_loss,
    multi_margin_loss,
    multilabel_margin_loss,
    multilabel_soft_margin_loss,
    nll_loss,
    one_hot,
    poisson_nll_loss,
    smooth_l1_loss,
    soft_margin_loss,
    triplet_margin_loss,
    triplet_margin_with_distance_loss,
)
from fastconv.ops.norm import (
    batch_norm,
    group_norm,
    instance_norm,
    layer_norm,
    local_response_norm,
    rms_norm,
)
from fastconv.ops.one_d import (
    adaptive_avg_pool1d,
    adaptive_max_pool1d,
    avg_pool1d,
    conv1d,
    conv_transpose1d,
    lp_pool1d,
    max_pool1d,
    max_unpool1d,
)
from fastconv.ops.pad import pad
from fastconv.ops.patches import channel_shuffle, fold, pixel_shuffle, pixel_unshuffle, unfold
from fastconv.ops.pool import (
    adaptive_avg_pool2d,
    adaptive_max_pool2d,
    adaptive_max_pool3d,
    avg_pool2d,
    lp_pool2d,
    max_pool2d,
    max_unpool2d,
)
from fastconv.ops.three_d import (
    adaptive_avg_pool3d,
    avg_pool3d,
    conv3d,
    conv_transpose3d,
    lp_pool3d,
    max_pool3d,
    max_unpool3d,
)
from fastconv.ops.upsample import interpolate
from fastconv.toplevel import cat


def sigmoid(input):
    """Logistic sigmoid, elementwise: 1 / (1 + exp(-x)) (torch.nn.functional.sigmoid)."""
    return input.sigmoid()


def tanh(input):
    """Hyperbolic tangent, elementwise (torch.nn.functional.tanh)."""
    return input.tanh()

__all__ = [
    "embedding_bag",
    "fractional_max_pool2d",
    "accuracy",
    "adaptive_avg_pool1d",
    "adaptive_avg_pool2d",
    "adaptive_avg_pool3d",
    "adaptive_max_pool1d",
    "adaptive_max_pool2d",
    "adaptive_max_pool3d",
    "affine_grid",
    "alpha_dropout",
    "avg_pool1d",
    "avg_pool2d",
    "avg_pool3d",
    "batch_norm",
    "bilinear",
    "binary_cross_entropy",
    "binary_cross_entropy_with_logits",
    "cat",
    "celu",
    "channel_shuffle",
    "conv1d",
    "conv2d",
    "conv3d",
    "conv_transpose1d",
    "conv_transpose2d",
    "conv_transpose3d",
    "cosine_embedding_loss",
    "cosine_similarity",
    "cross_entropy",
    "ctc_loss",
    "dropout",
    "dropout1d",
    "dropout2d",
    "dropout3d",
    "elu",
    "embedding",
    "feature_alpha_dropout",
    "flatten",
    "fold",
    "gaussian_nll_loss",
    "gelu",
    "glu",
    "grid_sample",
    "group_norm",
    "hardshrink",
    "hardsigmoid",
    "hardswish",
    "hardtanh",
    "hinge_embedding_loss",
    "huber_loss",
    "instance_norm",
    "interpolate",
    "kl_div",
    "l1_loss",
    "layer_norm",
    "leaky_relu",
    "linear",
    "local_response_norm",
    "log_softmax",
    "logsigmoid",
    "lp_pool1d",
    "lp_pool2d",
    "lp_pool3d",
    "margin_ranking_loss",
    "max_pool1d",
    "max_pool2d",
    "max_pool3d",
    "max_unpool1d",
    "max_unpool2d",
    "max_unpool3d",
    "mish",
    "mse_loss",
    "multi_margin_loss",
    "multilabel_margin_loss",
    "multilabel_soft_margin_loss",
    "nll_loss",
    "normalize",
    "one_hot",
    "pad",
    "pairwise_distance",
    "pdist",
    "pixel_shuffle",
    "pixel_unshuffle",
    "poisson_nll_loss",
    "prelu",
    "relu",
    "relu6",
    "rms_norm",
    "rrelu",
    "scaled_dot_product_attention",
    "selu",
    "sigmoid",
    "silu",
    "smooth_l1_loss",
    "soft_margin_loss",
    "softmax",
    "softmin",
    "gumbel_softmax",
    "softplus",
    "softshrink",
    "softsign",
    "tanh",
    "tanhshrink",
    "threshold",
    "triplet_margin_loss",
    "triplet_margin_with_distance_loss",
    "unfold",
]

conv2d.__doc__ = """2-D convolution (cross-correlation) over (N, C, H, W) or unbatched (C, H, W)
    input.

    y[n, o, i, j] = b[o] + sum_{c, p, q} w[o, c, p, q] *
                    x[n, g*C/groups + c, i*s_h - pad_h + p*d_h, j*s_w - pad_w + q*d_w]

    Args:
        x: (N, C, H, W) float32.
        weight: (OC, C // groups, KH, KW).
        bias: (OC,) or None.
        stride, padding, dilation: an int or an (h, w) pair; stride >= 1, padding >= 0.
            padding may also be "valid" (no padding) or "same" (output size = input size,
            stride 1 only; an odd total padding puts the extra pixel at the bottom/right,
            as PyTorch).
        groups: splits channels into groups convolved separately (AlexNet's two towers).
    Returns (N, OC, OH, OW) with OH = floor((H + 2p - d(KH-1) - 1) / s) + 1.
    Computed by im2col + GEMM (LeCun et al. 1998; Chellapilla et al. 2006); 1×1 kernels
    multiply the input directly.
    """

linear.__doc__ = """Fully connected layer: y = x @ weight.T + bias.

    Args: x (..., in_features), weight (out_features, in_features), bias (out_features,) or None.
    """

def flatten(x, start_dim=0, end_dim=-1):
    """Merge dims start_dim..end_dim into one (as torch.flatten; nn.Flatten starts at 1)."""
    return x.flatten(start_dim, end_dim)


def _inplace_form(fn):
    """``F.relu_(x)``: ``fn`` applied to x in place (the ``inplace=True`` result)."""
    def apply_(input, *args, **kwargs):
        return _in_place(fn, input, *args, **kwargs)

    apply_.__name__ = fn.__name__ + "_"
    apply_.__doc__ = f"In-place :func:`{fn.__name__}`: ``input`` takes the result."
    return apply_


relu_ = _inplace_form(relu)
elu_ = _inplace_form(elu)
leaky_relu_ = _inplace_form(leaky_relu)
hardtanh_ = _inplace_form(hardtanh)
threshold_ = _inplace_form(threshold)
celu_ = _inplace_form(celu)
selu_ = _inplace_form(selu)
rrelu_ = _inplace_form(rrelu)
__all__ += ["relu_", "elu_", "leaky_relu_", "hardtanh_", "threshold_", "celu_", "selu_",
            "rrelu_"]


# PyTorch's older spellings: the pools that also return indices, and upsample
def _with_indices(pool):
    def call(*args, **kwargs):
        kwargs["return_indices"] = True
        return pool(*args, **kwargs)

    call.__name__ = pool.__name__ + "_with_indices"
    call.__doc__ = f":func:`{pool.__name__}` with ``return_indices=True``."
    return call


max_pool1d_with_indices = _with_indices(max_pool1d)
max_pool2d_with_indices = _with_indices(max_pool2d)
max_pool3d_with_indices = _with_indices(max_pool3d)
adaptive_max_pool1d_with_indices = _with_indices(adaptive_max_pool1d)
adaptive_max_pool2d_with_indices = _with_indices(adaptive_max_pool2d)
adaptive_max_pool3d_with_indices = _with_indices(adaptive_max_pool3d)
fractional_max_pool2d_with_indices = _with_indices(fractional_max_pool2d)


def upsample(input, size=None, scale_factor=None, mode="nearest", align_corners=None):
    """Deprecated in PyTorch in favour of :func:`interpolate`, which it calls (with the
    same warning)."""
    import warnings

    warnings.warn("nn.functional.upsample is deprecated. Use nn.functional.interpolate "
                  "instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode, align_corners)


def upsample_nearest(input, size=None, scale_factor=None):
    """Deprecated: :func:`interpolate` with mode 'nearest'."""
    import warnings

    warnings.warn("nn.functional.upsample_nearest is deprecated. Use "
                  "nn.functional.interpolate instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode="nearest")


def upsample_bilinear(input, size=None, scale_factor=None):
    """Deprecated: :func:`interpolate` with mode 'bilinear' and ``align_corners=True``."""
    import warnings

    warnings.warn("nn.functional.upsample_bilinear is deprecated. Use "
                  "nn.functional.interpolate instead.", UserWarning, stacklevel=2)
    return interpolate(input, size, scale_factor, mode="bilinear", align_corners=True)


__all__ += ["max_pool1d_with_indices", "max_pool2d_with_indices", "max_pool3d_with_indices",
            "adaptive_max_pool1d_with_indices", "adaptive_max_pool2d_with_indices",
            "adaptive_max_pool3d_with_indices",
            "fractional_max_pool2d_with_indices", "upsample", "upsample_nearest",
            "upsample_bilinear"]
