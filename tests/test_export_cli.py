"""python -m models.export (ONNX, safetensors) and evaluate / predict --weights, end to end on
a tiny run: the ONNX file answers in onnxruntime as the checkpoint does in fastconv, and the
exported or torchvision-layout weights evaluate and predict as the checkpoint."""

from __future__ import annotations

import os
import re
import sys

import numpy as np
import pytest

import fastconv as fc
from models import evaluate as evaluate_cli
from models import export as export_cli
from models import predict as predict_cli
from models import train_cifar
from models.common import model_from_checkpoint

ort = pytest.importorskip("onnxruntime")
pytest.importorskip("safetensors")
sys.path.insert(0, os.path.dirname(__file__))
from test_train import make_folder


@pytest.fixture(autouse=True)
def _private_cache(tmp_path, monkeypatch):
    monkeypatch.setenv("FASTCONV_CACHE", str(tmp_path / "cache"))


@pytest.fixture
def run(tmp_path, rng):
    data = make_folder(tmp_path / "data", rng, per_class=3, size=28)
    out = tmp_path / "run"
    assert train_cifar.main(["--model", "cifar10_tutorial", "--epochs", "1", "--batch-size", "3",
                             "--device", "cpu", "--data", data, "--out", str(out),
                             "--val-per-class", "1", "--workers", "1"]) == 0
    return data, out / "last.npz"


def test_export_onnx_and_safetensors_then_evaluate_and_predict(run, tmp_path, rng, capsys):
    data, ckpt = run
    onnx_path = tmp_path / "tutorial.onnx"
    assert export_cli.main(["--checkpoint", str(ckpt), "--format", "onnx",
                            "--out", str(onnx_path)]) == 0
    assert "ONNX opset 17, input ['N', 3, 24, 24]" in capsys.readouterr().out
    model, ck = model_from_checkpoint(str(ckpt))
    x = export_cli.example_input(ck["config"], 4)
    sess = ort.InferenceSession(str(onnx_path), providers=["CPUExecutionProvider"])
    want = sess.run(["logits"], {"input": x})[0]
    with fc.no_grad():
        got = model(fc.tensor(x)).numpy()
    assert np.abs(got - want).max() <= 1e-5 * np.abs(want).max()

    st = tmp_path / "tutorial.safetensors"
    assert export_cli.main(["--checkpoint", str(ckpt), "--format", "safetensors",
                            "--out", str(st)]) == 0
    capsys.readouterr()
    # The same accuracy from the checkpoint and from its exported weights (the run's
    # preprocessing travels in the file's metadata).
    assert evaluate_cli.main(["--checkpoint", str(ckpt), "--data", data, "--split", "all"]) == 0
    from_ckpt = capsys.readouterr().out
    assert evaluate_cli.main(["--weights", str(st), "--data", data]) == 0
    from_weights = capsys.readouterr().out
    pick = lambda t: re.findall(r"^(loss|top-1|top-5): .*$", t, re.MULTILINE)
    assert pick(from_ckpt) == pick(from_weights) and len(pick(from_ckpt)) == 3
    img = os.path.join(data, "red", "000.png")
    assert predict_cli.main(["--checkpoint", str(ckpt), img]) == 0
    a = capsys.readouterr().out
    assert predict_cli.main(["--weights", str(st), img]) == 0
    assert capsys.readouterr().out == a


def test_bad_arguments_are_errors(run, tmp_path, capsys):
    data, ckpt = run
    assert evaluate_cli.main(["--data", data]) == 2
    assert "exactly one of --checkpoint and --weights" in capsys.readouterr().err
    pth = tmp_path / "w.pth"
    pth.write_bytes(b"\x80\x02}q\x00.")
    assert predict_cli.main(["--weights", str(pth), "--model", "alexnet_owt", "x.png"]) == 2
    assert "allow_pickle=True (--allow-pickle)" in capsys.readouterr().err
    with pytest.raises(SystemExit):
        export_cli.main(["--checkpoint", str(ckpt), "--format", "tflite", "--out", "x"])


def test_imagenet_weights_resize_the_shorter_side_then_crop_the_centre(tmp_path, rng):
    from PIL import Image

    from models.predict import _load_image

    w, h = int(rng.integers(300, 400)), int(rng.integers(150, 250))  # landscape, not square
    path = tmp_path / "wide.png"
    Image.fromarray(rng.integers(0, 256, (h, w, 3), dtype=np.uint8)).save(path)
    got = _load_image(str(path), (256, 256), keep_aspect=True)
    assert got.shape == (256, 256, 3)
    # torchvision's Resize(256) + CenterCrop(256): the height becomes 256, the width keeps
    # the aspect ratio, the middle 256 columns are kept
    nw = round(w * 256 / h)
    full = np.asarray(Image.open(path).convert("RGB").resize((nw, 256), Image.BILINEAR))
    left = (nw - 256) // 2
    np.testing.assert_array_equal(got, full[:, left:left + 256])
    squashed = _load_image(str(path), (256, 256))  # a fastconv run's own files: resized
    assert not np.array_equal(squashed, got)
