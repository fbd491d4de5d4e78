"""Export a fastconv model to ONNX by tracing one forward pass.

The model runs once, in eval mode, on the example input with autograd recording. Every op
of fastconv is a :class:`fastconv.function.Function` node of that graph, which keeps its
arguments (``parents``) and the attributes its backward needs (``dim``, ``dims``, ...):
that is all an ONNX node needs. Walking the graph back from the outputs gives the nodes in
reverse order; the ``CONVERTERS`` table below turns each Function class into ONNX nodes.
Forward hooks name each node after the module that ran it (``features.0/Conv``), as
torch.onnx does.

Eval mode removes what only training does: dropout is the identity (no node), batch norm
uses its running statistics, and the auxiliary heads of GoogLeNet and Inception v3 are
not run, so they are not in the graph.

Conventions that differ between fastconv and ONNX, and how they are mapped:

* LRN: fastconv (like PyTorch and Caffe) divides alpha by the window size, and so does
  ONNX's LRN, so ``size, alpha, beta, k`` pass through unchanged (``k`` is ONNX's
  ``bias``). For an even size the two windows differ (PyTorch: [c - size//2,
  c + (size-1)//2], ONNX: [c - (size-1)//2, c + size//2]); that is refused.
* Pooling ``ceil_mode`` and ``count_include_pad`` are ONNX attributes of the same meaning.
* Adaptive average pooling: output 1×1 is GlobalAveragePool, sizes that divide the input
  are AveragePool, other sizes the two window-averaging matrix products fastconv runs.
* Max pooling with dilation is MaxPool with ``dilations``; adaptive max pooling gathers
  each window's rows and columns (the windows of adaptive average pooling) and ReduceMax.
* Layer, group and instance norm are one kernel Function (``norm.GroupNorm``); layer norm
  (it records its (rows, K) view) is LayerNormalization (opset 17), the others
  InstanceNormalization over (N, G, rest) and the per-channel affine.
* Padding (``pad.Pad``) and interpolation (``upsample.Resize2d``) keep only the index
  tables their kernels read: constant padding becomes Pad with the amounts read back from
  the tables, the other modes Gathers through the tables, interpolation the two matrix
  products the tables define (bicubic interpolation, ``upsample.SeparableResize``, holds
  its two matrices already).
* ``dynamic_batch``: the input's and outputs' first dimension is the symbol ``batch``;
  reshapes that keep the batch dimension write 0 ("copy the input's") there.
"""

from __future__ import annotations

import io
import os
from collections.abc import Callable

import numpy as np

from fastconv import autograd
from fastconv.ops import activation, arith, conv, norm, pad, pool, upsample
from fastconv.ops import math as fmath
from fastconv.output_size import conv_transpose_output_size
from fastconv.tensor import Tensor

__all__ = ["CONVERTERS", "MIN_OPSET", "ExportError", "export", "to_model_proto"]

#: Softmax over one axis (not a flattened 2-D view) and Reduce*/Split axes as in opset 13.
MIN_OPSET = 13


class ExportError(RuntimeError):
    """The model holds something ONNX export cannot write (the message says what)."""


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - onnx is in the test extra
        raise ImportError("fastconv.onnx needs the onnx package: pip install onnx") from e
    return onnx


# ------------------------------------------------------------------------------------------
# Tracing: run the model, name the Function nodes after their modules
# ------------------------------------------------------------------------------------------

def _producers(t):
    return t._ctx if isinstance(t, Tensor) else None


def _name_nodes_by_module(model, x):
    """Run ``model(x)`` with forward hooks that map each Function node to the name of the
    innermost module that created it. Returns (output, {id(fn): module name})."""
    names: dict[int, str] = {}
    handles = []

    def hook_for(name):
        def hook(module, args, out):
            stop = {id(a) for a in args if isinstance(a, Tensor)}
            outs = out if isinstance(out, (tuple, list)) else (out,)
            stack = [o._ctx for o in outs if isinstance(o, Tensor) and o._ctx is not None]
            while stack:
                fn = stack.pop()
                if id(fn) in names:
                    continue
                names[id(fn)] = name
                for p in fn.parents:
                    if isinstance(p, Tensor) and id(p) not in stop and p._ctx is not None:
                        stack.append(p._ctx)
        return hook

    for name, m in model.named_modules():
        if name:
            handles.append(m.register_forward_hook(hook_for(name)))
    try:
        with autograd.set_grad_enabled(True):
            out = model(x)
    finally:
        for h in handles:
            h.remove()
    return out, names


