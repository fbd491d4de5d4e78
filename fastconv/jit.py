"""``torch.jit``: fastconv runs eagerly and compiles nothing, so ``script`` and ``trace`` return
what they are given (as ``fastconv.compile`` does) and the decorators change nothing. Saving a
TorchScript file has no counterpart: ``save`` / ``load`` say what to use instead
(``fastconv.onnx.export`` for a portable model, ``fastconv.save`` for weights).
"""

from __future__ import annotations

__all__ = ["export", "ignore", "is_scripting", "is_tracing", "load", "save", "script", "trace",
           "unused"]


def script(obj, *args, **kwargs):
    return obj


def trace(func, example_inputs=None, *args, **kwargs):
    return func


def ignore(fn=None, **kwargs):
    return fn if fn is not None else (lambda f: f)


def unused(fn):
    return fn


def export(fn):
    return fn


def is_scripting() -> bool:
    return False


def is_tracing() -> bool:
    return False


def save(m, f, **kwargs):
    raise NotImplementedError("fastconv.jit.save: there is no TorchScript in fastconv; use "
                              "fastconv.onnx.export(model, example, path) for a portable model "
                              "or fastconv.save(model.state_dict(), path) for its weights")


def load(f, **kwargs):
    raise NotImplementedError("fastconv.jit.load: there is no TorchScript in fastconv; load "
                              "ONNX files with fastconv.onnx.load and weights with fastconv.load")
