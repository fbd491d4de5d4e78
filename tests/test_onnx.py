"""ONNX export proven in onnxruntime, ONNX import, and graphs of torch.onnx.export read back.

The references are independent of fastconv: onnxruntime runs the exported files, and
PyTorch runs the twins of the zoo (benchmarks/torch_networks.py) whose torch.onnx
exports fastconv imports. Relative error: max |a - b| / max |b| over the whole output.
"""

from __future__ import annotations

import io
import os
import re
import sys
import warnings

import numpy as np
import pytest

import fastconv as fc
import fastconv.functional as F
import models
from fastconv import nn
from fastconv.ops.conv import conv2d_relu

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
import fastconv.onnx as fonnx  # noqa: E402  (after the importorskip of onnx)

RTOL = 1e-5
BATCHES = (1, 3)


def rel_err(a, b) -> float:
    a, b = np.asarray(a, np.float64), np.asarray(b, np.float64)
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-30))


def run_fastconv(model, x):
    with fc.no_grad():
        out = model(fc.tensor(x))
    return out.numpy()


def session(proto):
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = 2
    return ort.InferenceSession(proto.SerializeToString(), opts,
                                providers=["CPUExecutionProvider"])


def randomise_batch_norm(model, rng):
    """Running statistics and affine parameters far from 0/1, so batch norm is not ~identity."""
    for m in model.modules():
        if isinstance(m, (nn.BatchNorm1d, nn.BatchNorm2d)):
            c = m.num_features
            m.running_mean.data[...] = rng.normal(0, 0.2, c)
            m.running_var.data[...] = rng.uniform(0.5, 2.0, c)
            if m.weight is not None:
                m.weight.data[...] = rng.uniform(0.5, 1.5, c)
                m.bias.data[...] = rng.normal(0, 0.2, c)


def check_against_onnxruntime(model, input_shape, rng, batches=BATCHES, **export_args):
    """Export on a batch of 2, run onnxruntime and fastconv on fresh inputs of each batch
    size; return the exported proto."""
    model.eval()
    proto = fonnx.to_model_proto(model, rng.standard_normal((2,) + input_shape,
                                                            dtype=np.float32), **export_args)
    sess = session(proto)
    name = sess.get_inputs()[0].name
    for n in batches:
        x = rng.standard_normal((n,) + input_shape, dtype=np.float32)
        want = sess.run(None, {name: x})[0]
        got = run_fastconv(model, x)
        assert got.shape == want.shape
        err = rel_err(got, want)
        assert err <= RTOL, f"batch {n}: relative error {err:.2e} vs onnxruntime"
    return proto


# ---------------------------------------------------------------------------------------
# Export, op by op
# ---------------------------------------------------------------------------------------

class Functional(nn.Module):
    def __init__(self, fn, *modules):
        super().__init__()
        self.fn = fn
        for i, m in enumerate(modules):
            self.add_module(f"m{i}", m)

    def forward(self, x):
        return self.fn(self, x)


