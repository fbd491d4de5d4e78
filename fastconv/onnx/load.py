"""Import an ONNX graph as a fastconv module.

``load(path)`` reads the file, checks it with ``onnx.checker``, and returns an
:class:`OnnxGraphModule`: an ``nn.Module`` whose forward runs the graph's nodes in order
with fastconv's ops. Convolution, Gemm and batch-norm weights become Parameters (and
running statistics buffers) under their initializer names, so ``state_dict()``,
``parameters()``, ``to("cuda")`` and fine-tuning work as for any module; a graph written
by :func:`fastconv.onnx.export` gets back the state-dict keys of the model it came from.

The ``IMPORTERS`` table below lists the op types read (those fastconv has). A node of any
other type is an :class:`UnsupportedOpError` naming its op type and node name; nodes that
no output depends on are dropped first, so only what the graph computes must be known.

Before import, one rewrite: PyTorch's ``F.local_response_norm`` is traced by
``torch.onnx.export`` as its decomposition (x², a pad and a (size, 1, 1) average pool
over a 5-D view, then ``* alpha + k``, ``** beta``, ``x / ...``, with shape arithmetic in
between); that chain is folded back into one ``LRN`` node (same alpha convention).
"""

from __future__ import annotations

import os
import re
from collections.abc import Callable

import numpy as np

from fastconv import functional as F
from fastconv.nn import Module, Parameter
from fastconv.tensor import Tensor

__all__ = [
    "IMPORTERS",
    "OnnxGraphModule",
    "OnnxImportError",
    "UnsupportedOpError",
    "from_model_proto",
    "load",
]


class OnnxImportError(ValueError):
    """The graph cannot be imported (the message names the node and what is wrong)."""


class UnsupportedOpError(OnnxImportError):
    """A node whose op type fastconv has no import for."""


def _onnx():
    try:
        import onnx
    except ImportError as e:  # pragma: no cover - onnx is in the test extra
        raise ImportError("fastconv.onnx needs the onnx package: pip install onnx") from e
    return onnx


# ------------------------------------------------------------------------------------------
# Graph rewrite: PyTorch's decomposed LRN -> LRN
# ------------------------------------------------------------------------------------------

def _subgraph_inputs(node):
    """Names a node reads, including outer-scope names read inside If/Loop bodies."""
    names = [i for i in node.input if i]
    for a in node.attribute:
        graphs = [a.g] if a.HasField("g") else list(a.graphs)
        for g in graphs:
            for n in g.node:
                names += _subgraph_inputs(n)
    return names


def _fold_torch_lrn(nodes, consts):
    """Replace each Div(x, (Mul(avgpool(x*x), alpha) + k) ** beta) chain by an LRN node."""
    onnx = _onnx()
    producer = {o: n for n in nodes for o in n.output}

    def scalar(name):
        v = consts.get(name)
        return float(np.asarray(v).reshape(-1)[0]) if v is not None and np.size(v) == 1 \
            else None

    def split(node, op_type):
        """(tensor input, scalar constant) of a binary node, or None."""
        if node is None or node.op_type != op_type or len(node.input) != 2:
            return None
        a, b = node.input
        if scalar(b) is not None and scalar(a) is None:
            return a, scalar(b)
        if scalar(a) is not None and scalar(b) is None:
            return b, scalar(a)
        return None

    out = []
    for node in nodes:
        fused = None
        if node.op_type == "Div" and len(node.input) == 2:
            x = node.input[0]
            pw = split(producer.get(node.input[1]), "Pow")
            add = split(producer.get(pw[0]), "Add") if pw else None
            mul = split(producer.get(add[0]), "Mul") if add else None
            if mul:
                # Walk back (at most 200 nodes, not past x) to the (size, 1[, 1]) average
                # pool over x*x.
                stack, seen, size, square = [mul[0]], set(), None, False
                while stack and len(seen) < 200:
                    name = stack.pop()
                    n = producer.get(name) if name != x else None
                    if n is None or id(n) in seen:
                        continue
                    seen.add(id(n))
                    if n.op_type == "AveragePool":
                        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in n.attribute}
                        k = list(attrs.get("kernel_shape", []))
                        if len(k) >= 2 and all(v == 1 for v in k[1:]):
                            size = k[0]
                    if n.op_type == "Mul" and list(n.input) == [x, x]:
                        square = True
                        continue
                    stack += _subgraph_inputs(n)
                if size and square:
                    fused = onnx.helper.make_node(
                        "LRN", [x], list(node.output), name=node.name or "LRN", size=int(size),
                        alpha=mul[1], beta=pw[1], bias=add[1])
        out.append(fused or node)
    return out


# ------------------------------------------------------------------------------------------
# Node importers: (node, attrs, module) -> callable(*input tensors) -> output(s)
# ------------------------------------------------------------------------------------------

def _here(node) -> str:
    """How messages name a node: ``node 'name' (OpType)``, or by its output when unnamed."""
    if node.name:
        return f"node {node.name!r} ({node.op_type})"
    outputs = [o for o in node.output if o]
    return f"node ({node.op_type})" + (f" making {outputs[0]!r}" if outputs else "")


