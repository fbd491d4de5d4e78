"""``torch.utils.tensorboard``: ``SummaryWriter`` writes TensorBoard event files.

    from fastconv.utils.tensorboard import SummaryWriter
    writer = SummaryWriter()                       # runs/<date>_<host>, as torch's
    writer.add_scalar("loss/train", loss.item(), step)
    writer.add_histogram("conv1.weight", model.conv1.weight, step)
    writer.add_image("input", x[0], step)          # (C, H, W) in [0, 1]
    writer.close()                                 # then: tensorboard --logdir runs

The files are TensorBoard's own, written by the ``tensorboard`` package's event-file writer and
protocol buffers (``pip install tensorboard``; the import says so when it is missing), so
TensorBoard reads them as it reads torch's. Values may be fastconv Tensors (CPU or GPU),
NumPy arrays or numbers. ``add_graph`` is not available (fastconv records no static graph).
"""

from __future__ import annotations

import io
import os
import socket
import time
from datetime import datetime

import numpy as np

try:
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.compat.proto.tensor_pb2 import TensorProto
    from tensorboard.compat.proto.tensor_shape_pb2 import TensorShapeProto
    from tensorboard.summary.writer.event_file_writer import EventFileWriter
except ImportError as e:  # pragma: no cover - exercised only without the package
    raise ImportError("fastconv.utils.tensorboard needs the tensorboard package: pip install "
                      f"tensorboard ({e})") from e

__all__ = ["SummaryWriter"]


def _array(value) -> np.ndarray:
    data = getattr(value, "data", value)
    if hasattr(data, "get") and not isinstance(data, np.ndarray):  # a CuPy array
        data = data.get()
    return np.asarray(data)


def _scalar(value) -> float:
    a = _array(value)
    if a.size != 1:
        raise ValueError(f"a scalar needs one value, got an array of shape {a.shape}")
    return float(a.reshape(()))


def _png(hwc: np.ndarray) -> bytes:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(hwc.squeeze(-1) if hwc.shape[-1] == 1 else hwc).save(buf, format="PNG")
    return buf.getvalue()


def _to_hwc_uint8(img: np.ndarray, dataformats: str) -> np.ndarray:
    dataformats = dataformats.upper()
    if img.ndim != len(dataformats) or sorted(dataformats) not in (sorted("CHW"), sorted("HW")):
        raise ValueError(f"add_image: an image of shape {img.shape} does not match "
                         f"dataformats={dataformats!r} (CHW, HWC or HW)")
    if dataformats == "HW":
        img = img[..., None]
    else:
        img = np.transpose(img, [dataformats.index(c) for c in "HWC"])
    if img.shape[-1] not in (1, 3, 4):
        raise ValueError(f"add_image: {img.shape[-1]} channels; expected 1, 3 or 4")
    if img.dtype != np.uint8:  # floats in [0, 1], as torch's
        img = (np.clip(img.astype(np.float64), 0.0, 1.0) * 255.0 + 0.5).astype(np.uint8)
    return np.ascontiguousarray(img)