def _topological(outputs):
    """Function nodes reachable from ``outputs``, each after the nodes it reads."""
    order, seen = [], set()
    for out in outputs:
        if out._ctx is None or id(out._ctx) in seen:
            continue
        stack = [(out._ctx, False)]
        while stack:
            fn, done = stack.pop()
            if done:
                order.append(fn)
                continue
            if id(fn) in seen:
                continue
            seen.add(id(fn))
            stack.append((fn, True))
            for p in reversed(fn.parents):
                if isinstance(p, Tensor) and p._ctx is not None and id(p._ctx) not in seen:
                    stack.append((p._ctx, False))
    return order


# ------------------------------------------------------------------------------------------
# Graph building
# ------------------------------------------------------------------------------------------

class _Graph:
    """Nodes, initializers and value names of the ONNX graph being written."""

    def __init__(self, opset: int, dynamic_batch: bool, batch: int):
        self.onnx = _onnx()
        self.opset = opset
        self.dynamic_batch = dynamic_batch
        self.batch = batch
        self.nodes = []
        self.initializers = {}
        self.value_of: dict[int, str] = {}   # id(Tensor or array) -> value name
        self.used_names: set[str] = set()
        self.node_counts: dict[str, int] = {}
        self.scope = ""

    def unique(self, base: str) -> str:
        name, k = base, 1
        while name in self.used_names:
            name, k = f"{base}_{k}", k + 1
        self.used_names.add(name)
        return name

    def constant(self, array, base: str = "const") -> str:
        """An initializer holding ``array`` (float arrays as float32)."""
        a = np.asarray(array)
        if a.dtype.kind == "f":
            a = a.astype(np.float32)
        name = self.unique(base)
        self.initializers[name] = self.onnx.numpy_helper.from_array(np.ascontiguousarray(a),
                                                                    name)
        return name

    def ints(self, values, base: str) -> str:
        return self.constant(np.asarray(values, np.int64), base)

    def add(self, op_type: str, inputs, outputs=None, **attrs) -> list[str]:
        n = self.node_counts.get((self.scope, op_type), 0)
        self.node_counts[(self.scope, op_type)] = n + 1
        node_name = f"{self.scope}/{op_type}" + (f"_{n}" if n else "")
        if outputs is None:
            outputs = [self.unique(f"{node_name}_output")]
        attrs = {k: v for k, v in attrs.items() if v is not None}
        self.nodes.append(self.onnx.helper.make_node(op_type, list(inputs), list(outputs),
                                                     name=node_name, **attrs))
        return list(outputs)

    def input_of(self, value, base: str = "const") -> str:
        """The value name of a Function argument: a traced tensor, the input, a named
        parameter or buffer, or a constant (an initializer written the first time)."""
        if value is None:
            return ""
        if isinstance(value, Tensor):
            if value._ctx is not None:
                return self.value_of[id(value._ctx)]
            if id(value) in self.value_of:
                return self.value_of[id(value)]
            value = value.data
        if isinstance(value, (int, float)):
            return self.constant(np.asarray(value, np.float32), base)
        if id(value) not in self.value_of:
            self.value_of[id(value)] = self.constant(_host(value), base)
        return self.value_of[id(value)]


def _host(a) -> np.ndarray:
    return a.get() if type(a).__module__.startswith("cupy") else np.asarray(a)


# ------------------------------------------------------------------------------------------
# One converter per Function class: (graph, fn, output name) -> None
# ------------------------------------------------------------------------------------------

def _pads(padding):
    ph, pw = padding
    return [ph, pw, ph, pw]


def _conv(g, fn, out):
    x, w, b, stride, padding, dilation, groups = fn.parents
    kh, kw = w.shape[2:]
    inputs = [g.input_of(x), g.input_of(w)] + ([g.input_of(b)] if b is not None else [])
    g.add("Conv", inputs, [out], kernel_shape=[kh, kw], strides=list(stride),
          pads=_pads(padding), dilations=list(dilation), group=int(groups))


def _conv_relu(g, fn, out):
    """Conv2dReLU (a Conv2d and ReLU that nn.Sequential ran as one op): Conv, then Relu."""
    pre = g.unique(f"{out}_conv")
    _conv(g, fn, pre)
    g.add("Relu", [pre], [out])