OP_CASES = {
    # name: (module builder, input shape (C, H, W) or (F,))
    "conv groups dilation": (lambda: nn.Conv2d(4, 6, (3, 2), stride=(2, 1), padding=(2, 1),
                                               dilation=(2, 1), groups=2), (4, 11, 9)),
    "conv no bias 1x1": (lambda: nn.Conv2d(3, 5, 1, bias=False), (3, 5, 6)),
    # the fused op nn.Sequential runs for Conv2d + ReLU (export's hooks keep those apart)
    "conv relu fused": (lambda: Functional(lambda m, x: conv2d_relu(x, m.m0.weight, m.m0.bias,
                                                                    1, 1), nn.Conv2d(3, 4, 3)),
                        (3, 6, 7)),
    "max pool ceil padding": (lambda: nn.MaxPool2d(3, stride=2, padding=1, ceil_mode=True),
                              (3, 10, 11)),
    "max pool ceil": (lambda: nn.MaxPool2d(3, stride=2, ceil_mode=True), (2, 24, 13)),
    "sigmoid": (lambda: nn.Sigmoid(), (3, 5, 4)),
    "tanh": (lambda: nn.Tanh(), (3, 5, 4)),
    "leaky relu": (lambda: nn.LeakyReLU(0.2), (3, 5, 4)),
    "elu": (lambda: nn.ELU(alpha=0.7), (3, 5, 4)),
    "silu": (lambda: nn.SiLU(), (3, 5, 4)),
    "gelu": (lambda: nn.GELU(), (3, 5, 4)),
    "avg pool ceil include pad": (lambda: nn.AvgPool2d(3, stride=2, ceil_mode=True),
                                  (3, 16, 9)),
    "avg pool padding include": (lambda: nn.AvgPool2d(3, stride=1, padding=1), (3, 7, 8)),
    "avg pool padding exclude": (lambda: nn.AvgPool2d(3, stride=2, padding=1,
                                                      count_include_pad=False), (3, 9, 8)),
    "avg pool ceil padding exclude": (lambda: nn.AvgPool2d(3, 2, 1, ceil_mode=True,
                                                           count_include_pad=False),
                                      (2, 10, 11)),
    "adaptive avg pool global": (lambda: nn.AdaptiveAvgPool2d(1), (5, 7, 6)),
    "adaptive avg pool divides": (lambda: nn.AdaptiveAvgPool2d((2, 3)), (3, 8, 9)),
    "adaptive avg pool uneven": (lambda: nn.AdaptiveAvgPool2d((3, 4)), (3, 7, 10)),
    "lrn caffe": (lambda: nn.LocalResponseNorm(5, alpha=1e-2, beta=0.75, k=2.0), (8, 5, 5)),
    "lrn tf tutorial": (lambda: nn.LocalResponseNorm(9, alpha=0.001 * 50, beta=0.75, k=1.0),
                        (12, 4, 4)),
    "batch norm 2d": (lambda: nn.BatchNorm2d(4, eps=1e-3), (4, 5, 5)),
    "batch norm 1d": (lambda: nn.BatchNorm1d(6), (6,)),
    "batch norm no affine": (lambda: nn.BatchNorm2d(3, affine=False), (3, 4, 4)),
    "relu": (lambda: nn.ReLU(), (3, 4, 5)),
    "linear": (lambda: nn.Linear(7, 5), (7,)),
    "flatten dropout linear": (lambda: nn.Sequential(nn.Flatten(), nn.Dropout(0.5),
                                                     nn.Linear(24, 3)), (2, 3, 4)),
    "dropout2d": (lambda: nn.Dropout2d(0.3), (3, 4, 4)),
    "concat": (lambda: nn.Concat(nn.Conv2d(3, 2, 1), nn.MaxPool2d(3, 1, 1),
                                 nn.Conv2d(3, 4, 3, padding=1)), (3, 6, 6)),
    "softmax": (lambda: Functional(lambda s, x: F.softmax(x, dim=1)), (10,)),
    "softmax spatial": (lambda: Functional(lambda s, x: F.softmax(x, dim=2)), (3, 5, 4)),
    "log softmax": (lambda: Functional(lambda s, x: F.log_softmax(x, dim=-1)), (10,)),
    "arithmetic": (lambda: Functional(
        lambda s, x: ((x * 0.5 + 1.0) - x / 3.0) ** 2.0 + (-x).exp() * 0.1
        + (x * x + 1.0).log(), nn.Identity()), (3, 4, 4)),
    "per-channel affine constants": (lambda: Functional(
        lambda s, x: x * fc.tensor(np.array([2.0, 3.0, 4.0], np.float32).reshape(1, 3, 1, 1))
        + fc.tensor(np.array([-1.0, 0.0, 1.0], np.float32).reshape(1, 3, 1, 1))), (3, 4, 5)),
    "reductions": (lambda: Functional(
        lambda s, x: x.mean(dim=1, keepdim=True) + x.sum(dim=(2, 3), keepdim=True)
        + x.max(dim=1, keepdim=True).values), (3, 4, 5)),
    "transpose matmul reshape": (lambda: Functional(
        lambda s, x: (x.permute(0, 2, 3, 1) @ fc.tensor(np.eye(3, 5, dtype=np.float32)))
        .reshape(x.shape[0], -1, 5).flatten(1)), (3, 4, 2)),
    "slice": (lambda: Functional(lambda s, x: x[:, 1:3, ::2] + x[:, 0:2, 1::2]), (4, 6, 5)),
    "layer norm": (lambda: nn.LayerNorm([5, 4]), (3, 5, 4)),
    "layer norm no affine": (lambda: nn.LayerNorm(6, elementwise_affine=False), (6,)),
    "group norm": (lambda: nn.GroupNorm(2, 6, eps=1e-3), (6, 5, 4)),
    "group norm no affine": (lambda: nn.GroupNorm(3, 3, affine=False), (3, 4, 4)),
    "instance norm": (lambda: nn.InstanceNorm2d(4, affine=True), (4, 5, 3)),
    "zero pad": (lambda: nn.ZeroPad2d((1, 0, 2, 1)), (3, 4, 5)),
    "constant pad": (lambda: Functional(lambda s, x: F.pad(x, (1, 2, 0, 1), value=0.5)),
                     (2, 4, 5)),
    "reflect pad": (lambda: nn.ReflectionPad2d((2, 1, 1, 2)), (2, 5, 4)),
    "replicate pad": (lambda: nn.ReplicationPad2d(2), (2, 3, 4)),
    "circular pad": (lambda: Functional(lambda s, x: F.pad(x, (1, 2, 2, 1), "circular")),
                     (2, 4, 5)),
    "conv reflect padding": (lambda: nn.Conv2d(3, 4, 3, padding=1, padding_mode="reflect"),
                             (3, 6, 5)),
    "conv circular same": (lambda: nn.Conv2d(3, 2, 4, padding="same", padding_mode="circular"),
                           (3, 6, 7)),
    "upsample nearest": (lambda: nn.Upsample(scale_factor=2), (3, 4, 5)),
    "upsample nearest size": (lambda: nn.Upsample(size=(7, 9)), (2, 4, 5)),
    "upsample bilinear": (lambda: nn.Upsample(scale_factor=2, mode="bilinear"), (3, 4, 5)),
    "upsample bicubic": (lambda: nn.Upsample(size=(7, 3), mode="bicubic"), (3, 4, 5)),
    "upsample bilinear align corners": (lambda: nn.UpsamplingBilinear2d(size=(7, 6)),
                                        (2, 4, 5)),
    "interpolate area": (lambda: Functional(lambda s, x: F.interpolate(x, size=(3, 2),
                                                                       mode="area")), (2, 7, 5)),
    "max pool dilation": (lambda: nn.MaxPool2d(3, stride=2, padding=1, dilation=2), (3, 9, 8)),
    "adaptive max pool": (lambda: nn.AdaptiveMaxPool2d((3, 2)), (3, 7, 5)),
    "relu6": (lambda: nn.ReLU6(), (3, 5, 4)),
    "hardtanh": (lambda: nn.Hardtanh(-0.5, 0.3), (3, 5, 4)),
    "hardsigmoid": (lambda: nn.Hardsigmoid(), (3, 5, 4)),
    "hardswish": (lambda: nn.Hardswish(), (3, 5, 4)),
    "selu": (lambda: nn.SELU(), (3, 5, 4)),
    "celu": (lambda: nn.CELU(0.7), (3, 5, 4)),
    "softmax module": (lambda: nn.Softmax(dim=1), (4, 3, 2)),
    "log softmax module": (lambda: nn.LogSoftmax(dim=-1), (5,)),
}


