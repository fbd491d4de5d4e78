"""DistributedDataParallel (torch.nn.parallel.DistributedDataParallel's names and semantics).

    dist.init_process_group("mpi")
    model = DistributedDataParallel(net)         # every rank now holds rank 0's weights
    loss = criterion(model(x_local), y_local)
    loss.backward()                              # .grad is the average over the ranks
    optimizer.step()

How the gradients are averaged (the design of ChainerMN's and Horovod's communicators, with
torch's user-facing names):

* Wrap time: the ranks compare their models' signatures (name, shape, dtype of every
  parameter and buffer, exchanged with an allgather) and refuse to start if they differ; then
  rank 0's parameters and buffers are broadcast, so every replica starts identical.
* Buckets: the trainable parameters, in reverse registration order (roughly the order backward
  produces their gradients), are grouped into flat buckets of at most ``bucket_cap_mb``
  megabytes (one dtype per bucket; a larger parameter is a bucket of its own). One
  MPI_Allreduce per bucket instead of one per parameter.
* Trigger: each parameter carries a gradient hook. A forward through the wrapper (with grad
  enabled and outside ``no_sync``) arms it; the first hook that fires in the following
  backward queues a callback with ``fastconv.autograd.queue_callback``, which the backward
  pass runs after it has accumulated every leaf gradient. The callback packs each bucket's
  gradients, sums them across ranks, divides by the world size and writes them back to
  ``.grad``. A plain ``loss.backward()`` is therefore all a training loop needs.
* ``no_sync()``: forwards inside it do not arm the hooks, so their backwards only accumulate
  locally; the next synchronised backward averages the accumulated gradients (torch's gradient
  accumulation recipe).
* A parameter that got no gradient on a rank contributes zeros; after the reduction every
  trainable parameter has a ``.grad`` (the same on all ranks), so replicas never drift.
* ``broadcast_buffers=True`` (torch's default) copies rank 0's buffers (batch-norm running
  statistics) to every rank at the start of each forward.

Differences from torch: communication does not overlap the backward pass (the buckets are
reduced after it, one after the other); there is no smaller first bucket; only CPU tensors and
the default process group (backend "mpi").
"""

from __future__ import annotations

import contextlib

import numpy as np

import fastconv.distributed as dist
from fastconv import autograd
from fastconv.nn.module import Module


class DistributedDataParallel(Module):
    def __init__(self, module: Module, device_ids=None, output_device=None, dim: int = 0,
                 broadcast_buffers: bool = True, process_group=None, bucket_cap_mb=25,
                 find_unused_parameters: bool = False, **kwargs):
        super().__init__()
        if not dist.is_initialized():
            raise RuntimeError("DistributedDataParallel needs the default process group: call "
                               "fastconv.distributed.init_process_group('mpi') first")
        if process_group is not None:
            raise NotImplementedError("DistributedDataParallel: only the default process group "
                                      "is supported (process_group=None)")
        if bucket_cap_mb is None:
            bucket_cap_mb = 25
        if not bucket_cap_mb > 0:
            raise ValueError(f"bucket_cap_mb must be positive, got {bucket_cap_mb}")
        self.module = module
        self.broadcast_buffers = broadcast_buffers
        self.bucket_cap_mb = bucket_cap_mb
        self.find_unused_parameters = find_unused_parameters  # unused ones contribute zeros
        self.require_backward_grad_sync = True
        self._comm = dist._default_group().comm
        self._world_size = self._comm.Get_size()
        named = list(module.named_parameters()) + list(module.named_buffers())
        for name, t in named:
            if not isinstance(t.data, np.ndarray):
                raise NotImplementedError(
                    f"DistributedDataParallel: {name} is on {t.device}; backend 'mpi' averages "
                    "CPU tensors only (GPU needs backend='nccl', not there yet)")
        self._check_same_model(named)
        self._sync_module_states()
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = self._make_buckets(self._params, int(bucket_cap_mb * 1024 * 1024))
        self._armed = False
        self._hook_handles = [p.register_hook(self._on_grad) for p in self._params]

    # ---- wrap time ------------------------------------------------------------------------
    def _check_same_model(self, named) -> None:
        signature = [(name, tuple(t.shape), str(t.data.dtype)) for name, t in named]
        signatures = self._comm.allgather(signature)
        reference = signatures[0]
        for rank, sig in enumerate(signatures):
            if sig == reference:
                continue
            detail = f"{len(reference)} tensors on rank 0, {len(sig)} on rank {rank}"
            for a, b in zip(reference, sig):
                if a != b:
                    detail = f"rank 0 has {a[0]} {a[2]}{list(a[1])}, rank {rank} has " \
                             f"{b[0]} {b[2]}{list(b[1])}"
                    break
            raise RuntimeError("DistributedDataParallel: the ranks' models differ (every rank "
                               f"must build the same model): {detail}")

    def _sync_module_states(self) -> None:
        """Rank 0's parameters and buffers to every rank (torch's _sync_module_states)."""
        with autograd.no_grad():
            for t in list(self.module.parameters()) + list(self.module.buffers()):
                dist.broadcast(t, src=0)

    @staticmethod
    def _make_buckets(params, cap_bytes: int):
        """Lists of parameters in reverse order, each at most ``cap_bytes`` and of one dtype."""
        buckets, current, size, dtype = [], [], 0, None
        for p in reversed(params):
            nbytes = p.data.nbytes
            if current and (p.data.dtype != dtype or size + nbytes > cap_bytes):
                buckets.append(current)
                current, size = [], 0
            current.append(p)
            size += nbytes
            dtype = p.data.dtype
        if current:
            buckets.append(current)
        return buckets

    # ---- forward and the gradient reduction -------------------------------------------------
    def forward(self, *args, **kwargs):
        if self.broadcast_buffers and self._world_size > 1:
            with autograd.no_grad():
                for b in self.module.buffers():
                    dist.broadcast(b, src=0)
        self._armed = self.require_backward_grad_sync and autograd.is_grad_enabled()
        return self.module(*args, **kwargs)

    def _on_grad(self, grad):
        if self._armed:
            self._armed = False
            autograd.queue_callback(self._reduce_gradients)

    def _reduce_gradients(self) -> None:
        """Average every trainable parameter's .grad across the ranks, one allreduce per
        bucket."""
        from fastconv.tensor import Tensor

        for bucket in self._buckets:
            flat = np.empty(sum(p.data.size for p in bucket), dtype=bucket[0].data.dtype)
            offset = 0
            for p in bucket:
                n = p.data.size
                flat[offset:offset + n] = 0 if p.grad is None else p.grad.data.reshape(-1)
                offset += n
            dist.allreduce_array_(self._comm, flat, dist.ReduceOp.AVG)
            offset = 0
            for p in bucket:
                n = p.data.size
                averaged = flat[offset:offset + n].reshape(p.data.shape)
                if p.grad is None:
                    p.grad = Tensor(averaged.copy())
                else:
                    p.grad.data[...] = averaged
                offset += n

    @contextlib.contextmanager
    def no_sync(self):
        """Forwards (and their backwards) inside skip the gradient averaging; gradients
        accumulate locally until the first synchronised backward after it."""
        previous = self.require_backward_grad_sync
        self.require_backward_grad_sync = False
        try:
            yield
        finally:
            self.require_backward_grad_sync = previous
