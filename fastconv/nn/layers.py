"""Layer classes: each holds its parameters and calls one op of ``fastconv.functional``."""

from __future__ import annotations

import math
from collections import OrderedDict

import numpy as np

from fastconv import functional as F
from fastconv.nn import init
from fastconv.nn.container import Sequential  # noqa: F401  (its home before container.py)
from fastconv.nn.module import Module, Parameter, factory_kwargs
from fastconv.ops import one_d, three_d
from fastconv.ops.conv import same_padding
from fastconv.ops.loss import legacy_reduction
from fastconv.ops.validate import pair, positive_int
from fastconv.tensor import Tensor

PADDING_MODES = ("zeros", "reflect", "replicate", "circular")


class Concat(Module):
    """Runs parallel branches on the same input and concatenates their outputs along ``dim``.

    The building block of Inception modules: ``Concat(branch1x1, branch3x3, ...)``.
    """

    def __init__(self, *branches, dim: int = 1):
        super().__init__()
        self.dim = dim
        if len(branches) == 1 and isinstance(branches[0], OrderedDict):
            for name, m in branches[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(branches):
                self.add_module(str(i), m)

    def forward(self, x):
        return F.cat([m(x) for m in self._modules.values()], dim=self.dim)

    def extra_repr(self):
        return f"dim={self.dim}"


class Identity(Module):
    """Returns its input; any constructor arguments are accepted and ignored (as PyTorch)."""

    def __init__(self, *args, **kwargs):
        super().__init__()

    def forward(self, x):
        return x


def _check_groups(name, groups, in_channels, out_channels) -> None:
    positive_int(groups, "groups", name)
    if in_channels % groups or out_channels % groups:
        raise ValueError(f"{name}: groups={groups} must divide in_channels={in_channels} "
                         f"and out_channels={out_channels}")


class _ConvNd(Module):
    """What Conv2d and ConvTranspose2d share (torch's ``_ConvNd``): the initialisation and
    the printed form. Subclasses set ``weight`` with the fan-in dims at 1: (channels of the
    other side / groups, kH, kW)."""

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            fan_in = int(np.prod(self.weight.shape[1:]))
            if fan_in:
                bound = 1 / math.sqrt(fan_in)
                init.uniform_(self.bias, -bound, bound)
            else:  # no inputs: torch leaves the bias unset; zeros make it deterministic
                init.zeros_(self.bias)

    def extra_repr(self):
        zeros, ones = (0,) * len(self.kernel_size), (1,) * len(self.kernel_size)
        s = (f"{self.in_channels}, {self.out_channels}, kernel_size={self.kernel_size}, "
             f"stride={self.stride}")
        if self.padding != zeros:
            s += f", padding={self.padding}"
        if self.dilation != ones:
            s += f", dilation={self.dilation}"
        if getattr(self, "output_padding", zeros) != zeros:
            s += f", output_padding={self.output_padding}"
        if self.groups != 1:
            s += f", groups={self.groups}"
        if self.bias is None:
            s += ", bias=False"
        if self.padding_mode != "zeros":
            s += f", padding_mode={self.padding_mode}"
        return s


class Conv2d(_ConvNd):
    """2-D convolution layer; see ``fastconv.functional.conv2d``.

    ``padding`` is an int, an (h, w) pair, "valid" or "same" (stride 1 only).
    ``padding_mode`` is "zeros" (the convolution's own implicit zeros), or "reflect",
    "replicate" or "circular": the input is then padded by ``F.pad`` in that mode and
    convolved without padding, as PyTorch does. Input is (N, C, H, W) or unbatched
    (C, H, W).

    Initialised as PyTorch does: weight ~ kaiming_uniform(a=sqrt(5)) (that is
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))) and bias ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__()
        _check_groups("Conv2d", groups, in_channels, out_channels)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"Conv2d: padding_mode must be one of {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", "Conv2d", 1)
        self.stride = pair(stride, "stride", "Conv2d", 1)
        self.dilation = pair(dilation, "dilation", "Conv2d", 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"Conv2d: invalid padding string {padding!r}, should be one "
                                 "of 'valid', 'same'")
            if padding == "same" and self.stride != (1, 1):
                raise ValueError("Conv2d: padding='same' is not supported for strided "
                                 f"convolutions (stride {self.stride})")
            self.padding = padding
            split = (same_padding(self.kernel_size, self.dilation) if padding == "same"
                     else ((0, 0), (0, 0)))
        else:
            self.padding = pair(padding, "padding", "Conv2d", 0)
            split = tuple((p, p) for p in self.padding)
        # F.pad's order: (left, right, top, bottom)
        self._reversed_padding_repeated_twice = split[1] + split[0]
        self.padding_mode = padding_mode
        self.groups = groups
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((out_channels, in_channels // groups, kh, kw), np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def forward(self, x):
        if self.padding_mode != "zeros":
            return F.conv2d(F.pad(x, self._reversed_padding_repeated_twice, mode=self.padding_mode),
                            self.weight, self.bias, self.stride, 0, self.dilation, self.groups)
        return F.conv2d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose2d(_ConvNd):
    """Transposed 2-D convolution (the gradient of Conv2d with respect to its input, as a
    layer); see ``fastconv.functional.conv_transpose2d``. weight is (in_channels,
    out_channels // groups, kH, kW). ``forward(x, output_size=None)``: an (H, W) picks the
    output_padding that gives that size, as torch's. Initialised as torch's:
    kaiming_uniform(a=sqrt(5)) over fan_in = out_channels // groups * kH * kW, the bias
    U(-1/sqrt(fan_in), 1/sqrt(fan_in))."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__()
        name = "ConvTranspose2d"
        _check_groups(name, groups, in_channels, out_channels)
        if padding_mode != "zeros":
            raise ValueError(f'{name}: only "zeros" padding_mode is supported, got '
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = pair(kernel_size, "kernel_size", name, 1)
        self.stride = pair(stride, "stride", name, 1)
        self.padding = pair(padding, "padding", name, 0)
        self.output_padding = pair(output_padding, "output_padding", name, 0)
        self.dilation = pair(dilation, "dilation", name, 1)
        for i in range(2):
            if not self.output_padding[i] < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                                 f"than either stride {self.stride} or dilation {self.dilation}")
        self.groups, self.padding_mode = groups, padding_mode
        kh, kw = self.kernel_size
        self.weight = Parameter(np.empty((in_channels, out_channels // groups, kh, kw),
                                         np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def forward(self, x, output_size=None):
        return F.conv_transpose2d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation, output_size)


class Linear(Module):
    """Fully connected layer, initialised as PyTorch's nn.Linear."""

    def __init__(self, in_features, out_features, bias=True, device=None, dtype=None):
        super().__init__()
        self.in_features, self.out_features = in_features, out_features
        self.weight = Parameter(np.empty((out_features, in_features), np.float32))
        self.bias = Parameter(np.empty(out_features, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        init.kaiming_uniform_(self.weight, a=math.sqrt(5))
        if self.bias is not None:
            bound = 1 / math.sqrt(self.in_features) if self.in_features else 0
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x):
        return F.linear(x, self.weight, self.bias)

    def extra_repr(self):
        return (f"in_features={self.in_features}, out_features={self.out_features}, "
                f"bias={self.bias is not None}")


def _inplace_repr(text: str, inplace: bool) -> str:
    """torch's extra_repr of a module with ``inplace``: "inplace=True" added when it is set."""
    if not inplace:
        return text
    return f"{text}, inplace=True" if text else "inplace=True"


class ReLU(Module):
    """max(x, 0). ``inplace=True``: the input takes the result (see ``F.relu``)."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.relu(x, inplace=self.inplace)

    def extra_repr(self):
        return _inplace_repr("", self.inplace)


class LeakyReLU(Module):
    """See ``fastconv.functional.leaky_relu``."""

    def __init__(self, negative_slope: float = 0.01, inplace: bool = False):
        super().__init__()
        self.negative_slope, self.inplace = negative_slope, inplace

    def forward(self, x):
        return F.leaky_relu(x, self.negative_slope, self.inplace)

    def extra_repr(self):
        return _inplace_repr(f"negative_slope={self.negative_slope}", self.inplace)


class ELU(Module):
    """See ``fastconv.functional.elu``."""

    def __init__(self, alpha: float = 1.0, inplace: bool = False):
        super().__init__()
        self.alpha, self.inplace = alpha, inplace

    def forward(self, x):
        return F.elu(x, self.alpha, self.inplace)

    def extra_repr(self):
        return _inplace_repr(f"alpha={self.alpha}", self.inplace)


class GELU(Module):
    """See ``fastconv.functional.gelu``."""

    def __init__(self, approximate: str = "none"):
        super().__init__()
        self.approximate = approximate

    def forward(self, x):
        return F.gelu(x, approximate=self.approximate)

    def extra_repr(self):
        return f"approximate={self.approximate!r}"


class SiLU(Module):
    """See ``fastconv.functional.silu``."""

    def __init__(self, inplace: bool = False):
        super().__init__()
        self.inplace = inplace

    def forward(self, x):
        return F.silu(x, self.inplace)

    def extra_repr(self):
        return _inplace_repr("", self.inplace)


class Sigmoid(Module):
    """Elementwise logistic sigmoid (see ``fastconv.functional.sigmoid``)."""

    def forward(self, x):
        return F.sigmoid(x)


class Tanh(Module):
    """Elementwise hyperbolic tangent (see ``fastconv.functional.tanh``)."""

    def forward(self, x):
        return F.tanh(x)


class Softmax(Module):
    """See ``fastconv.functional.softmax`` (``dim=None`` picks PyTorch's implicit dim, warned)."""

    def __init__(self, dim=None):
        super().__init__()
        self.dim = dim

    def forward(self, x):
        return F.softmax(x, self.dim, _stacklevel=5)

    def extra_repr(self):
        return f"dim={self.dim}"


class LogSoftmax(Softmax):
    """See ``fastconv.functional.log_softmax``."""

    def forward(self, x):
        return F.log_softmax(x, self.dim, _stacklevel=5)


class Conv1d(_ConvNd):
    """1-D convolution over (N, C, L) or (C, L); see ``fastconv.functional.conv1d``.
    weight is (out_channels, in_channels // groups, kernel_size); torch's initialisation and
    padding modes ("zeros", "reflect", "replicate", "circular", and "same" / "valid")."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__()
        name = "Conv1d"
        _check_groups(name, groups, in_channels, out_channels)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (one_d.single(kernel_size, "kernel_size", name),)
        self.stride = (one_d.single(stride, "stride", name),)
        self.dilation = (one_d.single(dilation, "dilation", name),)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one "
                                 "of 'valid', 'same'")
            if padding == "same" and self.stride != (1,):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 "convolutions")
            self.padding = padding
        else:
            self.padding = (one_d.single(padding, "padding", name),)
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = Parameter(np.empty((out_channels, in_channels // groups) + self.kernel_size,
                                         np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def forward(self, x):
        if self.padding_mode != "zeros" and self.padding != "valid":
            if self.padding == "same":
                total = self.dilation[0] * (self.kernel_size[0] - 1)
                pads = (total // 2, total - total // 2)
            else:
                pads = (self.padding[0], self.padding[0])
            return F.conv1d(F.pad(x, pads, mode=self.padding_mode), self.weight, self.bias,
                            self.stride, 0, self.dilation, self.groups)
        padding = self.padding if isinstance(self.padding, str) else self.padding[0]
        return F.conv1d(x, self.weight, self.bias, self.stride, padding, self.dilation,
                        self.groups)


class ConvTranspose1d(_ConvNd):
    """Transposed 1-D convolution; weight is (in_channels, out_channels // groups,
    kernel_size). ``forward(x, output_size=None)`` as ConvTranspose2d's."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__()
        name = "ConvTranspose1d"
        _check_groups(name, groups, in_channels, out_channels)
        if padding_mode != "zeros":
            raise ValueError(f'{name}: only "zeros" padding_mode is supported, got '
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = (one_d.single(kernel_size, "kernel_size", name),)
        self.stride = (one_d.single(stride, "stride", name),)
        self.padding = (one_d.single(padding, "padding", name),)
        self.output_padding = (one_d.single(output_padding, "output_padding", name),)
        self.dilation = (one_d.single(dilation, "dilation", name),)
        if not self.output_padding[0] < max(self.stride[0], self.dilation[0]):
            raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                             f"than either stride {self.stride} or dilation {self.dilation}")
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = Parameter(np.empty((in_channels, out_channels // groups) + self.kernel_size,
                                         np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def forward(self, x, output_size=None):
        return F.conv_transpose1d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation, output_size)


class Conv3d(_ConvNd):
    """3-D convolution over (N, C, D, H, W) or (C, D, H, W); see
    ``fastconv.functional.conv3d``. weight (out_channels, in_channels // groups, KD, KH, KW),
    torch's initialisation; ``padding`` an int, 3 ints, "valid" or "same" (stride 1);
    padding_mode as Conv2d's."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 dilation=1, groups=1, bias=True, padding_mode="zeros", device=None,
                 dtype=None):
        super().__init__()
        name = "Conv3d"
        _check_groups(name, groups, in_channels, out_channels)
        if padding_mode not in PADDING_MODES:
            raise ValueError(f"{name}: padding_mode must be one of {PADDING_MODES}, got "
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = three_d.triple(kernel_size, "kernel_size", name, 1)
        self.stride = three_d.triple(stride, "stride", name, 1)
        self.dilation = three_d.triple(dilation, "dilation", name, 1)
        if isinstance(padding, str):
            if padding not in ("same", "valid"):
                raise ValueError(f"{name}: invalid padding string {padding!r}, should be one "
                                 "of 'valid', 'same'")
            if padding == "same" and self.stride != (1, 1, 1):
                raise ValueError(f"{name}: padding='same' is not supported for strided "
                                 "convolutions")
            self.padding = padding
        else:
            self.padding = three_d.triple(padding, "padding", name, 0)
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = Parameter(np.empty((out_channels, in_channels // groups)
                                         + self.kernel_size, np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def forward(self, x):
        if self.padding_mode != "zeros" and self.padding != "valid":
            split = (same_padding(self.kernel_size, self.dilation) if self.padding == "same"
                     else tuple((p, p) for p in self.padding))
            # F.pad's order: the last dim first
            x = F.pad(x, tuple(v for pair_ in reversed(split) for v in pair_),
                      mode=self.padding_mode)
            return F.conv3d(x, self.weight, self.bias, self.stride, 0, self.dilation,
                            self.groups)
        return F.conv3d(x, self.weight, self.bias, self.stride, self.padding, self.dilation,
                        self.groups)


class ConvTranspose3d(_ConvNd):
    """Transposed 3-D convolution over (N, C, D, H, W) or (C, D, H, W); see
    ``fastconv.functional.conv_transpose3d``. weight is (in_channels,
    out_channels // groups, KD, KH, KW); ``forward(x, output_size=None)`` as
    ConvTranspose2d's; torch's initialisation; padding_mode "zeros"."""

    def __init__(self, in_channels, out_channels, kernel_size, stride=1, padding=0,
                 output_padding=0, groups=1, bias=True, dilation=1, padding_mode="zeros",
                 device=None, dtype=None):
        super().__init__()
        name = "ConvTranspose3d"
        _check_groups(name, groups, in_channels, out_channels)
        if padding_mode != "zeros":
            raise ValueError(f'{name}: only "zeros" padding_mode is supported, got '
                             f"{padding_mode!r}")
        self.in_channels, self.out_channels = in_channels, out_channels
        self.kernel_size = three_d.triple(kernel_size, "kernel_size", name, 1)
        self.stride = three_d.triple(stride, "stride", name, 1)
        self.padding = three_d.triple(padding, "padding", name, 0)
        self.output_padding = three_d.triple(output_padding, "output_padding", name, 0)
        self.dilation = three_d.triple(dilation, "dilation", name, 1)
        for i in range(3):
            if not self.output_padding[i] < max(self.stride[i], self.dilation[i]):
                raise ValueError(f"{name}: output_padding {self.output_padding} must be smaller "
                                 f"than either stride {self.stride} or dilation {self.dilation}")
        self.groups, self.padding_mode = groups, padding_mode
        self.weight = Parameter(np.empty((in_channels, out_channels // groups)
                                         + self.kernel_size, np.float32))
        self.bias = Parameter(np.empty(out_channels, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def forward(self, x, output_size=None):
        return F.conv_transpose3d(x, self.weight, self.bias, self.stride, self.padding,
                                  self.output_padding, self.groups, self.dilation, output_size)


class _Pool(Module):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False):
        super().__init__()
        self.kernel_size = kernel_size
        self.stride = stride if stride is not None else kernel_size
        self.padding = padding
        self.ceil_mode = ceil_mode

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"ceil_mode={self.ceil_mode}")


class _MaxPoolNd(_Pool):
    """MaxPool1d and MaxPool2d (PyTorch's argument order: dilation comes before
    return_indices and ceil_mode); ``_pool`` is the functional form."""

    _pool = None

    def __init__(self, kernel_size, stride=None, padding=0, dilation=1, return_indices=False,
                 ceil_mode=False):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.dilation, self.return_indices = dilation, return_indices

    def forward(self, x):
        return type(self)._pool(x, self.kernel_size, self.stride, self.padding, self.dilation,
                                ceil_mode=self.ceil_mode, return_indices=self.return_indices)

    def extra_repr(self):
        return (f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}, "
                f"dilation={self.dilation}, ceil_mode={self.ceil_mode}")


class MaxPool2d(_MaxPoolNd):
    """See ``fastconv.functional.max_pool2d``."""

    _pool = staticmethod(F.max_pool2d)


class _AvgPoolNd(_Pool):
    """AvgPool2d and AvgPool3d; ``_pool`` is the functional form."""

    _pool = None

    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True, divisor_override=None):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad
        self.divisor_override = divisor_override

    def forward(self, x):
        return type(self)._pool(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                                self.count_include_pad, self.divisor_override)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class AvgPool2d(_AvgPoolNd):
    _pool = staticmethod(F.avg_pool2d)


class _AdaptiveAvgPoolNd(Module):
    _pool = None  # the functional form

    def __init__(self, output_size):
        super().__init__()
        self.output_size = output_size

    def forward(self, x):
        return type(self)._pool(x, self.output_size)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveAvgPool2d(_AdaptiveAvgPoolNd):
    _pool = staticmethod(F.adaptive_avg_pool2d)


class _AdaptiveMaxPoolNd(Module):
    _pool = None  # the functional form

    def __init__(self, output_size, return_indices=False):
        super().__init__()
        self.output_size, self.return_indices = output_size, return_indices

    def forward(self, x):
        return type(self)._pool(x, self.output_size, self.return_indices)

    def extra_repr(self):
        return f"output_size={self.output_size}"


class AdaptiveMaxPool2d(_AdaptiveMaxPoolNd):
    """See ``fastconv.functional.adaptive_max_pool2d``."""

    _pool = staticmethod(F.adaptive_max_pool2d)


class MaxPool1d(_MaxPoolNd):
    """See ``fastconv.functional.max_pool1d``."""

    _pool = staticmethod(F.max_pool1d)


class AvgPool1d(_Pool):
    def __init__(self, kernel_size, stride=None, padding=0, ceil_mode=False,
                 count_include_pad=True):
        super().__init__(kernel_size, stride, padding, ceil_mode)
        self.count_include_pad = count_include_pad

    def forward(self, x):
        return F.avg_pool1d(x, self.kernel_size, self.stride, self.padding, self.ceil_mode,
                            self.count_include_pad)

    def extra_repr(self):
        return (f"kernel_size={(self.kernel_size,)}, stride={(self.stride,)}, "
                f"padding={(self.padding,)}")


class AdaptiveAvgPool1d(_AdaptiveAvgPoolNd):
    _pool = staticmethod(F.adaptive_avg_pool1d)


class AdaptiveMaxPool1d(_AdaptiveMaxPoolNd):
    _pool = staticmethod(F.adaptive_max_pool1d)


class FractionalMaxPool2d(Module):
    """See ``fastconv.functional.fractional_max_pool2d`` (Graham, 2014): fresh window
    offsets on every call unless ``_random_samples`` is given."""

    def __init__(self, kernel_size, output_size=None, output_ratio=None,
                 return_indices: bool = False, _random_samples=None):
        super().__init__()
        if output_size is None and output_ratio is None:
            raise ValueError("FractionalMaxPool2d requires specifying either an output size, "
                             "or a pooling ratio")
        if output_size is not None and output_ratio is not None:
            raise ValueError("only one of output_size and output_ratio may be specified")
        self.kernel_size = pair(kernel_size, "kernel_size", "FractionalMaxPool2d", 1)
        self.output_size = output_size
        self.output_ratio = output_ratio
        self.return_indices = return_indices
        self._random_samples = _random_samples

    def forward(self, x):
        return F.fractional_max_pool2d(x, self.kernel_size, self.output_size, self.output_ratio,
                                       self.return_indices, self._random_samples)


class MaxUnpool2d(Module):
    """See ``fastconv.functional.max_unpool2d``; ``forward(x, indices, output_size=None)``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        self.kernel_size = pair(kernel_size, "kernel_size", "MaxUnpool2d", 1)
        self.stride = self.kernel_size if stride is None else pair(stride, "stride",
                                                                    "MaxUnpool2d", 1)
        self.padding = pair(padding, "padding", "MaxUnpool2d", 0)

    def forward(self, x, indices, output_size=None):
        return F.max_unpool2d(x, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxPool3d(_MaxPoolNd):
    """See ``fastconv.functional.max_pool3d``."""

    _pool = staticmethod(F.max_pool3d)


class AvgPool3d(_AvgPoolNd):
    _pool = staticmethod(F.avg_pool3d)


class AdaptiveAvgPool3d(_AdaptiveAvgPoolNd):
    _pool = staticmethod(F.adaptive_avg_pool3d)


class AdaptiveMaxPool3d(_AdaptiveMaxPoolNd):
    """See ``fastconv.functional.adaptive_max_pool3d``."""

    _pool = staticmethod(F.adaptive_max_pool3d)


class MaxUnpool1d(Module):
    """See ``fastconv.functional.max_unpool1d``; ``forward(x, indices, output_size=None)``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = "MaxUnpool1d"
        self.kernel_size = (one_d.single(kernel_size, "kernel_size", name),)
        self.stride = self.kernel_size if stride is None else \
            (one_d.single(stride, "stride", name),)
        self.padding = (one_d.single(padding, "padding", name),)

    def forward(self, x, indices, output_size=None):
        return F.max_unpool1d(x, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class MaxUnpool3d(Module):
    """See ``fastconv.functional.max_unpool3d``; ``forward(x, indices, output_size=None)``."""

    def __init__(self, kernel_size, stride=None, padding=0):
        super().__init__()
        name = "MaxUnpool3d"
        self.kernel_size = three_d.triple(kernel_size, "kernel_size", name, 1)
        self.stride = self.kernel_size if stride is None else \
            three_d.triple(stride, "stride", name, 1)
        self.padding = three_d.triple(padding, "padding", name, 0)

    def forward(self, x, indices, output_size=None):
        return F.max_unpool3d(x, indices, self.kernel_size, self.stride, self.padding,
                              output_size)

    def extra_repr(self):
        return f"kernel_size={self.kernel_size}, stride={self.stride}, padding={self.padding}"


class _LPPoolNd(Module):
    _pool = None  # the functional form

    def __init__(self, norm_type, kernel_size, stride=None, ceil_mode=False):
        super().__init__()
        self.norm_type, self.kernel_size = norm_type, kernel_size
        self.stride, self.ceil_mode = stride, ceil_mode

    def forward(self, x):
        return type(self)._pool(x, self.norm_type, self.kernel_size, self.stride,
                                self.ceil_mode)

    def extra_repr(self):
        return (f"norm_type={self.norm_type}, kernel_size={self.kernel_size}, "
                f"stride={self.stride}, ceil_mode={self.ceil_mode}")


class LPPool1d(_LPPoolNd):
    _pool = staticmethod(F.lp_pool1d)


class LPPool2d(_LPPoolNd):
    _pool = staticmethod(F.lp_pool2d)


class LPPool3d(_LPPoolNd):
    _pool = staticmethod(F.lp_pool3d)


class ChannelShuffle(Module):
    """See ``fastconv.functional.channel_shuffle``."""

    def __init__(self, groups):
        super().__init__()
        self.groups = groups

    def forward(self, x):
        return F.channel_shuffle(x, self.groups)

    def extra_repr(self):
        return f"groups={self.groups}"


class Bilinear(Module):
    """y = x1^T A x2 + b (see ``fastconv.functional.bilinear``); weight (out, in1, in2) and
    bias drawn from U(-1/sqrt(in1), 1/sqrt(in1)), as torch's."""

    def __init__(self, in1_features, in2_features, out_features, bias=True, device=None,
                 dtype=None):
        super().__init__()
        self.in1_features, self.in2_features = in1_features, in2_features
        self.out_features = out_features
        self.weight = Parameter(np.empty((out_features, in1_features, in2_features),
                                         np.float32))
        self.bias = Parameter(np.empty(out_features, np.float32)) if bias else None
        self.reset_parameters()
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        bound = 1 / math.sqrt(self.in1_features)
        init.uniform_(self.weight, -bound, bound)
        if self.bias is not None:
            init.uniform_(self.bias, -bound, bound)

    def forward(self, x1, x2):
        return F.bilinear(x1, x2, self.weight, self.bias)

    def extra_repr(self):
        return (f"in1_features={self.in1_features}, in2_features={self.in2_features}, "
                f"out_features={self.out_features}, bias={self.bias is not None}")


def _reset_affine(norm):
    """A normalisation layer's affine parameters back to weight 1, bias 0 (where it has
    them), in place: optimizers keep holding the same Parameters."""
    if getattr(norm, "weight", None) is not None:
        init.ones_(norm.weight)
    if getattr(norm, "bias", None) is not None:
        init.zeros_(norm.bias)


class _BatchNorm(Module):
    _input_ranks: tuple = ()

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=True,
                 track_running_stats=True, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        self.weight = Parameter(np.ones(num_features, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_features, np.float32)) if affine and bias else None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.running_mean = self.running_var = None
        factory_kwargs(self, device, dtype)

    def reset_running_stats(self):
        """Running mean 0, running variance 1 and no batches counted (torch's)."""
        if self.track_running_stats:
            self.running_mean.zero_()
            self.running_var.fill_(1)
            self.num_batches_tracked.zero_()

    def reset_parameters(self):
        self.reset_running_stats()
        _reset_affine(self)

    def forward(self, x):
        if x.ndim not in self._input_ranks:
            ranks = " or ".join(map(str, self._input_ranks))
            raise ValueError(f"{type(self).__name__}: expected a {ranks}-D input, got shape "
                             f"{x.shape}")
        # without running statistics the batch's are used in eval mode too (torch's rule)
        return F.batch_norm(x, self.running_mean, self.running_var, self.weight, self.bias,
                            self.training or self.running_mean is None, self._update_factor(),
                            self.eps)

    def _update_factor(self) -> float:
        """Counts a training step and returns its weight in the running statistics: momentum,
        or with ``momentum=None`` 1/(steps so far), a cumulative average, as torch's."""
        if self.training and self.track_running_stats:
            self.num_batches_tracked.data += 1
            if self.momentum is None:
                return 1.0 / float(self.num_batches_tracked.data)
        return 0.0 if self.momentum is None else self.momentum

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class BatchNorm1d(_BatchNorm):
    """Batch norm over (N, C) or (N, C, L) input."""

    _input_ranks = (2, 3)


class BatchNorm2d(_BatchNorm):
    """Batch norm over (N, C, H, W) input."""

    _input_ranks = (4,)


class BatchNorm3d(_BatchNorm):
    """Batch norm over (N, C, D, H, W) input."""

    _input_ranks = (5,)


class LocalResponseNorm(Module):
    """See ``fastconv.functional.local_response_norm`` (PyTorch's parametrisation)."""

    def __init__(self, size, alpha=1e-4, beta=0.75, k=1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x):
        return F.local_response_norm(x, self.size, self.alpha, self.beta, self.k)

    def extra_repr(self):
        return f"{self.size}, alpha={self.alpha}, beta={self.beta}, k={self.k}"


class Dropout(Module):
    """Dropout (see ``F.dropout``). ``inplace=True``: the input takes the result in
    training."""

    def __init__(self, p=0.5, inplace=False):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, (int, float)) or not 0 <= p <= 1:
            raise ValueError(f"dropout probability has to be between 0 and 1, but got {p!r}")
        self.p, self.inplace = p, inplace

    def forward(self, x):
        return F.dropout(x, self.p, self.training, self.inplace)

    def extra_repr(self):
        return f"p={self.p}, inplace={self.inplace}"


class Dropout2d(Dropout):
    def forward(self, x):
        return F.dropout2d(x, self.p, self.training, self.inplace)


class Dropout1d(Dropout):
    def forward(self, x):
        return F.dropout1d(x, self.p, self.training, self.inplace)


class Dropout3d(Dropout):
    def forward(self, x):
        return F.dropout3d(x, self.p, self.training, self.inplace)


class AlphaDropout(Dropout):
    """See ``fastconv.functional.alpha_dropout`` (for SELU networks)."""

    def forward(self, x):
        return F.alpha_dropout(x, self.p, self.training, self.inplace)


class FeatureAlphaDropout(Dropout):
    def forward(self, x):
        return F.feature_alpha_dropout(x, self.p, self.training, self.inplace)


class Flatten(Module):
    def __init__(self, start_dim=1, end_dim=-1):
        super().__init__()
        self.start_dim, self.end_dim = start_dim, end_dim

    def forward(self, x):
        return x.flatten(self.start_dim, self.end_dim)

    def extra_repr(self):
        return f"start_dim={self.start_dim}, end_dim={self.end_dim}"


class Unflatten(Module):
    """Splits dim ``dim`` into ``unflattened_size`` (see ``Tensor.unflatten``)."""

    def __init__(self, dim, unflattened_size):
        super().__init__()
        self.dim, self.unflattened_size = dim, tuple(unflattened_size)

    def forward(self, x):
        return x.unflatten(self.dim, self.unflattened_size)

    def extra_repr(self):
        return f"dim={self.dim}, unflattened_size={self.unflattened_size}"


# ----------------------------------------------------------------------------- normalisation

class LayerNorm(Module):
    """See ``fastconv.functional.layer_norm``. weight (ones) and bias (zeros) have the
    shape ``normalized_shape`` when ``elementwise_affine``; ``bias=False`` drops the bias."""

    def __init__(self, normalized_shape, eps=1e-5, elementwise_affine=True, bias=True,
                 device=None, dtype=None):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = (Parameter(np.ones(self.normalized_shape, np.float32))
                       if elementwise_affine else None)
        self.bias = (Parameter(np.zeros(self.normalized_shape, np.float32))
                     if elementwise_affine and bias else None)
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, x):
        return F.layer_norm(x, self.normalized_shape, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}, bias={self.bias is not None}")


class RMSNorm(Module):
    """See ``fastconv.functional.rms_norm``; weight (ones) of shape ``normalized_shape`` when
    ``elementwise_affine``."""

    def __init__(self, normalized_shape, eps=None, elementwise_affine=True, device=None,
                 dtype=None):
        super().__init__()
        if isinstance(normalized_shape, (int, np.integer)):
            normalized_shape = (normalized_shape,)
        self.normalized_shape = tuple(int(s) for s in normalized_shape)
        self.eps, self.elementwise_affine = eps, elementwise_affine
        self.weight = (Parameter(np.ones(self.normalized_shape, np.float32))
                       if elementwise_affine else None)
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, x):
        return F.rms_norm(x, self.normalized_shape, self.weight, self.eps)

    def extra_repr(self):
        return (f"{self.normalized_shape}, eps={self.eps}, "
                f"elementwise_affine={self.elementwise_affine}")


class GroupNorm(Module):
    """See ``fastconv.functional.group_norm``; per-channel weight (ones) and bias (zeros)
    when ``affine``."""

    def __init__(self, num_groups, num_channels, eps=1e-5, affine=True, device=None,
                 dtype=None, *, bias=True):
        super().__init__()
        if isinstance(num_groups, bool) or not isinstance(num_groups, (int, np.integer)) or \
                num_groups < 1:  # torch's modulo by zero is a ZeroDivisionError
            raise ValueError(f"GroupNorm: num_groups must be a positive int, got {num_groups!r}")
        if num_channels % num_groups:
            raise ValueError(f"GroupNorm: num_channels ({num_channels}) must be divisible by "
                             f"num_groups ({num_groups})")
        self.num_groups, self.num_channels, self.eps, self.affine = (num_groups, num_channels,
                                                                     eps, affine)
        self.weight = Parameter(np.ones(num_channels, np.float32)) if affine else None
        self.bias = Parameter(np.zeros(num_channels, np.float32)) if affine and bias else None
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        _reset_affine(self)

    def forward(self, x):
        return F.group_norm(x, self.num_groups, self.weight, self.bias, self.eps)

    def extra_repr(self):
        return (f"{self.num_groups}, {self.num_channels}, eps={self.eps}, affine={self.affine}, "
                f"bias={self.bias is not None}")


# ----------------------------------------------------------------------------- padding, resizing

def _pads(padding, name, dims: int) -> tuple:
    """An int, or 2 * dims ints (last dim first: left, right, top, bottom, front, back)."""
    if isinstance(padding, (int, np.integer)) and not isinstance(padding, bool):
        return (int(padding),) * (2 * dims)
    if isinstance(padding, (tuple, list)) and len(padding) == 2 * dims:
        return tuple(int(p) for p in padding)
    raise TypeError(f"{name}: padding must be an int or a {2 * dims}-tuple, got {padding!r}")


class _PadNd(Module):
    """The padding layers: the last ``_dims`` dims of the input padded in ``mode`` (see
    ``fastconv.functional.pad``)."""

    mode = "constant"
    _dims = 2

    def __init__(self, padding):
        super().__init__()
        self.padding = _pads(padding, type(self).__name__, self._dims)

    def forward(self, x):
        return F.pad(x, self.padding, self.mode)

    def extra_repr(self):
        return f"{self.padding}"


class _ConstantPadNd(_PadNd):
    def __init__(self, padding, value):
        super().__init__(padding)
        self.value = value

    def forward(self, x):
        return F.pad(x, self.padding, "constant", self.value)

    def extra_repr(self):
        return f"padding={self.padding}, value={self.value}"


class ConstantPad1d(_ConstantPadNd):
    _dims = 1


class ConstantPad2d(_ConstantPadNd):
    """Pad the last two dims with ``value``: padding (left, right, top, bottom) or an int."""


class ConstantPad3d(_ConstantPadNd):
    _dims = 3


class _ZeroPadNd(_ConstantPadNd):
    def __init__(self, padding):
        super().__init__(padding, 0.0)

    def extra_repr(self):
        return f"{self.padding}"


class ZeroPad1d(_ZeroPadNd):
    _dims = 1


class ZeroPad2d(_ZeroPadNd):
    """Pad the last two dims with zeros: padding (left, right, top, bottom) or an int."""


class ZeroPad3d(_ZeroPadNd):
    _dims = 3


class ReflectionPad1d(_PadNd):
    mode, _dims = "reflect", 1


class ReflectionPad2d(_PadNd):
    """Mirror-pad (C, H, W) or (N, C, H, W) input (see ``fastconv.functional.pad``)."""

    mode = "reflect"


class ReflectionPad3d(_PadNd):
    mode, _dims = "reflect", 3


class ReplicationPad1d(_PadNd):
    mode, _dims = "replicate", 1


class ReplicationPad2d(_PadNd):
    """Edge-pad (C, H, W) or (N, C, H, W) input."""

    mode = "replicate"


class ReplicationPad3d(_PadNd):
    mode, _dims = "replicate", 3


class CircularPad1d(_PadNd):
    mode, _dims = "circular", 1


class CircularPad2d(_PadNd):
    """Wrap-pad (C, H, W) or (N, C, H, W) input."""

    mode = "circular"


class CircularPad3d(_PadNd):
    mode, _dims = "circular", 3


class Upsample(Module):
    """See ``fastconv.functional.interpolate``."""

    def __init__(self, size=None, scale_factor=None, mode="nearest", align_corners=None,
                 recompute_scale_factor=None):
        super().__init__()
        self.size, self.mode, self.align_corners = size, mode, align_corners
        self.scale_factor = (tuple(float(f) for f in scale_factor)
                             if isinstance(scale_factor, (tuple, list))
                             else float(scale_factor) if scale_factor is not None else None)
        self.recompute_scale_factor = recompute_scale_factor

    def forward(self, x):
        return F.interpolate(x, self.size, self.scale_factor, self.mode, self.align_corners,
                             recompute_scale_factor=self.recompute_scale_factor)

    def extra_repr(self):
        s = (f"size={self.size}" if self.size is not None
             else f"scale_factor={self.scale_factor}")
        return s + f", mode={self.mode!r}"


class UpsamplingNearest2d(Upsample):
    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="nearest")


class UpsamplingBilinear2d(Upsample):
    """Bilinear with align_corners=True (PyTorch's definition of this layer)."""

    def __init__(self, size=None, scale_factor=None):
        super().__init__(size, scale_factor, mode="bilinear", align_corners=True)


# ----------------------------------------------------------------------------- losses

class _Loss(Module):
    def __init__(self, size_average=None, reduce=None, reduction="mean"):
        super().__init__()
        self.reduction = legacy_reduction(type(self).__name__, size_average, reduce, reduction)


class _WeightedLoss(_Loss):
    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)


class CrossEntropyLoss(_WeightedLoss):
    """See ``fastconv.functional.cross_entropy``; ``weight`` is kept as a buffer."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean", label_smoothing=0.0):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index, self.label_smoothing = ignore_index, label_smoothing

    def forward(self, input, target):
        return F.cross_entropy(input, target, weight=self.weight, ignore_index=self.ignore_index,
                               reduction=self.reduction, label_smoothing=self.label_smoothing)


class NLLLoss(_WeightedLoss):
    """See ``fastconv.functional.nll_loss``; ``weight`` is kept as a buffer."""

    def __init__(self, weight=None, size_average=None, ignore_index=-100, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        self.ignore_index = ignore_index

    def forward(self, input, target):
        return F.nll_loss(input, target, weight=self.weight, ignore_index=self.ignore_index,
                          reduction=self.reduction)


class CTCLoss(_Loss):
    """See ``fastconv.functional.ctc_loss``; ``forward(log_probs, targets, input_lengths,
    target_lengths)``."""

    def __init__(self, blank=0, reduction="mean", zero_infinity=False):
        super().__init__(reduction=reduction)
        self.blank, self.zero_infinity = blank, zero_infinity

    def forward(self, log_probs, targets, input_lengths, target_lengths):
        return F.ctc_loss(log_probs, targets, input_lengths, target_lengths, self.blank,
                          self.reduction, self.zero_infinity)


class MSELoss(_Loss):
    """See ``fastconv.functional.mse_loss``."""

    def forward(self, input, target):
        return F.mse_loss(input, target, reduction=self.reduction)


class L1Loss(_Loss):
    """See ``fastconv.functional.l1_loss``."""

    def forward(self, input, target):
        return F.l1_loss(input, target, reduction=self.reduction)


class BCEWithLogitsLoss(_Loss):
    """See ``fastconv.functional.binary_cross_entropy_with_logits``; ``weight`` and
    ``pos_weight`` are kept as buffers."""

    def __init__(self, weight=None, size_average=None, reduce=None, reduction="mean",
                 pos_weight=None):
        super().__init__(size_average, reduce, reduction)
        self.register_buffer("weight", weight)
        self.register_buffer("pos_weight", pos_weight)

    def forward(self, input, target):
        return F.binary_cross_entropy_with_logits(input, target, self.weight,
                                                  pos_weight=self.pos_weight,
                                                  reduction=self.reduction)


class SmoothL1Loss(_Loss):
    """See ``fastconv.functional.smooth_l1_loss``."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", beta=1.0):
        super().__init__(size_average, reduce, reduction)
        self.beta = beta

    def forward(self, input, target):
        return F.smooth_l1_loss(input, target, reduction=self.reduction, beta=self.beta)


class HuberLoss(_Loss):
    """See ``fastconv.functional.huber_loss``."""

    def __init__(self, reduction="mean", delta=1.0):
        super().__init__(reduction=reduction)
        self.delta = delta

    def forward(self, input, target):
        return F.huber_loss(input, target, reduction=self.reduction, delta=self.delta)


class BCELoss(_WeightedLoss):
    """See ``fastconv.functional.binary_cross_entropy``; ``weight`` is kept as a buffer."""

    def forward(self, input, target):
        return F.binary_cross_entropy(input, target, weight=self.weight,
                                      reduction=self.reduction)


class KLDivLoss(Module):
    """See ``fastconv.functional.kl_div`` (reduction may also be 'batchmean')."""

    def __init__(self, size_average=None, reduce=None, reduction="mean", log_target=False):
        super().__init__()
        if reduction != "batchmean":
            reduction = legacy_reduction("KLDivLoss", size_average, reduce, reduction)
        self.reduction, self.log_target = reduction, log_target

    def forward(self, input, target):
        return F.kl_div(input, target, reduction=self.reduction, log_target=self.log_target)


class MarginRankingLoss(_Loss):
    """See ``fastconv.functional.margin_ranking_loss``."""

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.margin_ranking_loss(input1, input2, target, margin=self.margin,
                                     reduction=self.reduction)


class HingeEmbeddingLoss(_Loss):
    """See ``fastconv.functional.hinge_embedding_loss``."""

    def __init__(self, margin=1.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input, target):
        return F.hinge_embedding_loss(input, target, margin=self.margin,
                                      reduction=self.reduction)


class CosineEmbeddingLoss(_Loss):
    """See ``fastconv.functional.cosine_embedding_loss``."""

    def __init__(self, margin=0.0, size_average=None, reduce=None, reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.margin = margin

    def forward(self, input1, input2, target):
        return F.cosine_embedding_loss(input1, input2, target, margin=self.margin,
                                       reduction=self.reduction)


class TripletMarginLoss(_Loss):
    """See ``fastconv.functional.triplet_margin_loss``."""

    def __init__(self, margin=1.0, p=2.0, eps=1e-6, swap=False, size_average=None, reduce=None,
                 reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginLoss: expected margin to be greater than 0, got "
                             f"{margin} instead")
        self.margin, self.p, self.eps, self.swap = margin, p, eps, swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_loss(anchor, positive, negative, margin=self.margin, p=self.p,
                                     eps=self.eps, swap=self.swap, reduction=self.reduction)


class TripletMarginWithDistanceLoss(_Loss):
    """See ``fastconv.functional.triplet_margin_with_distance_loss``."""

    def __init__(self, *, distance_function=None, margin=1.0, swap=False, reduction="mean"):
        super().__init__(None, None, reduction)
        if margin <= 0:
            raise ValueError(f"TripletMarginWithDistanceLoss: expected margin to be greater "
                             f"than 0, got {margin} instead")
        self.distance_function, self.margin, self.swap = distance_function, margin, swap

    def forward(self, anchor, positive, negative):
        return F.triplet_margin_with_distance_loss(
            anchor, positive, negative, distance_function=self.distance_function,
            margin=self.margin, swap=self.swap, reduction=self.reduction)


class MultiMarginLoss(_WeightedLoss):
    """See ``fastconv.functional.multi_margin_loss``; ``weight`` is kept as a buffer."""

    def __init__(self, p=1, margin=1.0, weight=None, size_average=None, reduce=None,
                 reduction="mean"):
        super().__init__(weight, size_average, reduce, reduction)
        if p not in (1, 2):
            raise ValueError("only p == 1 and p == 2 supported")
        if weight is not None and weight.ndim != 1:
            raise ValueError(f"MultiMarginLoss: expected weight to be None or 1D tensor, got "
                             f"{weight.ndim}D instead")
        self.p, self.margin = p, margin

    def forward(self, input, target):
        return F.multi_margin_loss(input, target, p=self.p, margin=self.margin,
                                   weight=self.weight, reduction=self.reduction)


class MultiLabelMarginLoss(_Loss):
    """See ``fastconv.functional.multilabel_margin_loss``."""

    def forward(self, input, target):
        return F.multilabel_margin_loss(input, target, reduction=self.reduction)


class MultiLabelSoftMarginLoss(_WeightedLoss):
    """See ``fastconv.functional.multilabel_soft_margin_loss``; ``weight`` is kept as a
    buffer."""

    def forward(self, input, target):
        return F.multilabel_soft_margin_loss(input, target, weight=self.weight,
                                             reduction=self.reduction)


class SoftMarginLoss(_Loss):
    """See ``fastconv.functional.soft_margin_loss``."""

    def forward(self, input, target):
        return F.soft_margin_loss(input, target, reduction=self.reduction)


class PoissonNLLLoss(_Loss):
    """See ``fastconv.functional.poisson_nll_loss``."""

    def __init__(self, log_input=True, full=False, size_average=None, eps=1e-8, reduce=None,
                 reduction="mean"):
        super().__init__(size_average, reduce, reduction)
        self.log_input, self.full, self.eps = log_input, full, eps

    def forward(self, log_input, target):
        return F.poisson_nll_loss(log_input, target, log_input=self.log_input, full=self.full,
                                  eps=self.eps, reduction=self.reduction)


class GaussianNLLLoss(_Loss):
    """See ``fastconv.functional.gaussian_nll_loss``; called as ``loss(input, target, var)``."""

    def __init__(self, *, full=False, eps=1e-6, reduction="mean"):
        super().__init__(reduction=reduction)
        self.full, self.eps = full, eps

    def forward(self, input, target, var):
        return F.gaussian_nll_loss(input, target, var, full=self.full, eps=self.eps,
                                   reduction=self.reduction)


class CosineSimilarity(Module):
    """See ``fastconv.functional.cosine_similarity``."""

    def __init__(self, dim=1, eps=1e-8):
        super().__init__()
        self.dim, self.eps = dim, eps

    def forward(self, x1, x2):
        return F.cosine_similarity(x1, x2, self.dim, self.eps)


class PairwiseDistance(Module):
    """See ``fastconv.functional.pairwise_distance``."""

    def __init__(self, p=2.0, eps=1e-6, keepdim=False):
        super().__init__()
        self.norm, self.eps, self.keepdim = p, eps, keepdim

    def forward(self, x1, x2):
        return F.pairwise_distance(x1, x2, self.norm, self.eps, self.keepdim)


# ----------------------------------------------------------------------------- more activations

def _activation(name, fn, params=(), doc=None, repr_inplace=True):
    """A Module class calling ``fn(x, *params)``; ``params`` are (name, default) pairs,
    the constructor's arguments in PyTorch's order (``inplace`` where PyTorch has it;
    ``repr_inplace``: whether torch's repr shows it)."""
    names = [p for p, _ in params]

    def __init__(self, *args, **kwargs):
        Module.__init__(self)
        values = dict(params)
        for key, value in zip(names, args):
            values[key] = value
        if len(args) > len(names):
            raise TypeError(f"{name}() takes at most {len(names)} arguments")
        for key, value in kwargs.items():
            if key not in values:
                raise TypeError(f"{name}() got an unexpected keyword argument {key!r}")
            values[key] = value
        for key, value in values.items():
            setattr(self, key, value)

    def forward(self, x):
        inplace = {"inplace": True} if getattr(self, "inplace", False) else {}
        return fn(x, *[getattr(self, p) for p in names if p != "inplace"], **inplace)

    def extra_repr(self):
        text = ", ".join(f"{p}={getattr(self, p)}" for p in names if p != "inplace")
        return _inplace_repr(text, repr_inplace and getattr(self, "inplace", False))

    return type(name, (Module,), {"__init__": __init__, "forward": forward,
                                  "extra_repr": extra_repr,
                                  "__doc__": doc or f"See ``fastconv.functional.{fn.__name__}``."})


ReLU6 = _activation("ReLU6", F.relu6, [("inplace", False)])
Hardtanh = _activation("Hardtanh", F.hardtanh, [("min_val", -1.0), ("max_val", 1.0),
                                                ("inplace", False)])
Hardsigmoid = _activation("Hardsigmoid", F.hardsigmoid, [("inplace", False)],
                          repr_inplace=False)
Hardswish = _activation("Hardswish", F.hardswish, [("inplace", False)], repr_inplace=False)
Softplus = _activation("Softplus", F.softplus, [("beta", 1.0), ("threshold", 20.0)])
Mish = _activation("Mish", F.mish, [("inplace", False)])
SELU = _activation("SELU", F.selu, [("inplace", False)])
CELU = _activation("CELU", F.celu, [("alpha", 1.0), ("inplace", False)])
LogSigmoid = _activation("LogSigmoid", F.logsigmoid)
Threshold = _activation("Threshold", F.threshold, [("threshold", None), ("value", None),
                                                   ("inplace", False)])
Softmin = _activation("Softmin", F.softmin, [("dim", None)])
GLU = _activation("GLU", F.glu, [("dim", -1)])
Softsign = _activation("Softsign", F.softsign)
Softshrink = _activation("Softshrink", F.softshrink, [("lambd", 0.5)])
Hardshrink = _activation("Hardshrink", F.hardshrink, [("lambd", 0.5)])
Tanhshrink = _activation("Tanhshrink", F.tanhshrink)
PixelShuffle = _activation("PixelShuffle", F.pixel_shuffle, [("upscale_factor", None)])
PixelUnshuffle = _activation("PixelUnshuffle", F.pixel_unshuffle, [("downscale_factor", None)])
Unfold = _activation("Unfold", F.unfold, [("kernel_size", None), ("dilation", 1),
                                          ("padding", 0), ("stride", 1)])
Fold = _activation("Fold", F.fold, [("output_size", None), ("kernel_size", None),
                                    ("dilation", 1), ("padding", 0), ("stride", 1)])


class RReLU(Module):
    """See ``fastconv.functional.rrelu``: random slopes in training mode, the mean slope
    (lower + upper) / 2 in evaluation mode. ``inplace=True``: the input takes the result."""

    def __init__(self, lower: float = 1.0 / 8, upper: float = 1.0 / 3, inplace: bool = False):
        super().__init__()
        self.lower, self.upper, self.inplace = lower, upper, inplace

    def forward(self, x):
        return F.rrelu(x, self.lower, self.upper, self.training, self.inplace)

    def extra_repr(self):
        return _inplace_repr(f"lower={self.lower}, upper={self.upper}", self.inplace)


class Softmax2d(Module):
    """Softmax over the channels (dim -3) of (N, C, H, W) or (C, H, W) input, at each
    location."""

    def forward(self, x):
        if x.ndim not in (3, 4):
            raise ValueError(f"Softmax2d: expected input to be 3D or 4D, got {x.ndim}D instead")
        return F.softmax(x, -3, _stacklevel=5)


class PReLU(Module):
    """See ``fastconv.functional.prelu``: ``num_parameters`` slopes (1, or one per channel),
    each initialised to ``init``."""

    def __init__(self, num_parameters: int = 1, init: float = 0.25, device=None, dtype=None):
        super().__init__()
        self.num_parameters, self.init = num_parameters, init
        self.weight = Parameter(Tensor(np.full(num_parameters, init, dtype=np.float32)))
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        init.constant_(self.weight, self.init)

    def forward(self, x):
        return F.prelu(x, self.weight)

    def extra_repr(self):
        return f"num_parameters={self.num_parameters}"


class Embedding(Module):
    """A lookup table of ``num_embeddings`` vectors of size ``embedding_dim``, drawn from
    N(0, 1) (the row at ``padding_idx`` is zero and gets no gradient); see
    ``fastconv.functional.embedding``."""

    def __init__(self, num_embeddings, embedding_dim, padding_idx=None, max_norm=None,
                 norm_type=2.0, scale_grad_by_freq=False, sparse=False, _weight=None,
                 _freeze=False, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("Padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.sparse = scale_grad_by_freq, sparse
        if _weight is None:
            self.weight = Parameter(Tensor(np.zeros((num_embeddings, embedding_dim), np.float32)))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise AssertionError("Shape of weight does not match num_embeddings and "
                                     "embedding_dim")
            self.weight = Parameter(Tensor(np.asarray(_weight, dtype=np.float32)),
                                    requires_grad=not _freeze)
        factory_kwargs(self, device, dtype)

    def reset_parameters(self):
        init.normal_(self.weight)
        if self.padding_idx is not None:
            from fastconv.autograd import no_grad

            with no_grad():
                self.weight[self.padding_idx] = 0.0

    def forward(self, input):
        return F.embedding(input, self.weight, self.padding_idx, self.max_norm, self.norm_type,
                           self.scale_grad_by_freq, self.sparse)

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, padding_idx=None, max_norm=None,
                        norm_type=2.0, scale_grad_by_freq=False, sparse=False):
        """An Embedding holding ``embeddings`` (2-D); ``freeze`` stops its gradient."""
        if embeddings.ndim != 2:
            raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
        n, d = embeddings.shape
        return cls(n, d, padding_idx, max_norm, norm_type, scale_grad_by_freq, sparse,
                   _weight=np.asarray(embeddings), _freeze=freeze)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        return s + (f", padding_idx={self.padding_idx}" if self.padding_idx is not None else "")


class EmbeddingBag(Module):
    """Sums, means or maxima of bags of embeddings (see
    ``fastconv.functional.embedding_bag``); the table is drawn from N(0, 1) as Embedding's
    (the row at ``padding_idx`` zero). ``forward(input, offsets=None,
    per_sample_weights=None)``."""

    def __init__(self, num_embeddings, embedding_dim, max_norm=None, norm_type=2.0,
                 scale_grad_by_freq=False, mode="mean", sparse=False, _weight=None,
                 include_last_offset=False, padding_idx=None, device=None, dtype=None):
        super().__init__()
        self.num_embeddings, self.embedding_dim = num_embeddings, embedding_dim
        self.max_norm, self.norm_type = max_norm, norm_type
        self.scale_grad_by_freq, self.mode, self.sparse = scale_grad_by_freq, mode, sparse
        self.include_last_offset = include_last_offset
        if padding_idx is not None:
            if not -num_embeddings <= padding_idx < num_embeddings:
                raise AssertionError("padding_idx must be within num_embeddings")
            padding_idx %= num_embeddings
        self.padding_idx = padding_idx
        if _weight is None:
            self.weight = Parameter(Tensor(np.zeros((num_embeddings, embedding_dim), np.float32)))
            self.reset_parameters()
        else:
            if tuple(_weight.shape) != (num_embeddings, embedding_dim):
                raise AssertionError("Shape of weight does not match num_embeddings and "
                                     "embedding_dim")
            self.weight = Parameter(Tensor(np.asarray(_weight, dtype=np.float32)))
        factory_kwargs(self, device, dtype)

    reset_parameters = Embedding.reset_parameters

    @classmethod
    def from_pretrained(cls, embeddings, freeze=True, max_norm=None, norm_type=2.0,
                        scale_grad_by_freq=False, mode="mean", sparse=False,
                        include_last_offset=False, padding_idx=None):
        if embeddings.ndim != 2:
            raise AssertionError("Embeddings parameter is expected to be 2-dimensional")
        rows, cols = embeddings.shape
        bag = cls(rows, cols, max_norm, norm_type, scale_grad_by_freq, mode, sparse,
                  np.asarray(embeddings), include_last_offset, padding_idx)
        bag.weight.requires_grad = not freeze
        return bag

    def forward(self, input, offsets=None, per_sample_weights=None):
        return F.embedding_bag(input, self.weight, offsets, self.max_norm, self.norm_type,
                               self.scale_grad_by_freq, self.mode, self.sparse,
                               per_sample_weights, self.include_last_offset, self.padding_idx)

    def extra_repr(self):
        s = f"{self.num_embeddings}, {self.embedding_dim}"
        if self.max_norm is not None:
            s += f", max_norm={self.max_norm}"
        if self.norm_type != 2:
            s += f", norm_type={self.norm_type}"
        if self.scale_grad_by_freq:
            s += f", scale_grad_by_freq={self.scale_grad_by_freq}"
        s += f", mode='{self.mode}'"
        if self.padding_idx is not None:
            s += f", padding_idx={self.padding_idx}"
        return s


class _InstanceNorm(Module):
    """See ``fastconv.functional.instance_norm``: (N, C, *spatial) or unbatched (C, *spatial)
    input with ``_dims`` spatial dims; no affine parameters and no running statistics by
    default (PyTorch's defaults)."""

    _dims = 2

    def __init__(self, num_features, eps=1e-5, momentum=0.1, affine=False,
                 track_running_stats=False, device=None, dtype=None, *, bias=True):
        super().__init__()
        self.num_features, self.eps, self.momentum = num_features, eps, momentum
        self.affine, self.track_running_stats = affine, track_running_stats
        if affine:
            self.weight = Parameter(Tensor(np.ones(num_features, np.float32)))
            self.bias = Parameter(Tensor(np.zeros(num_features, np.float32))) if bias else None
        else:
            self.weight = self.bias = None
        if track_running_stats:
            self.register_buffer("running_mean", Tensor(np.zeros(num_features, np.float32)))
            self.register_buffer("running_var", Tensor(np.ones(num_features, np.float32)))
            self.register_buffer("num_batches_tracked", Tensor(np.zeros((), np.int64)))
        else:
            self.running_mean = self.running_var = None
        factory_kwargs(self, device, dtype)

    reset_running_stats = _BatchNorm.reset_running_stats
    reset_parameters = _BatchNorm.reset_parameters

    def forward(self, x):
        name, d = type(self).__name__, self._dims
        if x.ndim not in (d + 1, d + 2):
            raise ValueError(f"{name}: expected {d + 1}D or {d + 2}D input (got {x.ndim}D "
                             "input)")
        unbatched = x.ndim == d + 1
        if unbatched:
            x = x.unsqueeze(0)
        if x.shape[1] != self.num_features and self.affine:
            raise ValueError(f"{name}: expected input's size at dim=1 to match "
                             f"num_features ({self.num_features}), but got: {x.shape[1]}.")
        use_input_stats = self.training or not self.track_running_stats
        y = F.instance_norm(x, self.running_mean if self.training else
                            (None if use_input_stats else self.running_mean),
                            self.running_var if self.training else
                            (None if use_input_stats else self.running_var),
                            self.weight, self.bias, use_input_stats, self.momentum, self.eps)
        return y.squeeze(0) if unbatched else y

    def extra_repr(self):
        return (f"{self.num_features}, eps={self.eps}, momentum={self.momentum}, "
                f"affine={self.affine}, bias={self.bias is not None}, "
                f"track_running_stats={self.track_running_stats}")


class InstanceNorm1d(_InstanceNorm):
    _dims = 1


class InstanceNorm2d(_InstanceNorm):
    _dims = 2


class InstanceNorm3d(_InstanceNorm):
    _dims = 3