#: cases whose graph uses an op the importer does not have (the op named)
EXPORT_ONLY = {"gelu": "Erf"}


@pytest.mark.parametrize("case", list(OP_CASES))
def test_op_exports_and_matches_onnxruntime(case, rng):
    build, shape = OP_CASES[case]
    model = build()
    randomise_batch_norm(model, rng)
    proto = check_against_onnxruntime(model, shape, rng)
    if case in EXPORT_ONLY:
        with pytest.raises(fonnx.UnsupportedOpError, match=EXPORT_ONLY[case]):
            fonnx.from_model_proto(proto)
        return
    # ... and comes back as a fastconv module computing the same thing.
    back = fonnx.from_model_proto(proto)
    x = rng.standard_normal((2,) + shape, dtype=np.float32)
    np.testing.assert_allclose(run_fastconv(back, x), run_fastconv(model, x), rtol=1e-6,
                               atol=1e-6)


def test_export_file_names_opset_and_static_batch(tmp_path, rng):
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 4 * 4, 2))
    path = tmp_path / "m.onnx"
    x = rng.standard_normal((2, 3, 6, 6), dtype=np.float32)
    proto = fonnx.export(model, fc.tensor(x), path, opset_version=13, input_names=["image"],
                         output_names=["scores"], dynamic_batch=False)
    loaded = onnx.load(str(path))
    onnx.checker.check_model(loaded, full_check=True)
    assert loaded.SerializeToString() == proto.SerializeToString()
    assert loaded.opset_import[0].version == 13
    assert [i.name for i in loaded.graph.input] == ["image"]
    assert [o.name for o in loaded.graph.output] == ["scores"]
    dims = loaded.graph.input[0].type.tensor_type.shape.dim
    assert [d.dim_value for d in dims] == [2, 3, 6, 6]
    # Parameters keep their state-dict names.
    assert {i.name for i in loaded.graph.initializer} == set(model.state_dict())
    got = session(loaded).run(None, {"image": x})[0]
    assert rel_err(run_fastconv(model, x), got) <= RTOL
    # The default: a symbolic batch dimension.
    buf = io.BytesIO()
    fonnx.export(model, x, buf)
    dim0 = onnx.load_model_from_string(buf.getvalue()).graph.input[0].type.tensor_type \
        .shape.dim[0]
    assert dim0.dim_param == "batch"