def _conv_transpose(g, fn, out):
    x, w, b, stride, padding, dilation, groups, out_hw, _ = fn.parents
    kernel = w.shape[2:]
    output_padding = [out_hw[i] - conv_transpose_output_size(x.shape[2 + i], kernel[i],
                                                             stride[i], padding[i],
                                                             dilation[i], 0)
                      for i in range(2)]
    inputs = [g.input_of(x), g.input_of(w)] + ([g.input_of(b)] if b is not None else [])
    g.add("ConvTranspose", inputs, [out], kernel_shape=list(kernel), strides=list(stride),
          pads=_pads(padding), dilations=list(dilation), group=int(groups),
          output_padding=output_padding)


def _linear(g, fn, out):
    x, w, b = fn.parents
    inputs = [g.input_of(x), g.input_of(w)] + ([g.input_of(b)] if b is not None else [])
    g.add("Gemm", inputs, [out], alpha=1.0, beta=1.0, transB=1)


def _max_pool(g, fn, out):
    x, kernel, stride, padding, ceil_mode, dilation = fn.parents[:6]
    g.add("MaxPool", [g.input_of(x)], [out], kernel_shape=list(kernel), strides=list(stride),
          pads=_pads(padding), ceil_mode=int(ceil_mode), dilations=list(dilation))


def _avg_pool(g, fn, out):
    x, kernel, stride, padding, ceil_mode, count_include_pad = fn.parents
    g.add("AveragePool", [g.input_of(x)], [out], kernel_shape=list(kernel),
          strides=list(stride), pads=_pads(padding), ceil_mode=int(ceil_mode),
          count_include_pad=int(count_include_pad))


def _adaptive_avg_pool(g, fn, out):
    # y = (Ah x) Aw^T per plane, in the order fastconv computes it.
    x = fn.parents[0]
    ah, aw = _host(fn.ah), _host(fn.aw)
    cols = g.add("MatMul", [g.constant(ah, "adaptive_pool_ah"), g.input_of(x)])
    g.add("MatMul", [cols[0], g.constant(aw.T, "adaptive_pool_aw_t")], [out])


def _batch_norm_eval(g, fn, out):
    x, weight, bias, mean, var, eps = fn.parents
    c = x.shape[1]
    scale = g.input_of(weight) if weight is not None else g.constant(np.ones(c, np.float32),
                                                                      "bn_scale")
    shift = g.input_of(bias) if bias is not None else g.constant(np.zeros(c, np.float32),
                                                                  "bn_shift")
    g.add("BatchNormalization", [g.input_of(x), scale, shift, g.input_of(mean, "running_mean"),
                                 g.input_of(var, "running_var")], [out], epsilon=float(eps))


def _lrn(g, fn, out):
    x, size, alpha, beta, k = fn.parents
    if size % 2 == 0:
        raise ExportError(f"LocalResponseNorm size={size}: ONNX's LRN centres an even window "
                          "one channel later than fastconv and PyTorch; only odd sizes export")
    g.add("LRN", [g.input_of(x)], [out], size=int(size), alpha=float(alpha), beta=float(beta),
          bias=float(k))


def _relu(g, fn, out):
    g.add("Relu", [g.input_of(fn.parents[0])], [out])


def _softmax(op_type):
    def convert(g, fn, out):
        x, dim = fn.parents
        g.add(op_type, [g.input_of(x)], [out], axis=int(dim))
    return convert


def _cat(g, fn, out):
    g.add("Concat", [g.input_of(p) for p in fn.parents], [out], axis=int(fn.dim))


def _reshape(g, fn, out):
    x, shape = fn.parents
    in_shape = tuple(x.shape)
    shape = [int(s) for s in shape]
    if len(in_shape) >= 2 and len(shape) == 2 and shape[0] == in_shape[0] \
            and shape[1] in (-1, int(np.prod(in_shape[1:]))):
        g.add("Flatten", [g.input_of(x)], [out], axis=1)
        return
    if g.dynamic_batch and shape and in_shape and shape[0] == in_shape[0] == g.batch:
        shape[0] = 0  # ONNX Reshape: 0 copies the input's dimension (the batch)
    g.add("Reshape", [g.input_of(x), g.ints(shape, "shape")], [out])


def _permute(g, fn, out):
    x, dims = fn.parents
    g.add("Transpose", [g.input_of(x)], [out], perm=[int(d) for d in dims])


def _binary(op_type):
    def convert(g, fn, out):
        a, b = fn.parents
        g.add(op_type, [g.input_of(a), g.input_of(b)], [out])
    return convert


