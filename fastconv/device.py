"""``fastconv.device``: where a tensor lives, spelled as in PyTorch.

A device is a ``str`` subclass whose value is the backend name ("cpu" or "cuda"), so the
code that compares ``t.device == "cuda"`` or looks a backend up by it keeps working, while
``.type`` and ``.index`` read as PyTorch's. fastconv drives one GPU, the current CuPy device:
"cuda" and "cuda:0" name it; another index is refused with the way to select that GPU.
"""

from __future__ import annotations


class device(str):
    """``device("cpu")``, ``device("cuda")``, ``device("cuda:0")``, ``device("cuda", 0)``."""

    def __new__(cls, type, index=None):
        if isinstance(type, device):
            if index is None:
                return type
            type = type.type
        if not isinstance(type, str):
            raise TypeError(f"device: expected a string like 'cpu' or 'cuda:0', got {type!r}")
        name = type.strip()
        if ":" in name:
            if index is not None:
                raise ValueError(f"device: type {type!r} already has an index; got index={index}")
            name, _, idx = name.partition(":")
            if not idx.isdigit():
                raise RuntimeError(f"Invalid device string: '{type}'")
            index = int(idx)
        if name not in ("cpu", "cuda"):
            raise RuntimeError(
                f"Expected one of cpu, cuda device type at start of device string: {type}")
        if index is not None:
            index = int(index)
            if name == "cpu" and index != 0:
                raise RuntimeError(f"device: the cpu has no index {index}")
            if name == "cuda" and index != 0:
                raise ValueError(
                    f"device: fastconv uses one GPU (the current CuPy device, 'cuda:0'), got "
                    f"'cuda:{index}'; select that GPU with CUDA_VISIBLE_DEVICES={index} or "
                    f"cupy.cuda.Device({index}).use() before creating tensors")
        obj = super().__new__(cls, name)
        obj._index = index if name == "cuda" else None
        return obj

    @property
    def type(self) -> str:
        return str.__str__(self)

    @property
    def index(self):
        return self._index

    def __repr__(self) -> str:
        if self._index is None:
            return f"device(type='{self.type}')"
        return f"device(type='{self.type}', index={self._index})"

    def __str__(self) -> str:
        return self.type if self._index is None else f"{self.type}:{self._index}"

    def __format__(self, spec) -> str:
        return format(str(self), spec)

    def __eq__(self, other):
        if isinstance(other, str):
            try:
                other = device(other)
            except (RuntimeError, ValueError):
                return False
            return self.type == other.type
        return NotImplemented

    def __ne__(self, other):
        eq = self.__eq__(other)
        return eq if eq is NotImplemented else not eq

    __hash__ = str.__hash__

    def __reduce__(self):
        return (device, (self.type, self._index))


CPU = device("cpu")
CUDA = device("cuda", 0)


def as_device(d) -> device:
    """A device from a device, a string like "cuda:0", or an int (a CUDA index)."""
    if isinstance(d, device):
        return d
    if isinstance(d, int) and not isinstance(d, bool):
        return device("cuda", d)
    return device(d)


def of(name: str) -> device:
    """The shared device object for a backend name ("cpu" or "cuda")."""
    return CPU if name == "cpu" else CUDA
