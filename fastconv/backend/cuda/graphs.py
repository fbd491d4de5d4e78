"""CUDA graphs: a whole training step captured once and replayed with one launch."""

from __future__ import annotations

import cupy

from .launch import device_pointer


def is_capturing() -> bool:
    """True while the current stream is being captured into a CUDA graph.

    The ops layer must skip anything that synchronises with the host (``.item()``, range
    checks of class indices read back from the device, printing) while this is true.
    """
    try:
        return bool(cupy.cuda.get_current_stream().is_capturing())
    except Exception:
        return False


class CapturedStep:
    """A training step captured once as a CUDA graph and replayed with a single launch.

    ``step_fn`` is a callable without arguments that runs forward, backward and the optimizer
    step on *static* buffers: it reads its batch from arrays that stay the same objects (copy
    each new batch into them, ``x_static[...] = batch``), and the optimizer updates the
    parameters and its state in place (``p[...] -= ...``, as fastconv.optim does), never by
    rebinding ``param.data`` to a new array. Construction:

    1. runs ``step_fn`` eagerly ``warmup`` times on a side stream (these are real training
       steps: kernels get compiled, gradient and momentum buffers get allocated);
    2. captures one more call into a graph *without executing it* (stream capture records
       the kernels and cuBLAS calls; host-side code in ``step_fn`` does run once);
    3. instantiates the graph.

    Every :meth:`replay` then performs exactly one more training step and returns what the
    captured call returned (for example the device loss array, refreshed in place).
    Memory allocated during capture comes from a private memory pool owned by this object, so
    no other array can be handed the addresses the graph writes to.

    Rules for ``step_fn`` (standard for stream capture): no host synchronisation (``.item()``,
    ``float(loss)``, ``cupy.asnumpy``, printing device values), no host-to-device copies of
    new data inside the step, the same shapes every time. Host-side values (a Python step
    counter, a learning rate) are recorded as they were during capture; one that must change
    per step has to live in a device array that the step reads. Gradients are accumulated by the
    backward pass: zero them inside ``step_fn`` in place (``g.fill(0)``) or let the first
    backward write them (``zero_grad`` to None before capture is fine: the captured backward
    allocates them from the private pool).

    ``params``: optional iterable of the parameters (objects with a ``.data`` array, such as
    fastconv Parameters); if given, the constructor checks that the captured call did not
    rebind any ``.data`` to a new array (replays would then keep updating a stale copy).
    """

    def __init__(self, step_fn, warmup: int = 2, params=None):
        if warmup < 1:
            raise ValueError("CapturedStep: warmup must be >= 1 (kernels must be compiled and "
                             "buffers allocated before capture)")
        self._fn = step_fn
        self._stream = cupy.cuda.Stream(non_blocking=True)
        self._pool = cupy.cuda.MemoryPool()
        self._ev_in = cupy.cuda.Event(disable_timing=True)
        self._ev_out = cupy.cuda.Event(disable_timing=True)
        self.graph = None
        self.output = None
        params = [p for p in params if not isinstance(p, cupy.ndarray)] if params else []
        outer = cupy.cuda.get_current_stream()
        self._ev_in.record(outer)
        self._stream.wait_event(self._ev_in)
        with cupy.cuda.using_allocator(self._pool.malloc):
            with self._stream:
                for _ in range(int(warmup)):
                    step_fn()
                self._stream.synchronize()
                before = [device_pointer(p.data) for p in params]
                self._stream.begin_capture()
                try:
                    self.output = step_fn()
                except BaseException:
                    try:
                        self._stream.end_capture()
                    except Exception:
                        pass
                    raise
                self.graph = self._stream.end_capture()
        self._ev_out.record(self._stream)
        outer.wait_event(self._ev_out)
        after = [device_pointer(p.data) for p in params]
        if before != after:
            raise RuntimeError("CapturedStep: the step rebound parameter arrays during capture; "
                               "update parameters in place so that replays see the new values")

    def replay(self):
        """Run the captured step once more (ordered after the caller's stream; returns output)."""
        outer = cupy.cuda.get_current_stream()
        self._ev_in.record(outer)
        self._stream.wait_event(self._ev_in)
        self.graph.launch(self._stream)
        self._ev_out.record(self._stream)
        outer.wait_event(self._ev_out)
        return self.output

    __call__ = replay


def capture(step_fn, warmup: int = 2, params=None) -> CapturedStep:
    """Capture ``step_fn`` as a CUDA graph: shorthand for :class:`CapturedStep`."""
    return CapturedStep(step_fn, warmup=warmup, params=params)