def _unary(op_type):
    def convert(g, fn, out):
        g.add(op_type, [g.input_of(fn.parents[0])], [out])
    return convert


def _leaky_relu(g, fn, out):
    x, slope = fn.parents
    g.add("LeakyRelu", [g.input_of(x)], [out], alpha=float(slope))


def _elu(g, fn, out):
    x, alpha = fn.parents
    g.add("Elu", [g.input_of(x)], [out], alpha=float(alpha))


def _silu(g, fn, out):
    x = g.input_of(fn.parents[0])
    (s,) = g.add("Sigmoid", [x])
    g.add("Mul", [x, s], [out])


def _gelu(g, fn, out):
    # Opset 17 has no Gelu: 0.5 x (1 + erf(x / sqrt 2)), the exact form.
    x, approximate = fn.parents
    if approximate != "none":
        raise ExportError(f"gelu(approximate={approximate!r}) does not export; the exact "
                          "form (approximate='none') does")
    xin = g.input_of(x)
    (z,) = g.add("Div", [xin, g.constant(np.float32(np.sqrt(2.0)), "sqrt2")])
    (e,) = g.add("Erf", [z])
    (one_e,) = g.add("Add", [e, g.constant(np.float32(1.0), "one")])
    (xe,) = g.add("Mul", [xin, one_e])
    g.add("Mul", [xe, g.constant(np.float32(0.5), "half")], [out])


def _pow(g, fn, out):
    a, p = fn.parents
    g.add("Pow", [g.input_of(a), g.constant(np.asarray(p, np.float32), "exponent")], [out])


def _reduce(op_type):
    def convert(g, fn, out):
        x = fn.parents[0]
        dims = list(fn.dims) if hasattr(fn, "dims") else [fn.dim]
        keep = int(bool(fn.keepdim))
        if op_type == "ReduceMean" and keep and x.ndim == 4 and dims == [2, 3]:
            g.add("GlobalAveragePool", [g.input_of(x)], [out])
        elif op_type == "ReduceSum" or g.opset >= 18:
            g.add(op_type, [g.input_of(x), g.ints(dims, "axes")], [out], keepdims=keep)
        else:
            g.add(op_type, [g.input_of(x)], [out], axes=dims, keepdims=keep)
    return convert


def _get_item(g, fn, out):
    x, index = fn.parents
    index = index if isinstance(index, tuple) else (index,)
    starts, ends, axes, steps, squeeze = [], [], [], [], []
    for axis, i in enumerate(index):
        if isinstance(i, (int, np.integer)) and not isinstance(i, bool):
            starts.append(int(i)); ends.append(int(i) + 1 if i != -1 else 2**62)
            axes.append(axis); steps.append(1); squeeze.append(axis)
        elif isinstance(i, slice):
            if i == slice(None):
                continue
            s, e, st = i.indices(x.shape[axis])
            starts.append(s); ends.append(e if st > 0 or e >= 0 else -2**62)
            axes.append(axis); steps.append(st)
        else:
            raise ExportError(f"indexing with {type(i).__name__} does not export (only ints "
                              "and slices do)")
    name = g.input_of(x)
    if axes:
        (name,) = g.add("Slice", [name, g.ints(starts, "starts"), g.ints(ends, "ends"),
                                  g.ints(axes, "axes"), g.ints(steps, "steps")],
                        None if squeeze else [out])
    if squeeze:
        g.add("Squeeze", [name, g.ints(squeeze, "axes")], [out])
    elif not axes:
        g.add("Identity", [name], [out])


def _layer_norm(g, fn, out):
    # layer_norm runs as GroupNorm over x viewed as (rows, K) (fn.view): one group, so the
    # normalised dims are the trailing dims of x that make up K. The affine parameters
    # have their shape; without them, any such suffix normalises the same values.
    x, weight, bias, _, eps = fn.parents
    if g.opset < 17:
        raise ExportError(f"LayerNorm exports as LayerNormalization (opset 17); export with "
                          f"opset_version >= 17, not {g.opset}")
    params = [t for t in (weight, bias) if t is not None]
    if params:
        shape = tuple(int(n) for n in params[0].shape)
    else:
        k = fn.view[1]
        shape = next(x.shape[d:] for d in range(x.ndim - 1, -1, -1)
                     if int(np.prod(x.shape[d:])) == k)
    scale = (g.input_of(weight) if weight is not None
             else g.constant(np.ones(shape, np.float32), "ln_scale"))
    inputs = [g.input_of(x), scale] + ([g.input_of(bias)] if bias is not None else [])
    g.add("LayerNormalization", inputs, [out], axis=-len(shape), epsilon=float(eps))


