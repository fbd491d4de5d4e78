"""The model registry: every network of the zoo under one name.

A builder registers itself with :func:`register_model`, giving the input shape
it was designed for and the number of classes of its dataset::

    @register_model("nin_cifar", input_shape=(3, 32, 32), num_classes=10,
                    description="Network in Network for CIFAR-10 (Lin et al. 2013)")
    def nin_cifar(num_classes=10, **options):
        ...

and users build it by name::

    model = models.get_model("nin_cifar")                 # the dataset's class count
    model = models.get_model("googlenet", num_classes=200, aux_logits=False)
    models.list_models()                                  # ['alexnet', 'alexnet_cifar', ...]
    models.get_model_spec("googlenet").input_shape        # (3, 224, 224)
"""

from __future__ import annotations

import difflib
import inspect
import typing
from collections.abc import Callable
from dataclasses import dataclass

__all__ = ["ModelSpec", "get_model", "get_model_spec", "list_models", "model_options",
           "register_model"]


@dataclass(frozen=True)
class ModelSpec:
    """What the registry knows about a model.

    Attributes:
        name: the registry name.
        builder: ``builder(num_classes=..., **options) -> nn.Module``.
        input_shape: ``(C, H, W)`` of one input image at the model's native size.
        num_classes: the class count of the dataset the model was designed for,
            used when :func:`get_model` is called without ``num_classes``.
        description: one line: what the model is and where it comes from.
    """

    name: str
    builder: Callable
    input_shape: tuple[int, int, int]
    num_classes: int
    description: str


_REGISTRY: dict[str, ModelSpec] = {}


def register_model(name: str, input_shape: tuple[int, int, int], num_classes: int,
                   description: str | None = None) -> Callable:
    """Decorator: register ``builder`` under ``name``.

    Args:
        name: the registry name (unique; registering a name twice raises ValueError).
        input_shape: ``(C, H, W)`` the model was designed for.
        num_classes: default class count (1000 for ImageNet models, 10 for CIFAR-10).
        description: one line; defaults to the first line of the builder's docstring.

    Returns the builder unchanged.
    """
    if len(input_shape) != 3:
        raise ValueError(f"input_shape must be (C, H, W), got {input_shape!r}")

    def decorator(builder: Callable) -> Callable:
        if name in _REGISTRY:
            raise ValueError(f"model {name!r} is already registered")
        doc = description
        if doc is None:
            doc = (builder.__doc__ or "").strip().splitlines()[0] if builder.__doc__ else ""
        _REGISTRY[name] = ModelSpec(name, builder, tuple(int(s) for s in input_shape),
                                    int(num_classes), doc)
        return builder

    return decorator


def get_model_spec(name: str) -> ModelSpec:
    """The :class:`ModelSpec` registered under ``name`` (KeyError with suggestions if unknown)."""
    try:
        return _REGISTRY[name]
    except KeyError:
        close = difflib.get_close_matches(name, _REGISTRY, n=3)
        hint = f"; did you mean {', '.join(close)}?" if close else ""
        raise KeyError(f"unknown model {name!r}{hint} "
                       f"(available: {', '.join(list_models())})") from None


def get_model(name: str, num_classes: int | None = None, weights=None,
              allow_pickle: bool = False, **options):
    """Build the model registered under ``name``.

    Args:
        name: a name from :func:`list_models`.
        num_classes: size of the classifier output; ``None`` keeps the model's
            default (its dataset's class count, see :class:`ModelSpec`).
        **options: passed to the builder (for example ``aux_logits=False`` for
            ``googlenet`` and ``inception_v3``, ``input_size=64`` for
            ``inception_small``, ``dropout=...``); the builders' docstrings list them.
        weights: a weights file to load (.safetensors, .npz, or with ``allow_pickle`` a
            PyTorch .pt/.pth): torchvision's state dicts for ``alexnet_owt``, ``googlenet``
            and ``inception_v3``, or fastconv's own; see :mod:`models.weights`. The model is
            then returned in eval mode, with ``num_classes`` from the file by default.
        allow_pickle: allow unpickling a PyTorch file (it can run code; warns).

    Returns:
        A freshly initialised ``fastconv.nn.Module`` in training mode.
    """
    if weights is not None:
        from .weights import load_weights

        return load_weights(name, weights, num_classes, allow_pickle=allow_pickle, **options)
    spec = get_model_spec(name)
    if num_classes is None:
        num_classes = spec.num_classes
    if int(num_classes) < 1:
        raise ValueError(f"num_classes must be positive, got {num_classes}")
    return spec.builder(num_classes=int(num_classes), **options)


def model_options(name: str) -> dict:
    """The options the builder of ``name`` takes (besides ``num_classes``), with defaults:
    its own keyword arguments and, where it passes ``**options`` on, those of the model
    class it returns (its return annotation). None when the builder passes ``**options`` on
    to something it does not name: then no list is known."""
    builder = get_model_spec(name).builder
    out = {}

    def collect(fn, skip=("self", "num_classes")):
        forwards = False
        for p in inspect.signature(fn).parameters.values():
            if p.kind is p.VAR_KEYWORD:
                forwards = True
            elif p.kind is not p.VAR_POSITIONAL and p.name not in skip:
                out.setdefault(p.name, None if p.default is p.empty else p.default)
        return forwards

    if collect(builder):
        cls = typing.get_type_hints(builder).get("return")
        if not isinstance(cls, type) or collect(cls.__init__):
            return None
    return out


def list_models() -> list[str]:
    """The registered names, sorted."""
    return sorted(_REGISTRY)