def _require(node, attrs, inputs: int, *attributes: str) -> None:
    """Check that ``node`` has its first ``inputs`` inputs (non-empty names) and the named
    attributes, so that an importer never reads past what the graph gives."""
    given = list(node.input)
    if len(given) < inputs or not all(given[:inputs]):
        raise OnnxImportError(f"{_here(node)}: needs at least {inputs} input(s) (non-empty "
                              f"names), got {len(given)}: {given}")
    missing = [a for a in attributes if a not in attrs]
    if missing:
        raise OnnxImportError(f"{_here(node)}: the required attribute "
                              f"{', '.join(repr(a) for a in missing)} is missing")


def _axis(node, attr: str, axis: int, rank: int, *, end: bool = False,
          of: str = "input", within=None) -> int:
    """``axis`` (attribute or input ``attr`` of ``node``) as an index counted from 0.

    ONNX allows [-rank, rank-1], or [-rank, rank] with ``end`` (an axis between dimensions,
    as Flatten's); a negative axis counts from the end. ``of`` names what ``rank`` is the
    rank of (Unsqueeze's axes refer to its output); ``within`` is the list ``axis`` is from.
    """
    hi = rank if end else rank - 1
    if not -rank <= axis <= hi:
        allowed = f"[{-rank}, {hi}]" if hi >= -rank else "none"
        named = f"{attr}={axis}" if within is None else f"{attr}={within}: {axis}"
        raise OnnxImportError(f"{_here(node)}: {named} is out of range for a rank-{rank} "
                              f"{of} (allowed: {allowed})")
    return axis + rank if axis < 0 else axis


def _axis_list(node, attr: str, axes, rank: int, of: str = "input") -> list[int]:
    """Each of ``axes`` through :func:`_axis`; an axis named twice is an error."""
    given = [int(a) for a in axes]
    out = [_axis(node, attr, a, rank, of=of, within=given) for a in given]
    if len(set(out)) != len(out):
        raise OnnxImportError(f"{_here(node)}: {attr}={given} names an axis twice "
                              f"(rank-{rank} {of})")
    return out


def _check_early(g, node, check, index: int = 0):
    """``check(shape)`` validates the node against the shape of its input ``index`` (a tuple,
    None for a dimension not known yet). Run it at import when the graph declares that
    shape, and return it for the forward to run on the actual shape."""
    shape = g.declared_shape(node.input[index]) if index < len(node.input) else None
    if shape is not None:
        check(shape)
    return check


def _to_array(tensor, where: str) -> np.ndarray:
    """A TensorProto as an array, its stored data checked against its dims first."""
    onnx = _onnx()
    dims = [int(d) for d in tensor.dims]
    type_name = onnx.TensorProto.DataType.Name(tensor.data_type) \
        if tensor.data_type in onnx.TensorProto.DataType.values() else str(tensor.data_type)
    if any(d < 0 for d in dims):
        raise OnnxImportError(f"{where}: negative dims {dims}")
    count = int(np.prod(dims, dtype=np.int64))
    if tensor.raw_data and tensor.data_type != onnx.TensorProto.STRING:
        try:
            itemsize = np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.data_type)).itemsize
        except Exception as e:
            raise OnnxImportError(f"{where}: data type {type_name} is not supported") from e
        packed = type_name in ("INT4", "UINT4", "FLOAT4E2M1")  # two values a byte
        want = (count + 1) // 2 if packed else count * itemsize
        if len(tensor.raw_data) != want:
            raise OnnxImportError(f"{where}: raw_data holds {len(tensor.raw_data)} bytes, but "
                                  f"dims {dims} of {type_name} need {want}")
    try:
        return onnx.numpy_helper.to_array(tensor)
    except Exception as e:
        raise OnnxImportError(f"{where}: its data is not a {type_name} tensor of dims {dims} "
                              f"({e})") from e


def _constant(node) -> np.ndarray:
    """The value of a Constant node (its one ``value*`` attribute)."""
    onnx = _onnx()
    if not node.output or not node.output[0]:
        raise OnnxImportError(f"{_here(node)}: has no output")
    names = [a.name for a in node.attribute]
    if len(names) != 1:
        raise OnnxImportError(f"{_here(node)}: needs exactly one value attribute (value, "
                              f"value_float(s) or value_int(s)), got {names or 'none'}")
    attr = node.attribute[0]
    if attr.name == "value":
        return _to_array(attr.t, f"{_here(node)}: attribute value")
    if attr.name in ("value_float", "value_floats"):
        return np.array(onnx.helper.get_attribute_value(attr), np.float32)
    if attr.name in ("value_int", "value_ints"):
        return np.array(onnx.helper.get_attribute_value(attr), np.int64)
    raise OnnxImportError(f"{_here(node)}: only value, value_float(s) and value_int(s) "
                          f"constants are supported, got {attr.name!r}")


def _const(g, name, node, what):
    if name not in g.consts:
        raise OnnxImportError(f"{_here(node)}: its {what} ({name!r}) "
                              "must be a constant (an initializer or Constant node)")
    return np.asarray(g.consts[name])