def _group_norm(g, fn, out):
    # group_norm, instance_norm and layer_norm all run norm.GroupNorm; layer_norm's call
    # records its (rows, K) view.
    if fn.view is not None:
        _layer_norm(g, fn, out)
        return
    # (N, G, rest) rows through InstanceNormalization (every opset; GroupNormalization needs
    # 18 and has changed meaning since), then the per-channel affine.
    x, weight, bias, groups, eps = fn.parents
    c, rest = x.shape[1], list(x.shape[2:])
    (rows,) = g.add("Reshape", [g.input_of(x), g.ints([0, groups, -1], "group_shape")])
    (normed,) = g.add("InstanceNormalization",
                      [rows, g.constant(np.ones(groups, np.float32), "gn_ones"),
                       g.constant(np.zeros(groups, np.float32), "gn_zeros")], epsilon=float(eps))
    affine = [(t, op) for t, op in ((weight, "Mul"), (bias, "Add")) if t is not None]
    (y,) = g.add("Reshape", [normed, g.ints([0, c] + rest, "input_shape")],
                 None if affine else [out])
    cshape = g.ints([c] + [1] * len(rest), "channel_shape")
    for i, (t, op) in enumerate(affine):
        (param,) = g.add("Reshape", [g.input_of(t), cshape])
        (y,) = g.add(op, [y, param], [out] if i == len(affine) - 1 else None)


def _constant_pad_amounts(table, size):
    """(before, after) when ``table`` is the constant-mode table of pad._source_index for a
    dim of ``size``, else None (a reflect / replicate / circular table)."""
    valid = np.flatnonzero(table >= 0)
    before = int(valid[0] - table[valid[0]]) if valid.size else len(table)
    after = len(table) - size - before
    same = np.array_equal(table, pad._source_index("constant", size, before, after))
    return (before, after) if same else None


def _pad(g, fn, out):
    # pad.Pad keeps only its per-dim source tables (None: dim not padded). Constant mode
    # (the tables with -1 for the value, or crops) is one Pad node with the amounts read
    # back from the tables; the other modes are one Gather per padded dim through the
    # table fastconv itself gathers with (exact for every mode and opset).
    x, index, value = fn.parents
    tables = {d: _host(t).astype(np.int64) for d, t in enumerate(index) if t is not None}
    if not tables:
        g.add("Identity", [g.input_of(x)], [out])
        return
    amounts = {d: _constant_pad_amounts(t, x.shape[d]) for d, t in tables.items()}
    if all(a is not None for a in amounts.values()):
        begin, end = [0] * x.ndim, [0] * x.ndim
        for d, (before, after) in amounts.items():
            begin[d], end[d] = before, after
        g.add("Pad", [g.input_of(x), g.ints(begin + end, "pads"),
                      g.constant(np.float32(value), "pad_value")], [out], mode="constant")
        return
    if any((t < 0).any() for t in tables.values()):
        raise ExportError("padding tables mixing the constant value with other modes do not "
                          "export")
    name = g.input_of(x)
    for i, (d, t) in enumerate(tables.items()):
        (name,) = g.add("Gather", [name, g.ints(t, "pad_index")],
                        [out] if i == len(tables) - 1 else None, axis=int(d))


def _resize_matrix(table, size):
    """The (out, size) matrix of one axis of upsample.Resize2d: output o reads input i0[o]
    with weight 1 - l1[o] and min(i0[o] + 1, size - 1) with l1[o] (nearest: i0[o] alone)."""
    i0, l1 = table
    i0 = _host(i0).astype(np.int64)
    o = np.arange(len(i0))
    m = np.zeros((len(i0), size), np.float32)
    if l1 is None:
        m[o, i0] = 1.0
    else:
        l1 = _host(l1).astype(np.float32)
        np.add.at(m, (o, i0), np.float32(1) - l1)
        np.add.at(m, (o, np.minimum(i0 + 1, size - 1)), l1)
    return m


def _resize(g, fn, out):
    # interpolate (nearest, nearest-exact, bilinear): y = Ah x Aw^T per plane, with Ah and
    # Aw built from the row and column tables the kernel interpolates with.
    x, rows, cols = fn.parents
    ah, aw = _resize_matrix(rows, x.shape[2]), _resize_matrix(cols, x.shape[3])
    (r,) = g.add("MatMul", [g.constant(ah, "resize_ah"), g.input_of(x)])
    g.add("MatMul", [r, g.constant(aw.T, "resize_aw_t")], [out])


