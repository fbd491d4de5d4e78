"""torchvision-layout weights into the zoo, compared with torch on the same logits.

The "torchvision weights" are made on the spot from torch twins written under
torchvision's module names (benchmarks/torch_networks.py: torchvision_network), with
randomised batch-norm statistics, so nothing is downloaded.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import pytest

import fastconv as fc
import models
from models.weights import PickleWarning, WeightsError, read_weights, save_safetensors

torch = pytest.importorskip("torch")
safetensors_torch = pytest.importorskip("safetensors.torch")
sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
from torch_networks import torchvision_network

RTOL = 1e-4  # float32 networks of 20-50 layers computed by two libraries


def rel_err(a, b) -> float:
    return float(np.abs(np.asarray(a, np.float64) - b).max() / np.abs(b).max())


def torch_twin(name, seed, **kw):
    torch.manual_seed(seed)
    net = torchvision_network(name, **kw)
    with torch.no_grad():
        for m in net.modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.running_mean.normal_(0, 0.2)
                m.running_var.uniform_(0.5, 2.0)
                m.weight.uniform_(0.5, 1.5)
                m.bias.normal_(0, 0.2)
    return net.eval()


def save(net, path):
    state = {k: v.contiguous() for k, v in net.state_dict().items()}
    if str(path).endswith(".safetensors"):
        safetensors_torch.save_file(state, str(path))
    elif str(path).endswith(".npz"):
        np.savez(path, **{k: v.numpy() for k, v in state.items()})
    else:
        torch.save(state, str(path))


CASES = {"alexnet_owt": (224, {}), "googlenet": (224, {"transform_input": True}),
         "inception_v3": (299, {"transform_input": True})}


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".safetensors", ".npz"])
@pytest.mark.parametrize("name", list(CASES))
def test_torchvision_weights_give_torchs_logits(name, suffix, tmp_path, rng):
    size, tv_options = CASES[name]
    if suffix == ".npz" and name == "alexnet_owt":
        pytest.skip("the .npz route is checked on the two Inception networks")
    net = torch_twin(name, int(rng.integers(2**31)), num_classes=17, **tv_options)
    path = tmp_path / f"{name}{suffix}"
    save(net, path)
    model = models.get_model(name, weights=path)
    assert not model.training
    if name != "alexnet_owt":  # torchvision turns transform_input on for its weights
        assert model.transform_input
    x = rng.standard_normal((2, 3, size, size), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()
    with fc.no_grad():
        got = model(fc.tensor(x)).numpy()
    assert got.shape == (2, 17)
    assert rel_err(got, want) <= RTOL


@pytest.mark.slow
def test_googlenet_weights_without_aux_heads_and_options(tmp_path, rng):
    net = torch_twin("googlenet", 3, num_classes=5, aux_logits=True)
    path = tmp_path / "g.safetensors"
    save(net, path)
    model = models.get_model("googlenet", weights=path, aux_logits=False,
                             transform_input=False)
    assert not hasattr(model, "aux1") or model.aux_logits is False
    assert model.layout == "torchvision" and not model.transform_input
    x = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        want = net(torch.from_numpy(x)).numpy()  # the twin has transform_input off
    with fc.no_grad():
        assert rel_err(model(fc.tensor(x)).numpy(), want) <= RTOL


def test_pickle_files_need_allow_pickle_and_warn(tmp_path, rng):
    net = torchvision_network("alexnet_owt", num_classes=3)
    wrapped = {"state_dict": {"module." + k: v for k, v in net.state_dict().items()}}
    path = tmp_path / "alexnet.pth"
    torch.save(wrapped, str(path))
    with pytest.raises(WeightsError, match="pickle.*allow_pickle=True"):
        models.get_model("alexnet_owt", weights=path)
    with pytest.warns(PickleWarning, match="can run code"):
        model = models.get_model("alexnet_owt", weights=path, allow_pickle=True)
    x = rng.standard_normal((1, 3, 224, 224), dtype=np.float32)
    with torch.no_grad():
        want = net.eval()(torch.from_numpy(x)).numpy()
    with fc.no_grad():
        assert rel_err(model(fc.tensor(x)).numpy(), want) <= RTOL


def test_weights_that_do_not_fit_say_which_keys(tmp_path):
    net = torchvision_network("alexnet_owt", num_classes=3)
    state = {k: v for k, v in net.state_dict().items() if k != "features.3.weight"}
    path = tmp_path / "broken.safetensors"
    safetensors_torch.save_file(state, str(path))
    with pytest.raises(WeightsError, match=r"missing 1: features\.3\.weight"):
        models.get_model("alexnet_owt", weights=path)
    with pytest.raises(WeightsError, match="unknown weights format"):
        (tmp_path / "w.h5").write_bytes(b"x")
        models.get_model("alexnet_owt", weights=tmp_path / "w.h5")
    with pytest.raises(FileNotFoundError, match="no file"):
        models.get_model("alexnet_owt", weights=tmp_path / "none.safetensors")


def test_fastconv_safetensors_round_trip(tmp_path, rng):
    model = models.get_model("inception_small", num_classes=4, input_size=16).eval()
    path = tmp_path / "small.safetensors"
    save_safetensors(model, path, "inception_small", {"input_size": 16},
                     config={"classes": ["a", "b", "c", "d"]}, num_classes=4)
    _, meta = read_weights(path)
    assert meta["format"] == "fastconv" and meta["config"]["classes"] == ["a", "b", "c", "d"]
    back = models.get_model("inception_small", weights=path)
    x = rng.standard_normal((2, 3, 16, 16), dtype=np.float32)
    with fc.no_grad():
        np.testing.assert_array_equal(back(fc.tensor(x)).numpy(), model(fc.tensor(x)).numpy())
    with pytest.raises(WeightsError, match="holds weights of 'inception_small'"):
        models.get_model("nin_cifar", weights=path)



def test_safetensors_headers_that_disagree_with_the_file_are_refused(tmp_path):
    import json
    import struct

    from safetensors.numpy import save

    raw = save({"w": np.arange(12, dtype=np.float32)})
    n = int.from_bytes(raw[:8], "little")
    header = json.loads(raw[8:8 + n])
    huge = 10995116277760  # 40 TiB of float32

    def with_header(entry):
        text = json.dumps({**header, "w": {**header["w"], **entry}}).encode()
        return struct.pack("<Q", len(text)) + text + raw[8 + n:]

    cases = {"shape": with_header({"shape": [huge]}),
             "offsets": with_header({"shape": [huge], "data_offsets": [0, 4 * huge]}),
             "length": struct.pack("<Q", 1 << 50) + raw[8:]}
    for name, data in cases.items():
        path = tmp_path / f"{name}.safetensors"
        path.write_bytes(data)
        with pytest.raises(WeightsError, match="not a readable safetensors file"):
            read_weights(path)