def _two_d(node, attrs, key, default):
    v = list(attrs.get(key, default))
    if len(v) != 2:
        raise OnnxImportError(f"{_here(node)}: only 2-D (N, C, H, W) "
                              f"is supported, got {key}={v}")
    return tuple(int(a) for a in v)


def _kernel_matches_weight(node, attrs, w):
    """A ``kernel_shape`` attribute must agree with the weight's spatial dims."""
    k = attrs.get("kernel_shape")
    if k is not None and [int(v) for v in k] != list(w.shape[2:]):
        raise OnnxImportError(f"{_here(node)}: kernel_shape={[int(v) for v in k]} contradicts "
                              f"the weight's shape {tuple(w.shape)} (kernel {tuple(w.shape[2:])})")


def _sym_pads(node, attrs):
    if attrs.get("auto_pad", b"NOTSET") not in (b"NOTSET", "NOTSET", b"VALID", "VALID"):
        raise OnnxImportError(f"{_here(node)}: auto_pad="
                              f"{attrs['auto_pad']!r} is not supported (give explicit pads)")
    pads = [int(p) for p in attrs.get("pads", [0, 0, 0, 0])]
    if len(pads) != 4 or pads[:2] != pads[2:]:
        raise OnnxImportError(f"{_here(node)}: pads {pads}: fastconv pads "
                              "both sides of an axis equally (begin pads must equal end pads)")
    return tuple(pads[:2])