def _separable_resize(g, fn, out):
    # interpolate (bicubic): y = Ah x Aw^T per plane with the matrices the op multiplies by.
    x, ah, aw = fn.parents
    (r,) = g.add("MatMul", [g.constant(_host(ah).astype(np.float32), "resize_ah"),
                            g.input_of(x)])
    g.add("MatMul", [r, g.constant(np.ascontiguousarray(_host(aw).T, np.float32),
                                   "resize_aw_t")], [out])


def _adaptive_windows(size, out):
    """(out, width) int64: the input cells of each adaptive window along one axis (the
    nonzeros of pool's window-averaging matrix), shorter windows padded with their last
    cell (a repeated cell leaves the max unchanged)."""
    cells = [np.flatnonzero(r) for r in pool._window_average_matrix(np, size, out)]
    width = max(len(c) for c in cells)
    return np.array([np.concatenate([c, np.full(width - len(c), c[-1])]) for c in cells],
                    np.int64)


def _adaptive_max_pool(g, fn, out):
    # Gather each window's rows, then its columns, and take the max over both window axes.
    x, output_size = fn.parents[:2]
    rows = _adaptive_windows(x.shape[2], output_size[0])
    cols = _adaptive_windows(x.shape[3], output_size[1])
    (r,) = g.add("Gather", [g.input_of(x), g.ints(rows, "window_rows")], axis=2)  # N C OH KH W
    (c,) = g.add("Gather", [r, g.ints(cols, "window_cols")], axis=4)  # N C OH KH OW KW
    if g.opset >= 18:
        g.add("ReduceMax", [c, g.ints([3, 5], "axes")], [out], keepdims=0)
    else:
        g.add("ReduceMax", [c], [out], axes=[3, 5], keepdims=0)


def _pointwise_activation(g, fn, out):
    x, name, *params = fn.parents
    xin = g.input_of(x)
    if name == "hardtanh":
        lo, hi = params
        g.add("Clip", [xin, g.constant(np.float32(lo), "clip_min"),
                       g.constant(np.float32(hi), "clip_max")], [out])
    elif name == "hardsigmoid":
        g.add("HardSigmoid", [xin], [out], alpha=1.0 / 6, beta=0.5)
    elif name == "hardswish":
        g.add("HardSwish", [xin], [out])
    elif name == "selu":
        g.add("Selu", [xin], [out])
    elif name == "celu":
        g.add("Celu", [xin], [out], alpha=float(params[0]))
    else:
        raise ExportError(f"activation {name} does not export (hardtanh/relu6, hardsigmoid, "
                          "hardswish, selu and celu do)")


def _refuse(why):
    def convert(g, fn, out):
        raise ExportError(why)
    return convert


_training_dropout = _refuse("dropout in training mode does not export; a module called "
                            "F.dropout(training=True) itself")
_training_batch_norm = _refuse("batch norm in training mode (batch statistics) does not export; "
                               "export puts the model in eval mode, so a module called "
                               "F.batch_norm(training=True) itself")

#: fastconv Function class -> converter writing its ONNX node(s).
CONVERTERS: dict[type, Callable] = {
    conv.Conv2d: _conv,
    conv.Conv2dReLU: _conv_relu,
    conv.ConvTranspose2d: _conv_transpose,
    conv.Linear: _linear,
    pool.MaxPool2d: _max_pool,
    pool.AvgPool2d: _avg_pool,
    pool.AdaptiveAvgPool2d: _adaptive_avg_pool,
    norm.BatchNormEval: _batch_norm_eval,
    norm.BatchNormTrain: _training_batch_norm,
    norm.BatchNormMaxPool2d: _training_batch_norm,
    norm.LocalResponseNorm: _lrn,
    activation.ReLU: _relu,
    activation.LeakyReLU: _leaky_relu,
    activation.ELU: _elu,
    activation.SiLU: _silu,
    activation.GELU: _gelu,
    fmath.Sigmoid: _unary("Sigmoid"),
    fmath.Tanh: _unary("Tanh"),
    activation.MaskMultiply: _training_dropout,
    activation.Dropout: _training_dropout,
    activation.Softmax: _softmax("Softmax"),
    activation.LogSoftmax: _softmax("LogSoftmax"),
    arith.Cat: _cat,
    arith.Reshape: _reshape,
    arith.Permute: _permute,
    arith.Add: _binary("Add"),
    arith.Sub: _binary("Sub"),
    arith.Mul: _binary("Mul"),
    arith.Div: _binary("Div"),
    arith.MatMul: _binary("MatMul"),
    arith.Neg: _unary("Neg"),
    arith.Exp: _unary("Exp"),
    arith.Log: _unary("Log"),
    arith.Pow: _pow,
    arith.Sum: _reduce("ReduceSum"),
    arith.Mean: _reduce("ReduceMean"),
    arith.Max: _reduce("ReduceMax"),
    arith.GetItem: _get_item,
    norm.GroupNorm: _group_norm,
    pad.Pad: _pad,
    upsample.Resize2d: _resize,
    upsample.SeparableResize: _separable_resize,
    pool.AdaptiveMaxPool2d: _adaptive_max_pool,
    activation.Pointwise: _pointwise_activation,
}


