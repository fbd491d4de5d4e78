"""CPU inference: fastconv next to onnxruntime running fastconv's own ONNX export of the model.

Both get the same threads (one per core: fastconv's default, onnxruntime's
intra_op_num_threads; onnxruntime runs the graph's nodes one at a time), the same
random batch, eval mode; onnxruntime with its default graph optimisations (it fuses batch
norm into the convolutions and ReLU into them, which fastconv does not). Before timing,
the two outputs are checked to agree (relative error <= 1e-5).

    python -m pytest benchmarks/bench_onnx.py --benchmark-enable --benchmark-only \\
        --benchmark-json=benchmarks/results/onnx.json
"""

import os

import numpy as np
import pytest

import fastconv as fc
import models

ort = pytest.importorskip("onnxruntime")
import fastconv.onnx

NETWORKS = ["nin_cifar", "cifar10_tutorial", "alexnet_owt", "googlenet", "bn_inception",
            "inception_v3"]
THREADS = os.cpu_count() or 1
_cache = {}


def exported(name):
    """(fastconv model in eval mode, onnxruntime session of its export)."""
    if name not in _cache:
        fc.manual_seed(0)
        model = models.get_model(name).eval()
        shape = models.get_model_spec(name).input_shape
        proto = fastconv.onnx.to_model_proto(model, np.zeros((1,) + shape, np.float32))
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = THREADS
        opts.inter_op_num_threads = 1
        opts.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
        sess = ort.InferenceSession(proto.SerializeToString(), opts,
                                    providers=["CPUExecutionProvider"])
        _cache.clear()  # one network's weights in memory at a time
        _cache[name] = (model, sess)
    return _cache[name]


@pytest.mark.parametrize("impl", ["fastconv", "onnxruntime"])
@pytest.mark.parametrize("batch", [1, 64])
@pytest.mark.parametrize("network", NETWORKS)
def test_inference(benchmark, network, batch, impl):
    model, sess = exported(network)
    shape = models.get_model_spec(network).input_shape
    x = np.random.default_rng(0).standard_normal((batch,) + shape, dtype=np.float32)
    fc.set_num_threads(THREADS)
    xt = fc.tensor(x)

    def run_fastconv():
        with fc.no_grad():
            return model(xt).numpy()

    def run_ort():
        return sess.run(None, {"input": x})[0]

    ours, theirs = run_fastconv(), run_ort()
    assert np.abs(ours - theirs).max() <= 1e-5 * np.abs(theirs).max()
    benchmark.group = f"inference {network} batch {batch} {shape[1]}x{shape[2]}"
    benchmark.extra_info["threads"] = THREADS
    rounds = 3 if batch > 1 and network in ("alexnet_owt", "bn_inception", "googlenet",
                                            "inception_v3") else 10
    benchmark.pedantic(run_fastconv if impl == "fastconv" else run_ort, rounds=rounds,
                       warmup_rounds=1, iterations=1)