def test_export_restores_training_mode_and_drops_dropout(rng):
    model = nn.Sequential(nn.Linear(5, 5), nn.Dropout(0.5), nn.ReLU())
    model.train()
    proto = fonnx.to_model_proto(model, rng.standard_normal((2, 5), dtype=np.float32))
    assert model.training
    assert [n.op_type for n in proto.graph.node] == ["Gemm", "Relu"]
    assert proto.graph.node[0].name == "0/Gemm"


def test_export_bad_arguments(rng):
    model = nn.Conv2d(3, 2, 1)
    x = rng.standard_normal((1, 3, 4, 4), dtype=np.float32)
    with pytest.raises(ValueError, match="opset_version must be an int from 13"):
        fonnx.to_model_proto(model, x, opset_version=11)
    with pytest.raises(TypeError, match="example_input must be a fastconv Tensor or a NumPy"):
        fonnx.to_model_proto(model, [[1.0]])
    with pytest.raises(ValueError, match="float32"):
        fonnx.to_model_proto(model, x.astype(np.float64))
    with pytest.raises(TypeError, match="model must be a fastconv.nn.Module"):
        fonnx.to_model_proto(lambda t: t, x)
    with pytest.raises(ValueError, match="output_names has 2 name"):
        fonnx.to_model_proto(model, x, output_names=["a", "b"])
    with pytest.raises(TypeError, match="input_names must be a list"):
        fonnx.to_model_proto(model, x, input_names="x")
    with pytest.raises(TypeError, match="path must be a file name"):
        fonnx.export(model, x, 42)