class SummaryWriter:
    """torch.utils.tensorboard.SummaryWriter's common methods (see the module docstring)."""

    def __init__(self, log_dir=None, comment: str = "", purge_step=None, max_queue: int = 10,
                 flush_secs: int = 120, filename_suffix: str = ""):
        if log_dir is None:
            stamp = datetime.now().strftime("%b%d_%H-%M-%S")
            log_dir = os.path.join("runs", f"{stamp}_{socket.gethostname()}{comment}")
        self.log_dir = str(log_dir)
        os.makedirs(self.log_dir, exist_ok=True)
        self._writer = EventFileWriter(self.log_dir, max_queue, flush_secs, filename_suffix)
        self._sub_writers = {}  # add_scalars' runs, one per tag
        self._closed = False
        if purge_step is not None:  # a restart: TensorBoard drops earlier events from this step
            self._add(event_pb2.Event(step=int(purge_step), file_version="brain.Event:2"))
            self._add(event_pb2.Event(step=int(purge_step), session_log=event_pb2.SessionLog(
                status=event_pb2.SessionLog.START)))

    def get_logdir(self) -> str:
        return self.log_dir

    # ---- what gets written ------------------------------------------------------------------
    def _add(self, event, walltime=None) -> None:
        if self._closed:
            raise RuntimeError("SummaryWriter: write after close()")
        event.wall_time = time.time() if walltime is None else float(walltime)
        self._writer.add_event(event)

    def _summary(self, value, step, walltime) -> None:
        event = event_pb2.Event(summary=summary_pb2.Summary(value=[value]))
        if step is not None:
            event.step = int(step)
        self._add(event, walltime)

    def add_scalar(self, tag: str, scalar_value, global_step=None, walltime=None,
                   new_style: bool = False, double_precision: bool = False) -> None:
        self._summary(summary_pb2.Summary.Value(tag=tag, simple_value=_scalar(scalar_value)),
                      global_step, walltime)

    def add_scalars(self, main_tag: str, tag_scalar_dict: dict, global_step=None,
                    walltime=None) -> None:
        """Each ``{tag: value}`` under ``main_tag``, in its own run folder, as torch's."""
        for tag, value in tag_scalar_dict.items():
            key = f"{main_tag.replace('/', '_')}_{tag}"
            if key not in self._sub_writers:
                self._sub_writers[key] = SummaryWriter(os.path.join(self.log_dir, key))
            self._sub_writers[key].add_scalar(main_tag, value, global_step, walltime)

    def add_histogram(self, tag: str, values, global_step=None, bins="tensorflow",
                      walltime=None, max_bins=None) -> None:
        a = _array(values).astype(np.float64).reshape(-1)
        if a.size == 0:
            raise ValueError("add_histogram: the values are empty")
        if bins == "tensorflow":
            bins = 30
        counts, edges = np.histogram(a, bins=bins)
        histo = summary_pb2.HistogramProto(
            min=float(a.min()), max=float(a.max()), num=int(a.size), sum=float(a.sum()),
            sum_squares=float((a * a).sum()), bucket_limit=[float(e) for e in edges[1:]],
            bucket=[float(c) for c in counts])
        self._summary(summary_pb2.Summary.Value(tag=tag, histo=histo), global_step, walltime)

    def add_image(self, tag: str, img_tensor, global_step=None, walltime=None,
                  dataformats: str = "CHW") -> None:
        hwc = _to_hwc_uint8(_array(img_tensor), dataformats)
        image = summary_pb2.Summary.Image(height=hwc.shape[0], width=hwc.shape[1],
                                          colorspace=hwc.shape[2], encoded_image_string=_png(hwc))
        self._summary(summary_pb2.Summary.Value(tag=tag, image=image), global_step, walltime)

    def add_images(self, tag: str, img_tensor, global_step=None, walltime=None,
                   dataformats: str = "NCHW") -> None:
        """A batch as one grid image (up to 8 per row), as torch's."""
        batch = _array(img_tensor)
        fmt = dataformats.upper()
        if batch.ndim != 4 or fmt[0] != "N":
            raise ValueError(f"add_images: expected a 4-D batch in {dataformats}, got shape "
                             f"{batch.shape}")
        images = [_to_hwc_uint8(im, fmt[1:]) for im in batch]
        h, w, c = images[0].shape
        cols = min(8, len(images))
        rows = -(-len(images) // cols)
        grid = np.zeros((rows * h, cols * w, c), np.uint8)
        for i, im in enumerate(images):
            r, col = divmod(i, cols)
            grid[r * h:(r + 1) * h, col * w:(col + 1) * w] = im
        self.add_image(tag, grid, global_step, walltime, dataformats="HWC")

    def add_text(self, tag: str, text_string: str, global_step=None, walltime=None) -> None:
        plugin = summary_pb2.SummaryMetadata.PluginData(plugin_name="text")
        meta = summary_pb2.SummaryMetadata(plugin_data=plugin)
        tensor = TensorProto(dtype=7, string_val=[str(text_string).encode("utf-8")],  # DT_STRING
                             tensor_shape=TensorShapeProto(dim=[TensorShapeProto.Dim(size=1)]))
        self._summary(summary_pb2.Summary.Value(tag=tag + "/text_summary", metadata=meta,
                                                tensor=tensor), global_step, walltime)

    def add_graph(self, model, input_to_model=None, verbose=False, use_strict_trace=True):
        raise NotImplementedError("add_graph: fastconv runs eagerly and records no static graph "
                                  "to draw (fastconv.onnx.export writes one for Netron)")

    # ---- lifetime -------------------------------------------------------------------------------
    def flush(self) -> None:
        self._writer.flush()
        for sub in self._sub_writers.values():
            sub.flush()

    def close(self) -> None:
        if self._closed:
            return
        for sub in self._sub_writers.values():
            sub.close()
        self._writer.close()
        self._closed = True

    def __enter__(self) -> SummaryWriter:
        return self

    def __exit__(self, *exc) -> None:
        self.close()
