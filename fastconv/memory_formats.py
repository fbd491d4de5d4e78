"""torch's memory formats (``torch.channels_last``, ...): accepted layout hints.

fastconv keeps every tensor in its logical order (NCHW, C-contiguous) and its kernels are
written for it, so ``x.to(memory_format=fastconv.channels_last)``,
``model.to(memory_format=...)`` and ``x.contiguous(memory_format=...)`` return the values
unchanged, in that order; ``x.is_contiguous(memory_format=fastconv.channels_last)`` is
therefore False for a 4-D tensor with several channels and pixels.
"""

from __future__ import annotations

__all__ = ["channels_last", "channels_last_3d", "contiguous_format", "memory_format",
           "preserve_format"]


class memory_format:  # noqa: N801 - torch's class name
    def __init__(self, name: str):
        self.name = name

    def __repr__(self) -> str:
        return f"fastconv.{self.name}"


contiguous_format = memory_format("contiguous_format")
channels_last = memory_format("channels_last")
channels_last_3d = memory_format("channels_last_3d")
preserve_format = memory_format("preserve_format")


def check(value, where: str) -> memory_format:
    if not isinstance(value, memory_format):
        raise TypeError(f"{where}: memory_format must be a fastconv memory format "
                        f"(fastconv.channels_last, ...), got {value!r}")
    return value