def test_batch_norm_relu_max_pool_exports_as_three_nodes(rng):
    """nn.Sequential runs a training-mode BatchNorm2d, ReLU and MaxPool2d as one op; export
    (in eval mode) writes BatchNormalization, Relu and MaxPool, matching onnxruntime."""
    model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.MaxPool2d(2))
    randomise_batch_norm(model, rng)
    model.train()
    proto = check_against_onnxruntime(model, (3, 8, 8), rng)
    ops = [n.op_type for n in proto.graph.node]
    assert ops == ["Conv", "BatchNormalization", "Relu", "MaxPool"], ops


def test_export_refuses_even_lrn_with_the_module_named():
    model = nn.Sequential(nn.Conv2d(3, 4, 1), nn.LocalResponseNorm(4))
    with pytest.raises(fonnx.ExportError, match=r"LocalResponseNorm in module 1.*even"):
        fonnx.to_model_proto(model, np.ones((1, 3, 4, 4), np.float32))


# ---------------------------------------------------------------------------------------
# Export, the whole zoo
# ---------------------------------------------------------------------------------------

@pytest.mark.slow
@pytest.mark.parametrize("name", models.list_models())
def test_every_model_exports_and_matches_onnxruntime(name, rng):
    spec = models.get_model_spec(name)
    model = models.get_model(name)
    randomise_batch_norm(model, rng)
    proto = check_against_onnxruntime(model, spec.input_shape, rng)
    # fastconv -> ONNX -> fastconv: the same outputs, bit for bit (the same kernels run).
    back = fonnx.from_model_proto(proto)
    x = rng.standard_normal((2,) + spec.input_shape, dtype=np.float32)
    np.testing.assert_array_equal(run_fastconv(back, x), run_fastconv(model, x))
    sd = back.state_dict()
    for key, value in model.state_dict().items():
        if key in sd:  # those of aux heads are not in the eval-mode graph
            np.testing.assert_array_equal(np.asarray(sd[key]), np.asarray(value))
    assert any(k.endswith("weight") for k in sd)


# ---------------------------------------------------------------------------------------
# Import
# ---------------------------------------------------------------------------------------

def make_proto(nodes, inputs, outputs, initializers=(), opset=17):
    h = onnx.helper
    graph = h.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    return h.make_model(graph, opset_imports=[h.make_opsetid("", opset)])


def float_info(name, shape):
    return onnx.helper.make_tensor_value_info(name, onnx.TensorProto.FLOAT, shape)


def test_import_unsupported_op_names_op_type_and_node(tmp_path):
    proto = make_proto([onnx.helper.make_node("Relu", ["x"], ["r"], name="first"),
                        onnx.helper.make_node("Erf", ["r"], ["y"], name="my_erf")],
                       [float_info("x", [1, 3])], [float_info("y", [1, 3])])
    path = tmp_path / "erf.onnx"
    onnx.save(proto, str(path))
    with pytest.raises(fonnx.UnsupportedOpError, match=r"'my_erf'.*op type Erf"):
        fonnx.load(path)


def test_import_refuses_asymmetric_pads_and_missing_file(tmp_path, rng):
    w = onnx.numpy_helper.from_array(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="same_upper",
                                 pads=[0, 0, 1, 1], kernel_shape=[3, 3])
    proto = make_proto([node], [float_info("x", [1, 3, 5, 5])], [float_info("y", None)], [w])
    with pytest.raises(fonnx.OnnxImportError, match="same_upper.*begin pads must equal end"):
        fonnx.from_model_proto(proto)
    with pytest.raises(FileNotFoundError, match="no ONNX file"):
        fonnx.load(tmp_path / "missing.onnx")


