"""Tensor: an array (NumPy on the CPU, CuPy on the GPU) plus what autograd needs."""

from __future__ import annotations

from collections import namedtuple

import numpy as np

from fastconv import autograd
from fastconv.backend import device_of, get_backend
from fastconv.ops import arith

_FLOAT_CONVERTED = (np.float64, np.float16)
MaxResult = namedtuple("MaxResult", ["values", "indices"])


def _as_array(data, device: str):
    """An array of ``data`` on ``device``; float64/float16 become float32 (fastconv computes in float32)."""
    xp = get_backend(device).xp
    if isinstance(data, Tensor):
        data = data.data
    if not (isinstance(data, np.ndarray) or type(data).__module__.startswith("cupy")):
        data = np.asarray(data)
        if data.dtype == np.float64:
            data = data.astype(np.float32)
    if data.dtype.kind == "O" or data.dtype.kind in "USV":
        raise TypeError(f"cannot make a tensor from an array of dtype {data.dtype}")
    if data.dtype.type in _FLOAT_CONVERTED:
        data = data.astype(np.float32)
    if device_of(data) != device:
        data = xp.asarray(data) if device == "cuda" else data.get()
    return data


class Tensor:
    """An n-dimensional float32 (or integer) array that records ops for autograd.

    ``data`` is the underlying NumPy/CuPy array. Tensors created by ops on
    inputs that require a gradient point to the Function that made them
    (``_ctx``); ``backward()`` fills ``.grad`` of the leaves.
    """

    __array_priority__ = 1000  # ndarray (op) Tensor defers to Tensor's reflected operators

    def __init__(self, data, requires_grad: bool = False, _ctx=None):
        if isinstance(data, Tensor):
            data = data.data
        if not hasattr(data, "dtype") or not hasattr(data, "shape"):
            data = np.asarray(data)
        if data.dtype.type in _FLOAT_CONVERTED:
            data = data.astype(np.float32)
        self.data = data
        self.grad: Tensor | None = None
        self._ctx = _ctx
        self.requires_grad = False
        if requires_grad:
            self.requires_grad_(True)

    # ---- properties -------------------------------------------------------------------------
    @property
    def shape(self) -> tuple:
        return tuple(self.data.shape)

    @property
    def dtype(self):
        return self.data.dtype

    @property
    def device(self) -> str:
        return device_of(self.data)

    @property
    def ndim(self) -> int:
        return self.data.ndim

    @property
    def is_leaf(self) -> bool:
        return self._ctx is None

    @property
    def T(self) -> Tensor:
        return self.permute(*reversed(range(self.ndim)))

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def numel(self) -> int:
        return int(self.data.size)

    def dim(self) -> int:
        return self.data.ndim

    def __len__(self) -> int:
        return self.shape[0]

    def requires_grad_(self, requires_grad: bool = True) -> Tensor:
        if requires_grad and self.data.dtype.kind != "f":
            raise TypeError(f"only floating-point tensors can require a gradient, got {self.dtype}")
        self.requires_grad = bool(requires_grad)
        return self

    # ---- conversion -------------------------------------------------------------------------
    def numpy(self) -> np.ndarray:
        """The data as a NumPy array (copied from the GPU when needed; shared on the CPU)."""
        if self.requires_grad:
            raise RuntimeError("numpy() on a tensor that requires grad: call .detach().numpy()")
        return self.data if self.device == "cpu" else self.data.get()

    def item(self):
        if self.data.size != 1:
            raise ValueError(f"item() needs a tensor with one element, got shape {self.shape}")
        return self.data.reshape(()).item()

    def tolist(self):
        return np.asarray(self.detach().numpy()).tolist()

    def detach(self) -> Tensor:
        """A tensor sharing the data, cut from the graph."""
        return Tensor(self.data)

    def to(self, device: str) -> Tensor:
        """A copy on ``device`` ("cpu" or "cuda"), or ``self`` when it is already there.

        The copy is a new leaf (gradients do not flow across devices).
        """
        if device == self.device:
            return self
        return Tensor(_as_array(self.data, device), requires_grad=self.requires_grad)

    def cpu(self) -> Tensor:
        return self.to("cpu")

    def cuda(self) -> Tensor:
        return self.to("cuda")

    def float(self) -> Tensor:
        return self if self.dtype == np.float32 else Tensor(self.data.astype(np.float32))

    def long(self) -> Tensor:
        return Tensor(self.data.astype(np.int64))

    def __array__(self, dtype=None, copy=None):
        a = self.data if self.device == "cpu" else self.data.get()
        return a if dtype is None else a.astype(dtype)

    # ---- autograd ---------------------------------------------------------------------------
    def backward(self, grad=None, retain_graph: bool = False) -> None:
        """Accumulate d(self)/d(leaf) into every leaf's ``.grad``.

        ``grad`` defaults to 1 for a one-element tensor; other shapes need it given.
        """
        if not self.requires_grad:
            raise RuntimeError("backward() on a tensor that does not require grad (no graph to walk)")
        if grad is None:
            if self.data.size != 1:
                raise RuntimeError(
                    f"backward() without a gradient needs a one-element tensor, got shape {self.shape}"
                )
            grad = self.data.dtype.type(1) * get_backend(self.device).xp.ones_like(self.data)
        else:
            grad = _as_array(grad, self.device)
            if grad.shape != self.data.shape:
                raise ValueError(f"backward(): gradient shape {grad.shape} != tensor shape {self.shape}")
        autograd.backward(self, grad, retain_graph=retain_graph)

    # ---- arithmetic -------------------------------------------------------------------------
    def _lift(self, other):
        """Tensors pass through; scalars stay Python numbers; arrays become constant tensors."""
        if isinstance(other, Tensor):
            return other
        if isinstance(other, (int, float)):
            return float(other)
        return Tensor(_as_array(other, self.device))

    def __add__(self, other):
        return arith.Add.apply(self, self._lift(other))

    def __radd__(self, other):
        return arith.Add.apply(self._lift(other), self) if isinstance(other, Tensor) else self + other

    def __sub__(self, other):
        return arith.Sub.apply(self, self._lift(other))

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        return arith.Mul.apply(self, self._lift(other))

    def __rmul__(self, other):
        return self * other

    def __truediv__(self, other):
        return arith.Div.apply(self, self._lift(other))

    def __rtruediv__(self, other):
        return self ** -1.0 * other

    def __neg__(self):
        return arith.Neg.apply(self)

    def __pow__(self, p):
        if not isinstance(p, (int, float)):
            raise TypeError(f"only a constant exponent is supported, got {type(p).__name__}")
        return arith.Pow.apply(self, float(p))

    def __matmul__(self, other):
        return arith.MatMul.apply(self, self._lift(other))

    def __rmatmul__(self, other):
        return arith.MatMul.apply(self._lift(other), self)

    # Comparisons give constant (non-differentiable) tensors.
    def _compare(self, other, op):
        other = other.data if isinstance(other, Tensor) else other
        return Tensor(op(self.data, other))

    def __eq__(self, other):  # noqa: D105 (elementwise, like torch)
        return self._compare(other, lambda a, b: a == b)

    def __ne__(self, other):
        return self._compare(other, lambda a, b: a != b)

    def __lt__(self, other):
        return self._compare(other, lambda a, b: a < b)

    def __le__(self, other):
        return self._compare(other, lambda a, b: a <= b)

    def __gt__(self, other):
        return self._compare(other, lambda a, b: a > b)

    def __ge__(self, other):
        return self._compare(other, lambda a, b: a >= b)

    __hash__ = object.__hash__

    def exp(self):
        return arith.Exp.apply(self)

    def log(self):
        return arith.Log.apply(self)

    def sqrt(self):
        return self ** 0.5

    def relu(self):
        from fastconv import functional

        return functional.relu(self)

    # ---- reductions -------------------------------------------------------------------------
    def sum(self, dim=None, keepdim: bool = False):
        return arith.Sum.apply(self, dim=dim, keepdim=keepdim)

    def mean(self, dim=None, keepdim: bool = False):
        return arith.Mean.apply(self, dim=dim, keepdim=keepdim)

    def max(self, dim=None, keepdim: bool = False):
        """The largest element, or (values, indices) along ``dim`` as in PyTorch."""
        if dim is None:
            return arith.Max.apply(self.reshape(-1), dim=0)
        values = arith.Max.apply(self, dim=dim, keepdim=keepdim)
        return MaxResult(values, self.argmax(dim=dim, keepdim=keepdim))

    def argmax(self, dim=None, keepdim: bool = False) -> Tensor:
        if dim is None:
            return Tensor(self.data.argmax())
        idx = self.data.argmax(axis=dim)
        return Tensor(get_backend(self.device).xp.expand_dims(idx, dim) if keepdim else idx)

    # ---- shape ------------------------------------------------------------------------------
    def reshape(self, *shape):
        if len(shape) == 1 and isinstance(shape[0], (tuple, list)):
            shape = tuple(shape[0])
        return arith.Reshape.apply(self, tuple(int(s) for s in shape))

    view = reshape

    def flatten(self, start_dim: int = 0, end_dim: int = -1):
        nd = max(self.ndim, 1)
        start, end = start_dim % nd, end_dim % nd
        shape = self.shape[:start] + (-1,) + self.shape[end + 1:]
        return self.reshape(shape)

    def permute(self, *dims):
        if len(dims) == 1 and isinstance(dims[0], (tuple, list)):
            dims = tuple(dims[0])
        if sorted(d % self.ndim for d in dims) != list(range(self.ndim)):
            raise ValueError(f"permute: {dims} is not a permutation of {self.ndim} dimensions")
        return arith.Permute.apply(self, tuple(d % self.ndim for d in dims))

    def transpose(self, dim0: int, dim1: int):
        dims = list(range(self.ndim))
        dims[dim0], dims[dim1] = dims[dim1], dims[dim0]
        return self.permute(*dims)

    def __getitem__(self, index):
        if isinstance(index, Tensor):
            index = index.data
        elif isinstance(index, tuple):
            index = tuple(i.data if isinstance(i, Tensor) else i for i in index)
        return arith.GetItem.apply(self, index)

    # ---- display ----------------------------------------------------------------------------
    def __repr__(self) -> str:
        body = np.array2string(np.asarray(self.__array__()), precision=4, separator=", ",
                               prefix="tensor(")
        extras = []
        if self.device != "cpu":
            extras.append(f"device='{self.device}'")
        if self.dtype != np.float32:
            extras.append(f"dtype={self.dtype}")
        if self._ctx is not None:
            extras.append(f"grad_fn=<{type(self._ctx).__name__}>")
        elif self.requires_grad:
            extras.append("requires_grad=True")
        return "tensor(" + body + "".join(", " + e for e in extras) + ")"


def tensor(data, requires_grad: bool = False, device: str = "cpu", dtype=None) -> Tensor:
    """A new leaf Tensor holding a copy of ``data`` on ``device``.

    Floating-point data is stored as float32 (float64 input is converted, since
    every fastconv kernel computes in float32); integer data keeps its integer
    type (class targets). ``dtype`` forces a type.
    """
    array = _as_array(data, "cpu" if device == "cuda" else device)
    if dtype is not None:
        array = array.astype(dtype)
    array = np.array(array, copy=True) if device == "cpu" else _as_array(array, device)
    return Tensor(array, requires_grad=requires_grad)