def _conv(g, node, attrs):
    _require(node, attrs, 2)
    w = _const(g, node.input[1], node, "weight")
    if w.ndim != 4:
        raise OnnxImportError(f"{_here(node)}: only 2-D convolution is supported, "
                              f"weight shape {w.shape}")
    _kernel_matches_weight(node, attrs, w)
    if attrs.get("dilations") is not None and len(attrs["dilations"]) != 2:
        raise OnnxImportError(f"{_here(node)}: dilations {attrs['dilations']}")
    weight = g.param(node.input[1])
    bias = g.param(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    stride, dilation = _two_d(node, attrs, "strides", [1, 1]), \
        _two_d(node, attrs, "dilations", [1, 1])
    padding, groups = _sym_pads(node, attrs), int(attrs.get("group", 1))
    return lambda x, *_: F.conv2d(x, weight, bias, stride, padding, dilation, groups)


def _conv_transpose(g, node, attrs):
    _require(node, attrs, 2)
    w = _const(g, node.input[1], node, "weight")
    if w.ndim != 4:
        raise OnnxImportError(f"{_here(node)}: only 2-D is supported, "
                              f"weight shape {w.shape}")
    _kernel_matches_weight(node, attrs, w)
    if attrs.get("output_shape") is not None:
        raise OnnxImportError(f"{_here(node)}: output_shape is not "
                              "supported (give pads and output_padding)")
    weight = g.param(node.input[1])
    bias = g.param(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    stride, dilation = _two_d(node, attrs, "strides", [1, 1]), \
        _two_d(node, attrs, "dilations", [1, 1])
    output_padding = _two_d(node, attrs, "output_padding", [0, 0])
    padding, groups = _sym_pads(node, attrs), int(attrs.get("group", 1))
    return lambda x, *_: F.conv_transpose2d(x, weight, bias, stride, padding, output_padding,
                                            groups, dilation)


def _gemm(g, node, attrs):
    _require(node, attrs, 2)
    if attrs.get("transA", 0):
        raise OnnxImportError(f"{_here(node)}: transA=1 is not supported")
    alpha, beta = float(attrs.get("alpha", 1.0)), float(attrs.get("beta", 1.0))
    has_c = len(node.input) > 2 and bool(node.input[2])
    if node.input[1] in g.consts and (not has_c or node.input[2] in g.consts):
        if attrs.get("transB", 0):
            weight = g.param(node.input[1])
        else:  # stored (in, out): kept as the (out, in) weight of a linear layer
            weight = g.param(node.input[1], transform=lambda a: np.ascontiguousarray(a.T))
        bias = g.param(node.input[2]) if has_c else None
        fold = bias is not None and bias.ndim == 1 and alpha == 1.0 and beta == 1.0

        def linear(x, *_):
            y = F.linear(x, weight, bias if fold else None)
            y = y * alpha if alpha != 1.0 else y
            return y + bias * beta if bias is not None and not fold else y
        return linear
    trans_b = bool(attrs.get("transB", 0))

    def run(a, b, c=None):
        y = a @ (b.T if trans_b else b)
        y = y * alpha if alpha != 1.0 else y
        return y if c is None else y + c * beta
    return run


def _pool(kind):
    def build(g, node, attrs):
        _require(node, attrs, 1, "kernel_shape")
        if len(node.output) > 1 and node.output[1]:
            raise OnnxImportError(f"{_here(node)}: the Indices output "
                                  "is not supported")
        kernel = _two_d(node, attrs, "kernel_shape", [])
        stride = _two_d(node, attrs, "strides", [1, 1])
        dilation = _two_d(node, attrs, "dilations", [1, 1])
        if kind == "avg" and dilation != (1, 1):  # max_pool2d has dilation, avg_pool2d not
            raise OnnxImportError(f"{_here(node)}: dilated average "
                                  "pooling is not supported")
        padding, ceil = _sym_pads(node, attrs), bool(attrs.get("ceil_mode", 0))
        if kind == "max":
            return lambda x: F.max_pool2d(x, kernel, stride, padding, dilation, ceil)
        include = bool(attrs.get("count_include_pad", 0))
        return lambda x: F.avg_pool2d(x, kernel, stride, padding, ceil, include)
    return build


def _global_avg_pool(g, node, attrs):
    return lambda x: x.mean(dim=(2, 3), keepdim=True)


def _lrn(g, node, attrs):
    _require(node, attrs, 1, "size")
    size = int(attrs["size"])
    if size % 2 == 0:
        raise OnnxImportError(f"{_here(node)}: even size {size}: ONNX centres an "
                              "even window one channel later than fastconv")
    alpha, beta = float(attrs.get("alpha", 1e-4)), float(attrs.get("beta", 0.75))
    k = float(attrs.get("bias", 1.0))
    return lambda x: F.local_response_norm(x, size, alpha, beta, k)


def _batch_norm(g, node, attrs):
    if attrs.get("training_mode", 0) or len([o for o in node.output if o]) > 1:
        raise OnnxImportError(f"{_here(node)}: training mode is not "
                              "supported (inference graphs only)")
    _require(node, attrs, 5)
    scale, shift = g.param(node.input[1]), g.param(node.input[2])
    mean, var = g.buffer(node.input[3]), g.buffer(node.input[4])
    eps = float(attrs.get("epsilon", 1e-5))
    return lambda x, *_: F.batch_norm(x, mean, var, scale, shift, False, 0.1, eps)


def _concat(g, node, attrs):
    _require(node, attrs, 1, "axis")
    axis = int(attrs["axis"])
    check = _check_early(g, node, lambda shape: _axis(node, "axis", axis, len(shape)))
    return lambda *xs: F.cat(list(xs), dim=check(xs[0].shape))


def _flatten(g, node, attrs):
    axis = int(attrs.get("axis", 1))
    check = _check_early(g, node, lambda shape: _axis(node, "axis", axis, len(shape), end=True))

    def run(x):
        a = check(x.shape)
        return x.reshape(int(np.prod(x.shape[:a], dtype=np.int64)), -1)
    return run


def _reshape(g, node, attrs):
    _require(node, attrs, 2)
    shape = [int(s) for s in _const(g, node.input[1], node, "shape")]
    if attrs.get("allowzero", 0) and 0 in shape:
        raise OnnxImportError(f"{_here(node)}: allowzero with a 0 in the shape")

    def run(x, _shape=None):
        return x.reshape([x.shape[i] if s == 0 else s for i, s in enumerate(shape)])
    return run


def _identity(g, node, attrs):
    if node.op_type == "Dropout" and len(node.output) > 1 and node.output[1]:
        raise OnnxImportError(f"{_here(node)}: the mask output is not supported")
    return lambda x, *rest: x


def _softmax(fn):
    def build(g, node, attrs):
        axis = int(attrs.get("axis", -1 if g.opset >= 13 else 1))

        def check(shape):
            a = _axis(node, "axis", axis, len(shape))
            if g.opset < 13 and a != len(shape) - 1:
                raise OnnxImportError(f"{_here(node)}: before opset 13 "
                                      "softmax normalises a flattened view; only the last "
                                      "axis is supported")
            return a
        check = _check_early(g, node, check)
        return lambda x: fn(x, dim=check(x.shape))
    return build


def _transpose(g, node, attrs):
    perm = None if attrs.get("perm") is None else [int(p) for p in attrs["perm"]]

    def check(shape):
        if perm is None:
            return list(reversed(range(len(shape))))
        if sorted(perm) != list(range(len(shape))):
            raise OnnxImportError(f"{_here(node)}: perm={perm} is not a permutation of "
                                  f"0..{len(shape) - 1} (rank-{len(shape)} input)")
        return perm
    check = _check_early(g, node, check)
    return lambda x: x.permute(*check(x.shape))


def _axes(g, node, attrs):
    if len(node.input) > 1 and node.input[1]:
        return [int(a) for a in _const(g, node.input[1], node, "axes").reshape(-1)]
    return None if attrs.get("axes") is None else [int(a) for a in attrs["axes"]]


def _reduce(method):
    def build(g, node, attrs):
        axes, keep = _axes(g, node, attrs), bool(attrs.get("keepdims", 1))
        if axes == [] and method != "max" and attrs.get("noop_with_empty_axes", 0):
            return lambda x, *_: x
        check = _check_early(g, node, lambda shape: tuple(_axis_list(
            node, "axes", axes or [], len(shape))))
        if method == "max":
            return lambda x, *_: x.amax(dim=check(x.shape), keepdim=keep)
        return lambda x, *_: getattr(x, method)(dim=check(x.shape) or None, keepdim=keep)
    return build


def _squeeze(g, node, attrs):
    axes = _axes(g, node, attrs)

    def check(shape):
        if axes is None:
            return [i for i, s in enumerate(shape) if s == 1]
        drop = _axis_list(node, "axes", axes, len(shape))
        wide = [a for a in drop if shape[a] is not None and shape[a] != 1]
        if wide:
            raise OnnxImportError(f"{_here(node)}: axes={axes} squeezes axis {wide[0]} of "
                                  f"size {shape[wide[0]]} (input shape {tuple(shape)}); only "
                                  "axes of size 1 can be squeezed")
        return drop
    check = _check_early(g, node, check)

    def run(x, *_):
        drop = check(x.shape)
        return x.reshape([s for i, s in enumerate(x.shape) if i not in drop])
    return run


def _unsqueeze(g, node, attrs):
    axes = _axes(g, node, attrs)
    if axes is None:
        where = "input" if g.opset >= 13 else "attribute"
        raise OnnxImportError(f"{_here(node)}: needs axes (the {where} axes at opset "
                              f"{g.opset})")
    check = _check_early(g, node, lambda shape: sorted(_axis_list(
        node, "axes", axes, len(shape) + len(axes), of="output")))

    def run(x, *_):
        shape = list(x.shape)
        for a in check(x.shape):
            shape.insert(a, 1)
        return x.reshape(shape)
    return run


def _slice(g, node, attrs):
    if g.opset < 10:  # starts, ends and axes are attributes
        _require(node, attrs, 1, "starts", "ends")
        starts, ends = np.asarray(attrs["starts"]), np.asarray(attrs["ends"])
        axes = np.asarray(attrs["axes"]) if "axes" in attrs else np.arange(len(starts))
        steps = np.ones(len(starts), np.int64)
    else:
        _require(node, attrs, 3)
        starts = _const(g, node.input[1], node, "starts").reshape(-1)
        ends = _const(g, node.input[2], node, "ends").reshape(-1)
        axes = _const(g, node.input[3], node, "axes").reshape(-1) if len(node.input) > 3 \
            and node.input[3] else np.arange(len(starts))
        steps = _const(g, node.input[4], node, "steps").reshape(-1) if len(node.input) > 4 \
            and node.input[4] else np.ones(len(starts), np.int64)
    lengths = {"starts": len(starts), "ends": len(ends), "axes": len(axes),
               "steps": len(steps)}
    if len(set(lengths.values())) != 1:
        raise OnnxImportError(f"{_here(node)}: starts, ends, axes and steps must have one "
                              f"length, got {lengths}")
    if not np.all(steps):
        raise OnnxImportError(f"{_here(node)}: steps={steps.tolist()} has a 0")
    check = _check_early(g, node, lambda shape: _axis_list(node, "axes", axes, len(shape)))

    def run(x, *_):
        index = [slice(None)] * x.ndim
        big = np.iinfo(np.int64).max // 2
        for s, e, a, st in zip(starts, ends, check(x.shape), steps):
            e = None if abs(int(e)) >= big else int(e)
            index[a] = slice(int(s), e, int(st))
        return x[tuple(index)]
    return run


def _elementwise(op, arity: int):
    """An op that is one tensor function of its ``arity`` inputs."""
    def build(g, node, attrs):
        _require(node, attrs, arity)
        return op
    return build


def _unary(op):
    return _elementwise(op, 1)


def _binary(op):
    return _elementwise(op, 2)


def _with_alpha(fn, default: float):
    """An activation whose one ONNX attribute ``alpha`` is its second argument."""
    def build(g, node, attrs):
        alpha = float(attrs.get("alpha", default))
        return lambda x: fn(x, alpha)
    return build


def _pow(g, node, attrs):
    _require(node, attrs, 2)
    p = _const(g, node.input[1], node, "exponent")
    if p.size != 1:
        raise OnnxImportError(f"{_here(node)}: the exponent must be one number")
    p = float(p.reshape(-1)[0])
    return lambda x, _: x ** p


def _layer_norm(g, node, attrs):
    _require(node, attrs, 2)
    axis, eps = int(attrs.get("axis", -1)), float(attrs.get("epsilon", 1e-5))
    if attrs.get("stash_type", 1) != 1 or len([o for o in node.output if o]) > 1:
        raise OnnxImportError(f"{_here(node)}: only float32 "
                              "statistics and one output are supported")
    scale = g.param(node.input[1])
    bias = g.param(node.input[2]) if len(node.input) > 2 and node.input[2] else None
    check = _check_early(g, node, lambda shape: _axis(node, "axis", axis, len(shape)))
    return lambda x, *_: F.layer_norm(x, x.shape[check(x.shape):], scale, bias, eps)


def _instance_norm(g, node, attrs):
    _require(node, attrs, 3)
    scale, bias = g.param(node.input[1]), g.param(node.input[2])
    eps = float(attrs.get("epsilon", 1e-5))
    return lambda x, *_: F.instance_norm(x, weight=scale, bias=bias, eps=eps)


_PAD_MODES = {"constant": "constant", "reflect": "reflect", "edge": "replicate",
              "wrap": "circular"}


def _pad(g, node, attrs):
    mode = attrs.get("mode", b"constant")
    mode = mode.decode() if isinstance(mode, bytes) else mode
    if mode not in _PAD_MODES:
        raise OnnxImportError(f"{_here(node)}: mode {mode!r} is not supported")
    if g.opset < 11:  # pads and value are attributes
        _require(node, attrs, 1, "pads")
        pads, value = [int(p) for p in attrs["pads"]], float(attrs.get("value", 0.0))
    else:
        _require(node, attrs, 2)
        pads = [int(p) for p in _const(g, node.input[1], node, "pads").reshape(-1)]
        value = 0.0
        if len(node.input) > 2 and node.input[2]:
            value = float(_const(g, node.input[2], node, "constant_value").reshape(-1)[0])
        if len(node.input) > 3 and node.input[3]:
            raise OnnxImportError(f"{_here(node)}: the axes input is not supported")

    def check(shape):
        if len(pads) != 2 * len(shape):
            raise OnnxImportError(f"{_here(node)}: pads has {len(pads)} values {pads}; a "
                                  f"rank-{len(shape)} input needs 2*{len(shape)} = "
                                  f"{2 * len(shape)} (all begins, then all ends)")
    if len(pads) % 2:
        raise OnnxImportError(f"{_here(node)}: pads has an odd number of values {pads}; it "
                              "must hold 2*rank (all begins, then all ends)")
    check = _check_early(g, node, check)
    n = len(pads) // 2
    # F.pad lists (before, after) from the last dim backwards, up to the last padded dim.
    padded = [d for d in range(n) if pads[d] or pads[d + n]]
    torch_pads = []
    for d in range(n - 1, (min(padded) if padded else n) - 1, -1):
        torch_pads += [pads[d], pads[d + n]]
    kind = _PAD_MODES[mode]

    def run(x, *_):
        check(x.shape)
        if not torch_pads:
            return x
        return F.pad(x, tuple(torch_pads), kind, value if kind == "constant" else None)
    return run


def _gather(g, node, attrs):
    _require(node, attrs, 2)
    axis = int(attrs.get("axis", 0))
    idx = _const(g, node.input[1], node, "indices")
    if idx.dtype.kind not in "iu":
        raise OnnxImportError(f"{_here(node)}: indices must be int32 or int64, got {idx.dtype}")
    idx = idx.astype(np.int64)
    lo, hi = (int(idx.min()), int(idx.max())) if idx.size else (0, 0)

    def check(shape):
        a = _axis(node, "axis", axis, len(shape))
        s = shape[a]
        if s is not None and not -s <= lo <= hi < s:
            bad = idx[(idx < -s) | (idx >= s)]
            raise OnnxImportError(f"{_here(node)}: indices {bad[:8].tolist()} are out of range "
                                  f"for axis {a} of size {s} (allowed: [{-s}, {s - 1}], "
                                  "negative counting from the end)")
        return a
    check = _check_early(g, node, check)

    def run(x, *_):
        a = check(x.shape)
        flat = np.where(idx < 0, idx + x.shape[a], idx).reshape(-1)
        flat = Tensor(np.ascontiguousarray(flat))
        out = x.index_select(a, flat if x.device == "cpu" else flat.to(x.device))
        return out.reshape(x.shape[:a] + idx.shape + x.shape[a + 1:])
    return run


def _clip(g, node, attrs):
    if g.opset < 11:  # min and max are attributes
        lo, hi = [float(attrs[k]) if k in attrs else None for k in ("min", "max")]
    else:
        lo, hi = [float(_const(g, node.input[i], node, what).reshape(-1)[0])
                  if len(node.input) > i and node.input[i] else None
                  for i, what in ((1, "min"), (2, "max"))]
    if lo is not None and hi is not None:
        return lambda x, *_: F.hardtanh(x, lo, hi)
    return lambda x, *_: x.clamp(lo, hi)


def _hard_sigmoid(g, node, attrs):
    alpha, beta = float(attrs.get("alpha", 0.2)), float(attrs.get("beta", 0.5))
    if abs(alpha - 1 / 6) < 1e-7 and beta == 0.5:
        return lambda x: F.hardsigmoid(x)
    return lambda x: (x * alpha + beta).clamp(0.0, 1.0)


def _selu(g, node, attrs):
    if "alpha" in attrs or "gamma" in attrs:
        alpha = float(attrs.get("alpha", 1.67326319217681884765625))
        gamma = float(attrs.get("gamma", 1.05070102214813232421875))
        return lambda x: gamma * (x.clamp(min=0) + alpha * (x.clamp(max=0).exp() - 1))
    return lambda x: F.selu(x)


#: ONNX op type -> importer building the callable that runs the node.
IMPORTERS: dict[str, Callable] = {
    "Conv": _conv,
    "ConvTranspose": _conv_transpose,
    "Gemm": _gemm,
    "MatMul": _binary(lambda a, b: a @ b),
    "MaxPool": _pool("max"),
    "AveragePool": _pool("avg"),
    "GlobalAveragePool": _global_avg_pool,
    "LRN": _lrn,
    "BatchNormalization": _batch_norm,
    "Relu": lambda g, n, a: F.relu,
    "Sigmoid": _unary(lambda a: a.sigmoid()),
    "Tanh": _unary(lambda a: a.tanh()),
    "LeakyRelu": _with_alpha(F.leaky_relu, 0.01),
    "Elu": _with_alpha(F.elu, 1.0),
    "Softmax": _softmax(F.softmax),
    "LogSoftmax": _softmax(F.log_softmax),
    "Concat": _concat,
    "Flatten": _flatten,
    "Reshape": _reshape,
    "Dropout": _identity,
    "Identity": _identity,
    "Transpose": _transpose,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Slice": _slice,
    "ReduceMean": _reduce("mean"),
    "ReduceSum": _reduce("sum"),
    "ReduceMax": _reduce("max"),
    "Add": _binary(lambda a, b: a + b),
    "Sub": _binary(lambda a, b: a - b),
    "Mul": _binary(lambda a, b: a * b),
    "Div": _binary(lambda a, b: a / b),
    "Neg": _unary(lambda a: -a),
    "Exp": _unary(lambda a: a.exp()),
    "Log": _unary(lambda a: a.log()),
    "Sqrt": _unary(lambda a: a ** 0.5),
    "Reciprocal": _unary(lambda a: a ** -1.0),
    "Pow": _pow,
    "LayerNormalization": _layer_norm,
    "InstanceNormalization": _instance_norm,
    "Pad": _pad,
    "Gather": _gather,
    "Clip": _clip,
    "HardSigmoid": _hard_sigmoid,
    "HardSwish": lambda g, n, a: F.hardswish,
    "Selu": _selu,
    "Celu": _with_alpha(F.celu, 1.0),
}


# ------------------------------------------------------------------------------------------
# The module
# ------------------------------------------------------------------------------------------

def _attribute_name(name: str) -> str:
    s = re.sub(r"[^0-9A-Za-z_]", "_", name)
    return s if s and not s[0].isdigit() else "_" + s


class OnnxGraphModule(Module):
    """An ONNX graph run with fastconv's ops (built by :func:`load`).

    ``forward(*inputs)`` takes the graph's inputs in order and returns its output, or a
    tuple when the graph has several. ``input_names`` / ``output_names`` are the graph's.
    Weights sit under their initializer names: ``features.0.weight`` becomes the
    parameter ``weight`` of a child module ``features.0``; names that are not dotted
    identifiers are made into attribute names (``onnx::Conv_12`` -> ``onnx__Conv_12``).
    """

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "steps", [])
        object.__setattr__(self, "input_names", [])
        object.__setattr__(self, "output_names", [])
        object.__setattr__(self, "consts", {})
        object.__setattr__(self, "tensors", {})   # initializer name -> its Tensor here
        object.__setattr__(self, "opset", 17)
        object.__setattr__(self, "shapes", {})    # value name -> shape the graph declares

    def extra_repr(self) -> str:
        from collections import Counter

        ops = Counter(step[3].split()[0] for step in self.steps)
        return (f"inputs={self.input_names}, outputs={self.output_names}, "
                f"{len(self.steps)} nodes: " + ", ".join(f"{k} x{v}" for k, v in ops.items()))

    def _owner(self, name):
        parts = name.split(".")
        if len(parts) > 1 and all(re.fullmatch(r"[A-Za-z0-9_]+", p) for p in parts):
            owner = self
            for p in parts[:-1]:
                if p not in owner._modules:
                    owner.add_module(p, Module())
                owner = owner._modules[p]
            return owner, parts[-1] if not parts[-1][0].isdigit() else "_" + parts[-1]
        return self, _attribute_name(name)

    def param(self, name: str, transform=None):
        """The Parameter holding initializer ``name`` (made on first use)."""
        key = (name, "param", transform is not None)
        if key not in self.tensors:
            a = np.array(self.consts[name], dtype=np.float32)
            owner, attr = self._owner(name + (".T" if transform else ""))
            p = Parameter(transform(a) if transform else a)
            setattr(owner, attr, p)
            self.tensors[key] = p
        return self.tensors[key]

    def buffer(self, name: str):
        key = (name, "buffer", False)
        if key not in self.tensors:
            owner, attr = self._owner(name)
            owner.register_buffer(attr, Tensor(np.array(self.consts[name], dtype=np.float32)))
            self.tensors[key] = getattr(owner, attr)
        return self.tensors[key]

    def declared_shape(self, name: str):
        """The shape of value ``name`` as far as the graph states it (a constant's shape, or
        the declared input/value_info/output shape with None for symbolic dims), else None."""
        if name in self.consts:
            return tuple(np.shape(self.consts[name]))
        return self.shapes.get(name)

    def _value(self, name):
        key = (name, "param", False)
        if key in self.tensors:
            return self.tensors[key]
        if (name, "buffer", False) in self.tensors:
            return self.tensors[(name, "buffer", False)]
        a = np.asarray(self.consts[name])
        return Tensor(a.astype(np.float32) if a.dtype == np.float64 else a)

    def forward(self, *inputs):
        if len(inputs) != len(self.input_names):
            raise TypeError(f"forward takes {len(self.input_names)} input(s) "
                            f"({', '.join(self.input_names)}), got {len(inputs)}")
        env = dict(zip(self.input_names, inputs))
        for fn, ins, outs, _ in self.steps:
            args = [env[i] if i in env else self._value(i) if i else None for i in ins]
            while args and args[-1] is None:
                args.pop()
            y = fn(*args)
            env[outs[0]] = y
        results = [env[o] if o in env else self._value(o) for o in self.output_names]
        return results[0] if len(results) == 1 else tuple(results)


def _shape_of(value_info):
    """A ValueInfoProto's tensor shape (None for symbolic dims), or None if not stated."""
    t = value_info.type
    if not t.HasField("tensor_type") or not t.tensor_type.HasField("shape"):
        return None
    return tuple(d.dim_value if d.HasField("dim_value") else None
                 for d in t.tensor_type.shape.dim)


def from_model_proto(proto) -> OnnxGraphModule:
    """An :class:`OnnxGraphModule` built from an ``onnx.ModelProto`` (see :func:`load`)."""
    onnx = _onnx()
    graph = proto.graph
    opset = next((o.version for o in proto.opset_import if o.domain in ("", "ai.onnx")), None)
    if opset is None:
        raise OnnxImportError("the model imports no version of the default ONNX opset")
    module = OnnxGraphModule()
    object.__setattr__(module, "opset", int(opset))
    consts = module.consts
    for init in graph.initializer:
        consts[init.name] = _to_array(init, f"initializer {init.name!r}")
    for vi in list(graph.input) + list(graph.value_info) + list(graph.output):
        shape = _shape_of(vi)
        if shape is not None:
            module.shapes[vi.name] = shape
    nodes = []
    for node in graph.node:
        if node.domain not in ("", "ai.onnx"):
            raise UnsupportedOpError(f"node {node.name!r}: op type {node.op_type} of domain "
                                     f"{node.domain!r} is not supported (only the default "
                                     "ONNX domain is)")
        if node.op_type == "Constant":
            consts[node.output[0]] = _constant(node)
            continue
        nodes.append(node)
    nodes = _fold_torch_lrn(nodes, consts)

    # Keep only the nodes the outputs depend on.
    producer = {o: n for n in nodes for o in n.output}
    needed, stack = set(), [o.name for o in graph.output]
    while stack:
        n = producer.get(stack.pop())
        if n is None or id(n) in needed:
            continue
        needed.add(id(n))
        stack += _subgraph_inputs(n)
    inputs = [i.name for i in graph.input if i.name not in consts]
    object.__setattr__(module, "input_names", inputs)
    object.__setattr__(module, "output_names", [o.name for o in graph.output])
    known = set(inputs) | set(consts)
    for node in nodes:
        if id(node) not in needed:
            continue
        importer = IMPORTERS.get(node.op_type)
        if importer is None:
            raise UnsupportedOpError(
                f"node {node.name!r}: op type {node.op_type} is not supported by "
                f"fastconv.onnx.load (supported: {', '.join(sorted(IMPORTERS))})")
        missing = [i for i in node.input if i and i not in known]
        if missing:
            raise OnnxImportError(f"node {node.name!r} ({node.op_type}) reads {missing}, which "
                                  "no earlier node, input or initializer makes (the graph must "
                                  "be topologically sorted)")
        attrs = {a.name: onnx.helper.get_attribute_value(a) for a in node.attribute}
        _require(node, attrs, 1)  # every op imported reads at least one tensor
        fn = importer(module, node, attrs)
        module.steps.append((fn, list(node.input), list(node.output),
                             f"{node.op_type} {node.name}".strip()))
        known.update(node.output)
    for o in module.output_names:
        if o not in known:
            raise OnnxImportError(f"graph output {o!r} is made by no node")
    module.eval()
    return module


def load(path, check: bool = True) -> OnnxGraphModule:
    """Read an ONNX file (path or binary file object) as a fastconv module in eval mode.

    Args:
        path: the ``.onnx`` file (str / os.PathLike) or a readable binary file object.
        check: run ``onnx.checker.check_model`` first.

    Raises UnsupportedOpError for a node of an op type fastconv does not have (naming the
    op type and the node), OnnxImportError for attributes fastconv cannot honour.
    """
    onnx = _onnx()
    if isinstance(path, (str, os.PathLike)):
        if not os.path.isfile(path):
            raise FileNotFoundError(f"load: no ONNX file at {os.fspath(path)!r}")
        proto = onnx.load(os.fspath(path))
    elif hasattr(path, "read"):
        proto = onnx.load_model_from_string(path.read())
    else:
        raise TypeError(f"load: path must be a file name or a binary file object, got "
                        f"{type(path).__name__}")
    if check:
        onnx.checker.check_model(proto)
    return from_model_proto(proto)
