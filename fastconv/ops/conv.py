"""Convolution and the fully connected (linear) op."""

from __future__ import annotations

from fastconv.function import Function
from fastconv.ops.validate import (
    ArgumentError,
    check_allocation,
    contiguous,
    float_tensor,
    nonempty,
    pair,
    positive_int,
)
from fastconv.output_size import conv_output_size, conv_transpose_output_size


class Conv2d(Function):
    """y = conv(x, w) + b via im2col + GEMM in the backend (1×1 kernels skip im2col); under
    autocast on the bfloat16 GEMM where the backend has one (Function.use_bf16_gemm)."""

    autocast_lowp = True
    relu = False  # Conv2dReLU: y = max(y, 0) as well

    def forward(self, x, w, b, stride, padding, dilation, groups):
        # On the bfloat16 GEMM, x and w are rounded as they are packed: no rounded copies.
        # With a full tile of output channels per group (32) it is faster at any depth (a
        # first layer, 3 -> 64 3x3 at 32x32: 1.7 against 5.2 ms on the rounded copies);
        # with fewer, shallow products stay on the float32 kernels (BENCHMARKS.md).
        depth = w.shape[1] * w.shape[2] * w.shape[3]
        self.on_bf16_gemm = self.use_bf16_gemm(depth=None if w.shape[0] // groups >= 32 else depth)
        c = self.bf16 if self.lowp and not self.on_bf16_gemm else (
            lambda a: contiguous(self.xp, a))
        x, w = c(x), c(w)
        b = None if b is None else (self.bf16(b) if self.lowp else contiguous(self.xp, b))
        self.args = (stride, padding, dilation, groups)
        self.save_for_backward(x, w)
        self.has_bias = b is not None
        if self.on_bf16_gemm:  # rounds y, and applies the ReLU, as it writes y
            return self.kernels.conv2d_forward_bf16(x, w, b, stride, padding, dilation, groups,
                                                    self.relu)
        y = self.kernels.conv2d_forward(x, w, b, stride, padding, dilation, groups)
        if self.lowp:
            self.kernels.round_bf16_(y)
        return self.kernels.relu_forward(y) if self.relu else y

    def backward(self, dy):
        x, w = self.saved[:2]
        need_x, need_w, need_b = self.needs_input_grad[:3]
        need_b = need_b and self.has_bias
        # The backward products take the bfloat16 GEMM at any depth: it rounds dy as it reads
        # it, where the float32 kernels need a rounded copy of dy first (BENCHMARKS.md).
        if self.use_bf16_gemm():  # dy rounded as it is read, dx rounded as it is written
            return self.kernels.conv2d_backward_bf16(x, w, contiguous(self.xp, dy), *self.args,
                                                     need_x, need_w, need_b)
        dy = self.bf16(dy) if self.lowp else contiguous(self.xp, dy)
        dx, dw, db = self.kernels.conv2d_backward(x, w, dy, *self.args, need_x, need_w, need_b)
        if self.lowp and dx is not None:
            self.kernels.round_bf16_(dx)
        return dx, dw, db

    def backward_graph(self, dy):
        """im2col in Tensor ops: dx folds w^T dy back into the image, dw is dy times the
        unfolded input, per group."""
        from fastconv.ops.patches import fold

        x, w = self.parents[:2]
        stride, padding, dilation, groups = self.args
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dx = dw = db = None
        if need_x:
            n, c, h, wd = x.shape
            o, cg, kh, kw = w.shape
            dy_g = dy.reshape(n, groups, o // groups, -1)
            cols = w.reshape(groups, o // groups, cg * kh * kw).transpose(-1, -2) @ dy_g
            dx = fold(cols.reshape(n, c * kh * kw, -1), (h, wd), (kh, kw), dilation, padding,
                      stride)
        if need_w:
            dw = conv_weight_grad(x, dy, w.shape, *self.args)
        if need_b and self.has_bias:
            db = dy.sum(dim=(0, 2, 3))
        return dx, dw, db


def conv_weight_grad(x, dy, w_shape, stride, padding, dilation, groups):
    """The gradient of conv2d's weight (shape ``w_shape``) for input x and output gradient dy,
    in differentiable Tensor ops: per group, dy (O/g, L) times the unfolded input (L, C/g KK),
    summed over the batch."""
    from fastconv.ops.patches import unfold

    n = x.shape[0]
    o, cg, kh, kw = w_shape
    cols = unfold(x, (kh, kw), dilation, padding, stride).reshape(n, groups, cg * kh * kw, -1)
    dy_g = dy.reshape(n, groups, o // groups, -1)
    return (dy_g @ cols.transpose(-1, -2)).sum(dim=0).reshape(w_shape)


def check_padded_input(op, n, c, size, stride, padding):
    """Refuse a padding whose zero-padded copy of the input (which the CPU kernels build,
    rows rounded up to the stride) would not fit in memory: its 64-bit size arithmetic would
    overflow first, and the kernel would write past a too small buffer."""
    padded = [s + 2 * p for s, p in zip(size, padding)]
    row = padded[-1]
    step = min(stride[-1], row)
    check_allocation(op, (n, c, *padded[:-1], -(-row // step) * step),
                     what="the zero-padded input")


def same_padding(kernel, dilation):
    """PyTorch's padding="same" split per axis: (before, after) with before = total // 2
    and the odd pixel after, total = dilation * (kernel - 1)."""
    return tuple((d * (k - 1) // 2, d * (k - 1) - d * (k - 1) // 2)
                 for k, d in zip(kernel, dilation))


def string_padding(op, x, padding, kernel, stride, dilation):
    """PyTorch's padding strings for a convolution of any number of spatial dims: "valid"
    is no padding, "same" (stride 1 only) keeps each size with :func:`same_padding`'s split.
    Returns the input, padded by the odd pixel at the end of each axis whose total is odd
    (the kernels pad both sides alike), and the symmetric padding per axis; a padding that
    is not a string comes back unchanged."""
    if not isinstance(padding, str):
        return x, padding
    if padding == "valid":
        return x, (0,) * len(kernel)
    if padding != "same":
        raise ArgumentError(f"{op}: invalid padding string {padding!r}, should be one of "
                            "'valid', 'same'")
    if any(s != 1 for s in stride):
        raise ArgumentError(f"{op}: padding='same' is not supported for strided convolutions "
                            f"(stride {tuple(stride)})")
    split = same_padding(kernel, dilation)
    extra = [after - before for before, after in split]
    if any(extra):
        from fastconv.ops.pad import pad

        x = pad(x, tuple(v for e in reversed(extra) for v in (0, e)))  # last axis first
    return x, tuple(before for before, _ in split)


class Conv2dReLU(Conv2d):
    """relu(conv2d(x, w) + b) as one op: the bfloat16 GEMM applies the ReLU as it writes y
    (no pass over y of its own); elsewhere the ReLU kernel runs after the convolution. The
    backward passes dy through ReLU's mask, then the convolution's."""

    relu = True

    def forward(self, x, w, b, stride, padding, dilation, groups):
        y = super().forward(x, w, b, stride, padding, dilation, groups)
        self.save_for_backward(*self.saved, y)
        return y

    def backward(self, dy):
        return super().backward(self.kernels.relu_backward(self.saved[2],
                                                           contiguous(self.xp, dy)))

    def backward_graph(self, dy):
        from fastconv.tensor import Tensor

        return super().backward_graph(dy * Tensor((self.saved[2] > 0).astype(self.xp.float32)))


def conv2d(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    return _conv2d(Conv2d, input, weight, bias, stride, padding, dilation, groups)


def conv2d_relu(input, weight, bias=None, stride=1, padding=0, dilation=1, groups=1):
    """relu(conv2d(...)) in one op (:class:`Conv2dReLU`): what ``nn.Sequential`` runs for a
    Conv2d directly followed by a ReLU."""
    return _conv2d(Conv2dReLU, input, weight, bias, stride, padding, dilation, groups)


def _conv2d(fn, input, weight, bias, stride, padding, dilation, groups):
    op = "conv2d"
    float_tensor(input, "input", op, (3, 4))
    float_tensor(weight, "weight", op, (4,))
    if input.ndim == 3:  # unbatched (C, H, W), as PyTorch accepts it
        y = _conv2d(fn, input.reshape(1, *input.shape), weight, bias, stride, padding, dilation,
                    groups)
        return y.reshape(y.shape[1:])
    stride = pair(stride, "stride", op, 1)
    dilation = pair(dilation, "dilation", op, 1)
    x, padding = string_padding(op, input, padding, weight.shape[2:], stride, dilation)
    padding = pair(padding, "padding", op, 0)
    groups = positive_int(groups, "groups", op)
    N, C, H, W = x.shape
    OC, CG, KH, KW = weight.shape
    if C % groups or OC % groups:
        raise ArgumentError(f"{op}: groups={groups} must divide both the input channels ({C}) and "
                            f"the output channels ({OC})")
    if CG * groups != C:
        raise ArgumentError(f"{op}: input has {C} channels but weight {weight.shape} expects "
                            f"{CG} x groups={groups} = {CG * groups}")
    if bias is not None:
        float_tensor(bias, "bias", op, (1,))
        if bias.shape != (OC,):
            raise ArgumentError(f"{op}: bias must have shape ({OC},) to match weight "
                                f"{weight.shape}, "
                                f"got {bias.shape}")
    for axis, size, k in (("height", H, KH), ("width", W, KW)):
        i = 0 if axis == "height" else 1
        span = dilation[i] * (k - 1) + 1
        if size + 2 * padding[i] < span:
            raise ArgumentError(f"{op}: kernel {KH}x{KW} (dilation {dilation}) spans {span} in "
                                f"{axis}, larger than the padded input {size} + 2*{padding[i]}; "
                                f"input shape {x.shape}")
    out_hw = (conv_output_size(H, KH, stride[0], padding[0], dilation[0]),
              conv_output_size(W, KW, stride[1], padding[1], dilation[1]))
    if min(out_hw) < 1:
        raise ArgumentError(f"{op}: empty output for input {x.shape} and weight {weight.shape}")
    # A huge padding would overflow the kernel's 64-bit size arithmetic (a wrong, small
    # output) or ask for more memory than there is: refuse it here.
    check_allocation(op, (N, OC) + out_hw)
    check_padded_input(op, N, C, (H, W), stride, padding)
    return fn.apply(x, weight, bias, stride, padding, dilation, groups)


class ConvTranspose2d(Function):
    """y = conv_transpose(x, w) + b: the input gradient of the convolution whose weight is w,
    so the backend's conv2d kernels do the work: forward is conv2d's input gradient with x in
    dy's place, backward's dx is conv2d of dy, and dw is conv2d's weight gradient with the
    roles of x and dy swapped. ``extra`` (per axis) are output rows and columns that no input
    pixel reaches through the convolution (an output_padding of at least the stride): x is
    padded with zeros there so the shapes agree."""

    autocast_lowp = True

    def forward(self, x, w, b, stride, padding, dilation, groups, out_hw, extra):
        c = self.bf16 if self.lowp else (lambda a: contiguous(self.xp, a))
        x, w = c(x), c(w)
        if any(extra):
            x = self.xp.pad(x, ((0, 0), (0, 0), (0, extra[0]), (0, extra[1])))
        self.args = (stride, padding, dilation, groups)
        self.extra = extra
        self.save_for_backward(x, w)
        self.has_bias = b is not None
        N, OC = x.shape[0], w.shape[1] * groups
        # conv2d_backward reads only the shape of its x when no weight gradient is asked for
        placeholder = self.xp.empty((N, OC) + tuple(out_hw), dtype=self.xp.float32)
        y, _, _ = self.kernels.conv2d_backward(placeholder, w, x, stride, padding, dilation,
                                               groups, True, False, False)
        if b is not None:
            y += (self.bf16(b) if self.lowp else b).reshape(1, -1, 1, 1)
        if self.lowp:
            self.kernels.round_bf16_(y)
        return y

    def backward(self, dy):
        x, w = self.saved
        stride, padding, dilation, groups = self.args
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dy = self.bf16(dy) if self.lowp else contiguous(self.xp, dy)
        dx = dw = db = None
        if need_x:
            dx = self.kernels.conv2d_forward(dy, w, None, stride, padding, dilation, groups)
            if any(self.extra):
                dx = self.xp.ascontiguousarray(
                    dx[:, :, :dx.shape[2] - self.extra[0], :dx.shape[3] - self.extra[1]])
            if self.lowp:
                self.kernels.round_bf16_(dx)
        if need_w:
            _, dw, _ = self.kernels.conv2d_backward(dy, w, x, stride, padding, dilation, groups,
                                                    False, True, False)
        if need_b and self.has_bias:
            db = dy.sum(axis=(0, 2, 3))
        return dx, dw, db

    def backward_graph(self, dy):
        """dx is conv2d of dy (cropped by ``extra``); dw is the weight gradient of that same
        convolution with x (zero-padded by ``extra``) as its output gradient."""
        from fastconv.ops.pad import pad

        x, w = self.parents[:2]
        stride, padding, dilation, groups = self.args
        need_x, need_w, need_b = self.needs_input_grad[:3]
        dx = dw = db = None
        if need_x:
            dx = Conv2d.apply(dy, w, None, stride, padding, dilation, groups)
            dx = dx[:, :, :x.shape[2], :x.shape[3]]
        if need_w:
            x_padded = pad(x, (0, self.extra[1], 0, self.extra[0])) if any(self.extra) else x
            dw = conv_weight_grad(dy, x_padded, w.shape, *self.args)
        if need_b and self.has_bias:
            db = dy.sum(dim=(0, 2, 3))
        return dx, dw, db


def conv_transpose2d(input, weight, bias=None, stride=1, padding=0, output_padding=0,
                     groups=1, dilation=1, output_size=None):
    """torch's conv_transpose2d: the gradient of conv2d with respect to its input, as an op.
    weight is (in_channels, out_channels / groups, kH, kW). ``output_size`` (H, W) (or with
    batch and channels) picks the output_padding that gives it, as nn.ConvTranspose2d."""
    op = "conv_transpose2d"
    float_tensor(input, "input", op, (3, 4))
    float_tensor(weight, "weight", op, (4,))
    if output_size is not None:  # (H, W), or with the leading dims of the output
        output_size = tuple(int(n) for n in output_size)
        if len(output_size) not in (2, input.ndim):
            raise ArgumentError(f"{op}: for {input.ndim}-D input, output_size must have 2 or "
                                f"{input.ndim} elements, got {len(output_size)}")
        output_size = output_size[-2:]
    # torch: no empty plane (no channels is refused there too, but here it gives the bias,
    # a sum over no inputs, as conv2d without input channels does)
    nonempty(input, "input", op, input.ndim - 2)
    if input.ndim == 3:
        y = conv_transpose2d(input.reshape(1, *input.shape), weight, bias, stride, padding,
                             output_padding, groups, dilation, output_size)
        return y.reshape(y.shape[1:])
    stride = pair(stride, "stride", op, 1)
    dilation = pair(dilation, "dilation", op, 1)
    padding = pair(padding, "padding", op, 0)
    output_padding = pair(output_padding, "output_padding", op, 0)
    groups = positive_int(groups, "groups", op)
    N, C, H, W = input.shape
    IC, OCG, KH, KW = weight.shape
    if C != IC:
        raise ArgumentError(f"{op}: input has {C} channels but weight {tuple(weight.shape)} "
                            f"expects {IC} (weight is (in_channels, out_channels/groups, kH, kW))")
    if IC % groups:
        raise ArgumentError(f"{op}: groups={groups} must divide the input channels ({IC})")
    if bias is not None:
        float_tensor(bias, "bias", op, (1,))
        if bias.shape != (OCG * groups,):
            raise ArgumentError(f"{op}: bias must have shape ({OCG * groups},) to match weight "
                                f"{tuple(weight.shape)} and groups={groups}, got {bias.shape}")
    sizes = (H, W)
    kernel = (KH, KW)
    if output_size is not None:
        output_padding = _output_padding_for(op, output_size, sizes, kernel, stride, padding,
                                             dilation)
    out_hw, extra = [], []
    for i in range(2):
        if not output_padding[i] < max(stride[i], dilation[i]):
            raise ArgumentError(f"{op}: output_padding {output_padding} must be smaller than "
                                f"either stride {stride} or dilation {dilation}")
        size = conv_transpose_output_size(sizes[i], kernel[i], stride[i], padding[i],
                                          dilation[i], output_padding[i])
        if size < 1:
            raise ArgumentError(f"{op}: empty output ({size} along axis {i + 2}) for input "
                                f"{tuple(input.shape)}, weight {tuple(weight.shape)}, stride "
                                f"{stride}, padding {padding}, dilation {dilation}")
        out_hw.append(size)
        extra.append(conv_output_size(size, kernel[i], stride[i], padding[i], dilation[i])
                     - sizes[i])
    check_allocation(op, (N, OCG * groups) + tuple(out_hw))
    check_padded_input(op, N, OCG * groups, out_hw, stride, padding)
    return ConvTranspose2d.apply(input, weight, bias, stride, padding, dilation, groups,
                                 tuple(out_hw), tuple(extra))


def _output_padding_for(op, output_size, sizes, kernel, stride, padding, dilation):
    """The output_padding that makes the (H, W) output ``output_size`` (torch's rule)."""
    result = []
    for i in range(2):
        smallest = conv_transpose_output_size(sizes[i], kernel[i], stride[i], padding[i],
                                              dilation[i], 0)
        largest = smallest + stride[i] - 1
        if not smallest <= output_size[i] <= largest:
            raise ArgumentError(f"{op}: requested an output size of {output_size}, but valid "
                                f"sizes range from {smallest} to {largest} (for an input of "
                                f"{sizes})")
        result.append(output_size[i] - smallest)
    return tuple(result)


class Linear(Function):
    """y = x w^T + b for x (N, in), w (out, in), through the backend BLAS."""

    autocast_lowp = True

    def forward(self, x, w, b):
        self.on_bf16_gemm = self.use_bf16_gemm()
        c = self.bf16 if self.lowp and not self.on_bf16_gemm else (
            lambda a: contiguous(self.xp, a))
        x, w = c(x), c(w)
        self.save_for_backward(x, w)
        gemm = self.kernels.gemm_bf16 if self.on_bf16_gemm else self.kernels.gemm
        y = gemm(x, w, trans_b=True)
        if b is not None:
            y += self.bf16(b) if self.lowp else b
        if self.lowp:
            self.kernels.round_bf16_(y)
        return y

    def backward(self, dy):
        x, w = self.saved
        dy = self.bf16(dy) if self.lowp else contiguous(self.xp, dy)
        need_x, need_w, need_b = self.needs_input_grad
        gemm = self.kernels.gemm_bf16 if self.on_bf16_gemm else self.kernels.gemm
        dx = gemm(dy, w) if need_x else None
        if self.lowp and dx is not None:
            self.kernels.round_bf16_(dx)
        dw = gemm(dy, x, trans_a=True) if need_w else None
        db = dy.sum(axis=0) if need_b else None
        return dx, dw, db

    def backward_graph(self, dy):
        x, w = self.parents[:2]
        need_x, need_w, need_b = self.needs_input_grad
        return (dy @ w if need_x else None, dy.t() @ x if need_w else None,
                dy.sum(dim=0) if need_b else None)


def linear(input, weight, bias=None):
    op = "linear"
    float_tensor(input, "input", op)
    float_tensor(weight, "weight", op, (2,))
    if input.ndim < 1 or input.shape[-1] != weight.shape[1]:
        raise ArgumentError(f"{op}: input's last dimension must equal weight's in_features "
                            f"{weight.shape[1]}; input {input.shape}, weight {weight.shape}")
    if bias is not None:
        float_tensor(bias, "bias", op, (1,))
        if bias.shape != (weight.shape[0],):
            raise ArgumentError(f"{op}: bias must have shape ({weight.shape[0]},), got "
                                f"{bias.shape}")
    if input.ndim == 2:
        return Linear.apply(input, weight, bias)
    lead = input.shape[:-1]
    y = Linear.apply(input.reshape(-1, input.shape[-1]), weight, bias)
    return y.reshape(*lead, weight.shape[0])


def bilinear(input1, input2, weight, bias=None):
    """y[..., o] = sum over i, j of x1[..., i] * weight[o, i, j] * x2[..., j] + bias[o]."""
    op = "bilinear"
    float_tensor(input1, "input1", op)
    float_tensor(input2, "input2", op)
    float_tensor(weight, "weight", op, (3,))
    if input1.shape[:-1] != input2.shape[:-1] or input1.shape[-1] != weight.shape[1] or \
            input2.shape[-1] != weight.shape[2]:
        raise RuntimeError(f"{op}: input1 {tuple(input1.shape)} and input2 "
                           f"{tuple(input2.shape)} do not match weight {tuple(weight.shape)} "
                           "(out, in1, in2) with equal leading dims")
    from fastconv.toplevel import einsum

    if bias is not None:  # checked first: a wrong length would broadcast against y
        float_tensor(bias, "bias", op, (1,))
        if bias.shape != (weight.shape[0],):
            raise ArgumentError(f"{op}: bias must have shape ({weight.shape[0]},) to match "
                                f"weight {tuple(weight.shape)}, got {tuple(bias.shape)}")
    y = einsum("...i,oij,...j->...o", input1, weight, input2)
    if bias is not None:
        y = y + bias
    return y