def test_import_gemm_forms_against_onnxruntime(rng):
    a = rng.standard_normal((4, 6)).astype(np.float32)
    b = onnx.numpy_helper.from_array(rng.standard_normal((6, 5)).astype(np.float32), "b")
    c = onnx.numpy_helper.from_array(rng.standard_normal((5,)).astype(np.float32), "c")
    node = onnx.helper.make_node("Gemm", ["x", "b", "c"], ["y"], name="g", alpha=0.5,
                                 beta=2.0)
    proto = make_proto([node], [float_info("x", [4, 6])], [float_info("y", [4, 5])], [b, c])
    want = session(proto).run(None, {"x": a})[0]
    got = run_fastconv(fonnx.from_model_proto(proto), a)
    assert rel_err(got, want) <= RTOL
    # Parameters are trainable: a gradient reaches the Gemm weight.
    module = fonnx.from_model_proto(proto)
    module(fc.tensor(a)).sum().backward()
    assert all(p.grad is not None for p in module.parameters())


def int_init(name, values):
    return onnx.numpy_helper.from_array(np.asarray(values, np.int64), name)


def test_import_gather_negative_indices_against_onnxruntime(rng):
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    for axis, idx in ((1, [[-1, 0], [-3, 2]]), (-1, [-4, 3, -1])):
        node = onnx.helper.make_node("Gather", ["x", "i"], ["y"], name="take", axis=axis)
        proto = make_proto([node], [float_info("x", [2, 3, 4])], [float_info("y", None)],
                           [int_init("i", idx)])
        want = session(proto).run(None, {"x": x})[0]
        got = run_fastconv(fonnx.from_model_proto(proto), x)
        assert got.shape == want.shape and np.array_equal(got, want)


@pytest.mark.parametrize("idx", [[5], [0, -9]])
def test_import_gather_refuses_out_of_range_indices(idx, rng):
    node = onnx.helper.make_node("Gather", ["x", "i"], ["y"], name="take", axis=1)
    bad = [i for i in idx if not -3 <= i < 3]
    pattern = re.escape(f"'take' (Gather): indices {bad} are out of range for axis 1 of "
                        "size 3 (allowed: [-3, 2]")
    # Declared input shape: refused at import.
    proto = make_proto([node], [float_info("x", [2, 3, 4])], [float_info("y", None)],
                       [int_init("i", idx)])
    with pytest.raises(fonnx.OnnxImportError, match=pattern):
        fonnx.from_model_proto(proto)
    # Shape not declared: refused when the forward meets it.
    proto = make_proto([node], [float_info("x", None)], [float_info("y", None)],
                       [int_init("i", idx)])
    module = fonnx.from_model_proto(proto)
    with pytest.raises(fonnx.OnnxImportError, match=pattern):
        module(fc.tensor(rng.standard_normal((2, 3, 4)).astype(np.float32)))


#: (op, inputs, attributes, initializers, pattern) of axes outside ONNX's range, 4-D input
BAD_AXES = {
    "Gather": (["x", "i"], {"axis": 4}, [int_init("i", [0])],
               r"axis=4 is out of range for a rank-4 input \(allowed: \[-4, 3\]\)"),
    "Concat": (["x", "x"], {"axis": -5}, [],
               r"axis=-5 is out of range for a rank-4 input \(allowed: \[-4, 3\]\)"),
    "Flatten": (["x"], {"axis": 9}, [],
                r"axis=9 is out of range for a rank-4 input \(allowed: \[-4, 4\]\)"),
    "Unsqueeze": (["x", "a"], {}, [int_init("a", [5])],
                  r"axes=\[5\]: 5 is out of range for a rank-5 output \(allowed: \[-5, 4\]\)"),
    "Slice": (["x", "s", "e", "a"], {}, [int_init("s", [0]), int_init("e", [1]),
                                         int_init("a", [8])],
              r"axes=\[8\]: 8 is out of range for a rank-4 input \(allowed: \[-4, 3\]\)"),
    "Squeeze": (["x", "a"], {}, [int_init("a", [-5])],
                r"axes=\[-5\]: -5 is out of range for a rank-4 input"),
    "Transpose": (["x"], {"perm": [0, 1, 2, 7]}, [], r"perm=\[0, 1, 2, 7\] is not a permutation"),
}


