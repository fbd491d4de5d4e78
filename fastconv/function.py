"""Function: one differentiable op, its forward and its backward side by side.

``MyOp.apply(*args)`` runs ``forward`` on the raw arrays of the Tensor
arguments, wraps the result in a Tensor and, when a gradient is wanted,
records the call as a node of the graph. ``backward(dy)`` returns one gradient
per positional argument (None for non-Tensors and inputs that need none).

Every Function finds its backend (NumPy + fastconv._C, or CuPy) from the device
of its inputs, once, in ``apply``: ``self.xp`` is the array module and
``self.kernels`` the backend's kernel module, so an op is written once for both
devices.
"""

from __future__ import annotations

from fastconv import amp, autograd
from fastconv.backend import get_backend

#: The recorder of the profiler that is recording (fastconv.profiler), or None. ``apply`` runs
#: each forward through it, and the autograd engine each backward, only when it is set: an
#: idle profiler costs one global read per op.
profile_hook = None


class Function:
    """Base class of every op. Subclasses define ``forward`` and ``backward``."""

    # Set by apply(); listed here so every op reads them the same way.
    kernels = None        # backend module (fastconv.backend.cpu / .cuda)
    xp = None             # numpy or cupy
    needs_input_grad: tuple = ()
    parents: tuple = ()   # the Tensor arguments (in order), while the graph is alive
    # the node that made each argument when this op ran (None for a leaf or a non-Tensor): an
    # in-place op on an argument later gives that tensor a new node, and this op's gradient
    # belongs to the value it read
    parent_nodes: tuple = ()
    released = False      # set after backward frees the saved arrays
    saved = None          # arrays kept by save_for_backward
    hooks = None          # gradient hooks registered on the output tensor
    versions: tuple = ()  # the inputs' in-place versions when the op ran
    # The ops of torch's autocast lower-precision list (conv2d, linear, matmul) set
    # autocast_lowp; apply() then sets lowp when this call runs in bfloat16 (fastconv.amp).
    autocast_lowp = False
    lowp = False
    op_name = None        # the name in profiler traces, where the class's name is not it
    # How backward_graph differentiates this op's backward (fastconv.double_backward):
    # "linear", "fixed_mask", or None for an op that defines backward_graph itself or has none.
    double_backward = None
    call_kwargs: dict = {}  # the keyword arguments of the forward call, while recorded

    def profile_name(self) -> str:
        """This op's name in profiler traces (fastconv.profiler), lower case as torch's
        ``aten::`` names: ``matmul``, ``conv2d``, ``tan``."""
        return self.op_name or type(self).__name__.lower()

    def profile_backward_name(self) -> str:
        """This op's backward in profiler traces, named as torch's nodes: ``MatMulBackward0``,
        ``TanBackward0``."""
        name = type(self).__name__ if self.op_name is None else \
            self.op_name[:1].upper() + self.op_name[1:]
        return name + "Backward0"

    def forward(self, *args, **kwargs):
        raise NotImplementedError

    def backward(self, dy):
        raise NotImplementedError

    def backward_graph(self, dy):
        """The input gradients as Tensors built from differentiable ops (``dy`` is a Tensor),
        for ``create_graph=True``; see :mod:`fastconv.double_backward`."""
        from fastconv.double_backward import backward_graph

        return backward_graph(self, dy)

    def save_for_backward(self, *arrays):
        self.saved = arrays

    def bf16(self, a):
        """A C-contiguous float32 copy of the array ``a``, rounded to bfloat16."""
        a = self.xp.array(a, dtype=self.xp.float32, order="C", copy=True)
        self.kernels.round_bf16_(a)
        return a

    # Below this depth (a first layer's 3 x 3 x 3 taps) the bfloat16 GEMM's forward product,
    # padded to whole tiles, is slower than the float32 kernels on rounded copies
    # (BENCHMARKS.md); a convolution takes it at any depth with 32 output channels or more,
    # and for its backward products (Conv2d).
    MIN_BF16_GEMM_DEPTH = 64

    def use_bf16_gemm(self, depth=None) -> bool:
        """Whether this call's products run on the backend's bfloat16 GEMM: in an autocast
        region, on a backend that has one in use (the CPU's ``bf16_kernels()``, where the
        CPU has bfloat16 instructions), for products of at least MIN_BF16_GEMM_DEPTH terms
        (``depth``, when the caller knows it). The GEMM rounds its operands to bfloat16 as
        it reads them, so the inputs need no rounded copies; either way the result is the
        same up to summation order."""
        probe = getattr(self.kernels, "bf16_kernels", None)
        deep = depth is None or depth >= self.MIN_BF16_GEMM_DEPTH
        return bool(self.lowp) and deep and probe is not None and probe() != "none"

    @classmethod
    def apply(cls, *args, **kwargs):
        from fastconv.tensor import Tensor

        tensors = [a for a in args if isinstance(a, Tensor)]
        device = tensors[0].device
        for t in tensors[1:]:
            if t.device != device:
                raise RuntimeError(
                    f"{cls.__name__}: all tensors must be on one device, got {device!r} "
                    f"and {t.device!r}; move them with .to(device) first"
                )
        fn = cls()
        fn.kernels = get_backend(device)
        fn.xp = fn.kernels.xp
        fn.needs_input_grad = tuple(isinstance(a, Tensor) and a.requires_grad for a in args)
        # autocast casts floating-point inputs only (an integer matmul stays integer)
        fn.lowp = cls.autocast_lowp and amp.lowp(device) and all(
            t.data.dtype.kind == "f" for t in tensors)
        raw = [a.data if isinstance(a, Tensor) else a for a in args]
        if profile_hook is None:
            out = fn.forward(*raw, **kwargs)
        else:
            out = profile_hook.run_forward(fn, raw, kwargs)
        track = autograd.is_grad_enabled() and any(fn.needs_input_grad)
        if not track:
            return Tensor(out)
        fn.parents = tuple(args)
        fn.parent_nodes = tuple(a._ctx if isinstance(a, Tensor) else None for a in args)
        fn.call_kwargs = kwargs
        fn.versions = tuple(a._version if isinstance(a, Tensor) else None for a in args)
        if autograd.is_anomaly_enabled():
            fn.forward_site = autograd.forward_site()
        return Tensor(out, requires_grad=True, _ctx=fn)