# ------------------------------------------------------------------------------------------
# Public entry points
# ------------------------------------------------------------------------------------------

def _check_names(names, count, what):
    if names is None:
        return None
    if isinstance(names, str) or not all(isinstance(n, str) and n for n in names):
        raise TypeError(f"export: {what} must be a list of non-empty strings, got {names!r}")
    names = list(names)
    if len(names) != count:
        raise ValueError(f"export: {what} has {len(names)} name(s) but the model has "
                         f"{count} {what.split('_')[0]}(s)")
    if len(set(names)) != len(names):
        raise ValueError(f"export: {what} {names} repeats a name")
    return names


def _as_input(example_input):
    if isinstance(example_input, (tuple, list)):
        if len(example_input) != 1:
            raise ValueError("export: fastconv models take one input tensor; example_input "
                             f"holds {len(example_input)}")
        example_input = example_input[0]
    if isinstance(example_input, Tensor):
        data = example_input.data
    elif isinstance(example_input, np.ndarray):
        data = example_input
    else:
        raise TypeError("export: example_input must be a fastconv Tensor or a NumPy array, "
                        f"got {type(example_input).__name__}")
    if data.dtype != np.float32 or data.ndim < 1:
        raise ValueError("export: example_input must be a float32 array with a batch "
                         f"dimension, got dtype {data.dtype} and shape {tuple(data.shape)}")
    return Tensor(data, requires_grad=True)


