"""ONNX interchange: write fastconv models as ONNX graphs and read ONNX graphs back.

    import fastconv.onnx
    fastconv.onnx.export(model, x, "model.onnx")          # traced in eval mode, checked
    net = fastconv.onnx.load("model.onnx")                # an nn.Module running fastconv ops

Export traces one forward pass (see :mod:`fastconv.onnx.export`); import builds a module
from the graph's nodes (see :mod:`fastconv.onnx.load`). Both need the ``onnx`` package;
the tests prove exported files in onnxruntime.
"""

from fastconv.onnx.export import MIN_OPSET, ExportError, export, to_model_proto
from fastconv.onnx.load import (
    IMPORTERS,
    OnnxGraphModule,
    OnnxImportError,
    UnsupportedOpError,
    from_model_proto,
    load,
)

__all__ = [
    "IMPORTERS",
    "MIN_OPSET",
    "ExportError",
    "OnnxGraphModule",
    "OnnxImportError",
    "UnsupportedOpError",
    "export",
    "from_model_proto",
    "load",
    "to_model_proto",
]