@pytest.mark.parametrize("declared", [True, False], ids=["at import", "at forward"])
@pytest.mark.parametrize("op", list(BAD_AXES))
def test_import_refuses_axes_out_of_range(op, declared, rng):
    inputs, attrs, inits, pattern = BAD_AXES[op]
    node = onnx.helper.make_node(op, inputs, ["y"], name="bad", **attrs)
    proto = make_proto([node], [float_info("x", [2, 3, 4, 5] if declared else None)],
                       [float_info("y", None)], inits)
    pattern = rf"'bad' \({op}\): " + pattern
    x = fc.tensor(rng.standard_normal((2, 3, 4, 5)).astype(np.float32))
    with pytest.raises(fonnx.OnnxImportError, match=pattern):
        fonnx.from_model_proto(proto)(x)


def test_import_edge_axes_against_onnxruntime(rng):
    """The ends of each range are accepted: Flatten axis=rank, Unsqueeze at the new last
    axis, Concat and Slice at -rank."""
    x = rng.standard_normal((2, 3, 4)).astype(np.float32)
    h = onnx.helper
    nodes = [h.make_node("Flatten", ["x"], ["f"], axis=3),
             h.make_node("Unsqueeze", ["x", "u_axes"], ["u"]),
             h.make_node("Concat", ["x", "x"], ["c"], axis=-3),
             h.make_node("Slice", ["x", "s", "e", "a"], ["s_out"])]
    outs = ["f", "u", "c", "s_out"]
    proto = make_proto(nodes, [float_info("x", [2, 3, 4])], [float_info(o, None) for o in outs],
                       [int_init("u_axes", [3, -5]), int_init("s", [1]), int_init("e", [2]),
                        int_init("a", [-3])])
    want = session(proto).run(None, {"x": x})
    with fc.no_grad():
        got = fonnx.from_model_proto(proto)(fc.tensor(x))
    for g, w in zip(got, want):
        assert g.shape == w.shape and np.array_equal(g.numpy(), w)


def test_import_refuses_pads_of_the_wrong_length(rng):
    for pads, pattern in (([0, 1, 0, 1, 0, 1], r"pads has 6 values .*needs 2\*4 = 8"),
                          ([0, 1, 0, 1, 0], "pads has an odd number of values")):
        node = onnx.helper.make_node("Pad", ["x", "p"], ["y"], name="pad")
        proto = make_proto([node], [float_info("x", [1, 2, 3, 3])], [float_info("y", None)],
                           [int_init("p", pads)])
        with pytest.raises(fonnx.OnnxImportError, match=r"'pad' \(Pad\): " + pattern):
            fonnx.from_model_proto(proto)


def test_import_refuses_conv_kernel_shape_contradicting_the_weight(rng):
    w = onnx.numpy_helper.from_array(rng.standard_normal((2, 3, 3, 3)).astype(np.float32), "w")
    node = onnx.helper.make_node("Conv", ["x", "w"], ["y"], name="c", kernel_shape=[5, 5])
    proto = make_proto([node], [float_info("x", [1, 3, 8, 8])], [float_info("y", None)], [w])
    with pytest.raises(fonnx.OnnxImportError,
                       match=r"'c' \(Conv\): kernel_shape=\[5, 5\] contradicts the weight's "
                             r"shape \(2, 3, 3, 3\)"):
        fonnx.from_model_proto(proto)