def to_model_proto(model, example_input, opset_version: int = 17, input_names=None,
                   output_names=None, dynamic_batch: bool = True, check: bool = True):
    """The ``onnx.ModelProto`` of ``model`` traced on ``example_input`` (see :func:`export`)."""
    onnx = _onnx()
    from fastconv.nn import Module

    if not isinstance(model, Module):
        raise TypeError(f"export: model must be a fastconv.nn.Module, got {type(model).__name__}")
    newest = onnx.defs.onnx_opset_version()
    if isinstance(opset_version, bool) or not isinstance(opset_version, int) \
            or not MIN_OPSET <= opset_version <= newest:
        raise ValueError(f"export: opset_version must be an int from {MIN_OPSET} to {newest} "
                         f"(this onnx package's newest), got {opset_version!r}")
    x = _as_input(example_input)
    input_names = _check_names(input_names, 1, "input_names") or ["input"]

    was_training = model.training
    model.eval()
    try:
        out, module_of = _name_nodes_by_module(model, x)
    finally:
        model.train(was_training)
    outs = list(out) if isinstance(out, (tuple, list)) else [out]
    if not outs or not all(isinstance(o, Tensor) for o in outs):
        raise ExportError("export: the model must return a tensor or a tuple of tensors, got "
                          f"{type(out).__name__}")
    default_out = ["output"] if len(outs) == 1 else [f"output{i}" for i in range(len(outs))]
    output_names = _check_names(output_names, len(outs), "output_names") or default_out

    batch = int(x.shape[0])
    g = _Graph(opset_version, dynamic_batch, batch)
    g.used_names.update(input_names + output_names)
    g.value_of[id(x)] = input_names[0]
    for name, p in model.named_parameters():
        g.value_of[id(p)] = name
        g.value_of[id(p.data)] = name
        g.used_names.add(name)
        g.initializers[name] = None  # filled when a node reads it
    for name, b in model.named_buffers():
        if b is not None and b.data.dtype.kind == "f":
            g.value_of[id(b.data)] = name
            g.used_names.add(name)
            g.initializers[name] = None
    named_arrays = {name: (p.data if isinstance(p, Tensor) else p)
                    for name, p in list(model.named_parameters()) + list(model.named_buffers())
                    if p is not None}

    order = _topological(outs)
    out_of_fn = {}
    for i, o in enumerate(outs):
        if o._ctx is not None and id(o._ctx) not in out_of_fn:
            out_of_fn[id(o._ctx)] = output_names[i]
    for fn in order:
        convert = CONVERTERS.get(type(fn))
        scope = module_of.get(id(fn), "")
        if convert is None:
            where = f"module {scope!r}" if scope else "the top-level forward"
            raise ExportError(f"export: op {type(fn).__name__} (in {where}) has no ONNX "
                              "converter")
        g.scope = scope
        name = out_of_fn.get(id(fn)) or g.unique(f"{scope}/{type(fn).__name__}_output")
        g.value_of[id(fn)] = name  # consumers find fn's output through their parent's _ctx
        try:
            convert(g, fn, name)
        except ExportError as e:
            raise ExportError(f"export: {type(fn).__name__} in module "
                              f"{scope or '(top level)'}: {e}") from None
    g.scope = ""
    for i, o in enumerate(outs):
        if o._ctx is None:  # an output that is the input or a constant
            g.add("Identity", [g.input_of(o)], [output_names[i]])
        elif out_of_fn[id(o._ctx)] != output_names[i]:  # the same tensor returned twice
            g.add("Identity", [out_of_fn[id(o._ctx)]], [output_names[i]])

    # Parameters and buffers become initializers only when a node reads them.
    read = {i for n in g.nodes for i in n.input}
    inits = []
    for name, proto in g.initializers.items():
        if proto is None:
            if name in read:
                a = _host(named_arrays[name])
                inits.append(onnx.numpy_helper.from_array(np.ascontiguousarray(a), name))
        elif name in read:
            inits.append(proto)

    helper = onnx.helper
    in_shape = ["batch" if dynamic_batch else batch] + list(x.shape[1:])
    graph_inputs = [helper.make_tensor_value_info(input_names[0], onnx.TensorProto.FLOAT,
                                                  in_shape)]
    graph_outputs = []
    for name, o in zip(output_names, outs):
        shape = list(o.shape)
        if dynamic_batch and shape and shape[0] == batch:
            shape[0] = "batch"
        elem = onnx.helper.np_dtype_to_tensor_dtype(np.dtype(o.dtype))
        graph_outputs.append(helper.make_tensor_value_info(name, elem, shape))
    graph = helper.make_graph(g.nodes, type(model).__name__, graph_inputs, graph_outputs,
                              initializer=inits)
    import fastconv

    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset_version)],
                              producer_name="fastconv", producer_version=fastconv.__version__)
    # Readers older than this onnx package accept the oldest IR version the opset allows.
    proto.ir_version = min(proto.ir_version, 8 if opset_version <= 18 else proto.ir_version)
    if check:
        onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model, example_input, path, opset_version: int = 17, input_names=None,
           output_names=None, dynamic_batch: bool = True, check: bool = True):
    """Write ``model`` as an ONNX file, traced on ``example_input`` (torch.onnx.export's form).

    Args:
        model: a ``fastconv.nn.Module``; it runs once in eval mode (its mode is restored).
        example_input: a (N, C, H, W) float32 Tensor or NumPy array; the graph is fixed to
            its C, H, W (and to its N unless ``dynamic_batch``).
        path: file name (str or os.PathLike) or a writable binary file object.
        opset_version: the ONNX opset to write, 13 .. the installed onnx package's newest.
        input_names: a one-element list (default ``["input"]``).
        output_names: one name per model output (default ``["output"]``).
        dynamic_batch: the batch dimension of the input and outputs is the symbol
            ``batch``, so the file runs at any batch size.
        check: run ``onnx.checker.check_model(full_check=True)`` before writing.

    Returns the ``onnx.ModelProto`` written.

    Raises ExportError naming the op and module when the model holds something ONNX
    cannot express (see the module docstring).
    """
    proto = to_model_proto(model, example_input, opset_version, input_names, output_names,
                           dynamic_batch, check)
    data = proto.SerializeToString()
    if isinstance(path, (str, os.PathLike)):
        from fastconv.files import atomic_write

        atomic_write(os.fspath(path), data)
    elif isinstance(path, io.IOBase) or hasattr(path, "write"):
        path.write(data)
    else:
        raise TypeError(f"export: path must be a file name or a binary file object, got "
                        f"{type(path).__name__}")
    return proto
