"""fastconv.utils.tensorboard.SummaryWriter: what it writes, read back by TensorBoard's own
event reader (scalars, add_scalars' runs, histograms, images, text); skips without the
tensorboard package."""

from __future__ import annotations

import io
import os

import numpy as np
import pytest

import fastconv as fc

pytest.importorskip("tensorboard")
from tensorboard.backend.event_processing.event_accumulator import (  # noqa: E402
    EventAccumulator,
)

from fastconv.utils.tensorboard import SummaryWriter  # noqa: E402


def _read(path):
    acc = EventAccumulator(str(path), size_guidance={"images": 0, "histograms": 0,
                                                    "scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def test_scalars_histograms_images_and_text_read_back(tmp_path, rng):
    losses = rng.random(5).astype(np.float32) + 0.5
    weights = rng.standard_normal((16, 3, 3, 3)).astype(np.float32)
    image = rng.random((3, 6, 8)).astype(np.float32)
    with SummaryWriter(tmp_path / "run") as w:
        for step, value in enumerate(losses):
            w.add_scalar("loss/train", fc.tensor(value) if step % 2 else float(value), step)
        w.add_histogram("conv.weight", fc.tensor(weights), 3)
        w.add_image("input", fc.tensor(image), 4)
        w.add_images("batch", np.stack([image, image[::-1]]), 4)
        w.add_text("note", "lr 0.1, cosine", 0)
        w.add_scalars("acc", {"train": 0.5, "val": 0.25}, 7)
        assert w.get_logdir() == str(tmp_path / "run")
    acc = _read(tmp_path / "run")
    got = acc.Scalars("loss/train")
    assert [e.step for e in got] == list(range(5))
    np.testing.assert_allclose([e.value for e in got], losses, rtol=1e-6)
    (h,) = acc.Histograms("conv.weight")
    assert h.step == 3 and h.histogram_value.num == weights.size
    np.testing.assert_allclose(h.histogram_value.sum, weights.sum(), rtol=1e-4)
    assert h.histogram_value.min == pytest.approx(weights.min())
    assert sum(h.histogram_value.bucket) == weights.size
    from PIL import Image

    (im,) = acc.Images("input")
    decoded = np.asarray(Image.open(io.BytesIO(im.encoded_image_string)))
    assert decoded.shape == (6, 8, 3)
    want = (np.clip(image, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(1, 2, 0)
    np.testing.assert_array_equal(decoded, want)
    (grid,) = acc.Images("batch")
    assert (grid.height, grid.width) == (6, 16)
    (text,) = acc.Tensors("note/text_summary")
    assert text.tensor_proto.string_val[0].decode() == "lr 0.1, cosine"
    for tag, value in (("train", 0.5), ("val", 0.25)):
        (e,) = _read(tmp_path / "run" / f"acc_{tag}").Scalars("acc")
        assert (e.step, e.value) == (7, value)


def test_errors(tmp_path):
    w = SummaryWriter(tmp_path / "bad")
    with pytest.raises(ValueError, match="one value"):
        w.add_scalar("x", np.ones(3))
    with pytest.raises(ValueError, match="dataformats"):
        w.add_image("x", np.ones((2, 2)), dataformats="CHW")
    with pytest.raises(ValueError, match="channels"):
        w.add_image("x", np.ones((2, 4, 4)))
    with pytest.raises(NotImplementedError, match="graph"):
        w.add_graph(fc.nn.Linear(2, 2))
    w.close()
    with pytest.raises(RuntimeError, match="after close"):
        w.add_scalar("x", 1.0)


def test_default_log_dir_is_torchs_runs_folder(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with SummaryWriter(comment="_lr0.1") as w:
        w.add_scalar("a", 1.0, 0)
    (name,) = os.listdir(tmp_path / "runs")
    assert name.endswith("_lr0.1") and w.get_logdir() == os.path.join("runs", name)


def test_purge_step_drops_the_steps_an_interrupted_run_left(tmp_path):
    with SummaryWriter(tmp_path / "run") as w:
        for step in range(5):
            w.add_scalar("loss", float(step), step)
    with SummaryWriter(tmp_path / "run", purge_step=3) as w:  # resumed from step 3
        for step in range(3, 6):
            w.add_scalar("loss", 10.0 + step, step)
    events = _read(tmp_path / "run").Scalars("loss")
    assert [(e.step, e.value) for e in events] == [(0, 0.0), (1, 1.0), (2, 2.0), (3, 13.0),
                                                   (4, 14.0), (5, 15.0)]