def test_import_refuses_missing_inputs_attributes_and_bad_data():
    h = onnx.helper
    ones = onnx.numpy_helper.from_array(np.ones(3, np.float32), "s")
    bn = h.make_node("BatchNormalization", ["x", "s", "s"], ["y"], name="bn")
    cat = h.make_node("Concat", ["x", "x"], ["y"], name="cat")
    const = h.make_node("Constant", [], ["k"], name="k")
    add = h.make_node("Add", ["x", "k"], ["y"], name="add")
    short = onnx.numpy_helper.from_array(np.ones((2, 3), np.float32), "w")
    short.raw_data = short.raw_data[:-2]
    cases = [
        ([bn], [ones], r"'bn' \(BatchNormalization\): needs at least 5 input\(s\).*got 3"),
        ([cat], [], r"'cat' \(Concat\): the required attribute 'axis' is missing"),
        ([const, add], [], r"'k' \(Constant\): needs exactly one value attribute.*none"),
        ([h.make_node("Add", ["x", "w"], ["y"])], [short],
         r"initializer 'w': raw_data holds 22 bytes, but dims \[2, 3\] of FLOAT need 24"),
    ]
    for nodes, inits, pattern in cases:
        proto = make_proto(nodes, [float_info("x", [2, 3])], [float_info("y", None)], inits)
        with pytest.raises(fonnx.OnnxImportError, match=pattern):
            fonnx.from_model_proto(proto)


sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))

TWINS = {"cifar10_tutorial": 24, "nin_cifar": 32, "alexnet_owt": 224, "alexnet": 227,
         "googlenet": 224}


@pytest.mark.slow
@pytest.mark.parametrize("dynamic", [True, False], ids=["dynamic batch", "static"])
@pytest.mark.parametrize("name", list(TWINS))
def test_torch_onnx_export_of_the_twins_imports_and_matches_torch(name, dynamic, rng):
    torch = pytest.importorskip("torch")
    from torch_networks import torch_network

    if not dynamic and name not in ("cifar10_tutorial", "googlenet"):
        pytest.skip("the static export is checked on the LRN networks")
    torch.manual_seed(int(rng.integers(2**31)))
    net = torch_network(name).eval()
    size = TWINS[name]
    buf = io.BytesIO()
    extra = {"dynamic_axes": {"input": {0: "batch"}, "logits": {0: "batch"}}} if dynamic else {}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 3, size, size),), buf, dynamo=False,
                          opset_version=17, input_names=["input"], output_names=["logits"],
                          **extra)
    buf.seek(0)
    module = fonnx.load(buf)
    ops = {step[3].split()[0] for step in module.steps}
    assert "Shape" not in ops and ("LRN" in ops) == (name in ("cifar10_tutorial", "alexnet",
                                                             "googlenet"))
    for n in (BATCHES if dynamic else (2,)):
        x = rng.standard_normal((n, 3, size, size), dtype=np.float32)
        with torch.no_grad():
            want = net(torch.from_numpy(x)).numpy()
        assert rel_err(run_fastconv(module, x), want) <= RTOL


def test_torch_onnx_export_of_the_newer_layers_imports_and_matches_torch(rng):
    """PyTorch's own exporter writes these layers (LayerNormalization, Clip, HardSwish,
    HardSigmoid, InstanceNormalization, Selu); fastconv imports its graph and computes what
    torch computes. (torch writes F.pad's pads as a computed ConstantOfShape/Concat
    subgraph, which the importer does not fold; fastconv's own Pad export imports.)"""
    torch = pytest.importorskip("torch")
    tnn = torch.nn
    torch.manual_seed(int(rng.integers(2**31)))
    net = tnn.Sequential(
        tnn.Conv2d(3, 4, 3, padding=1), tnn.ReLU6(),
        tnn.Conv2d(4, 4, 1, padding=1), tnn.Hardswish(),
        tnn.InstanceNorm2d(4, affine=True), tnn.Hardsigmoid(), tnn.LayerNorm([8, 8]),
        tnn.SELU(), tnn.Flatten(), tnn.Linear(4 * 64, 5)).eval()
    buf = io.BytesIO()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(net, (torch.randn(2, 3, 6, 6),), buf, dynamo=False, opset_version=17,
                          input_names=["input"], output_names=["logits"])
    buf.seek(0)
    module = fonnx.load(buf)
    x = rng.standard_normal((2, 3, 6, 6), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    assert rel_err(run_fastconv(module, x), want) <= RTOL
