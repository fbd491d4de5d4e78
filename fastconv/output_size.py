"""Output sizes of sliding windows (convolution and pooling), PyTorch's rules.

The ops use these to check arguments and the backends to size their outputs, so an
op and its kernels can never disagree about a shape by one pixel.
"""

from __future__ import annotations


def conv_output_size(size: int, kernel: int, stride: int, padding: int, dilation: int) -> int:
    """Output length of a convolution: floor((size + 2p - d(k-1) - 1) / s) + 1."""
    return (size + 2 * padding - dilation * (kernel - 1) - 1) // stride + 1


def conv_transpose_output_size(size: int, kernel: int, stride: int, padding: int,
                               dilation: int, output_padding: int) -> int:
    """Output length of a transposed convolution: (size - 1) s - 2p + d(k-1) + op + 1."""
    return (size - 1) * stride - 2 * padding + dilation * (kernel - 1) + output_padding + 1


def pool_output_size(size: int, kernel: int, stride: int, padding: int, ceil_mode: bool,
                     dilation: int = 1) -> int:
    """Output length of a pooling window sliding over ``size`` (PyTorch's rule).

    floor((size + 2p - d(k-1) - 1) / s) + 1, or ceil with ``ceil_mode``; in
    ceil mode the last window must still start inside the input or left padding.
    """
    span = size + 2 * padding - dilation * (kernel - 1) - 1
    if ceil_mode:
        out = -(-span // stride) + 1
        if (out - 1) * stride >= size + padding:
            out -= 1
    else:
        out = span // stride + 1
    return out
