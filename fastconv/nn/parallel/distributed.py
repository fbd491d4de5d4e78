"""DistributedDataParallel (torch.nn.parallel.DistributedDataParallel's names and semantics).

    dist.init_process_group("mpi")               # or "nccl", with the model on "cuda"
    model = DistributedDataParallel(net)         # every rank now holds rank 0's weights
    loss = criterion(model(x_local), y_local)
    loss.backward()                              # .grad is the average over the ranks
    optimizer.step()

How the gradients are averaged (the design of torch's reducer and Horovod's fusion buffers):

* Wrap time: the ranks compare their models' signatures (name, shape, dtype of every
  parameter and buffer, exchanged with an allgather) and refuse to start if they differ; then
  rank 0's parameters and buffers are broadcast, so every replica starts identical.
* Buckets: the trainable parameters, in reverse registration order (roughly the order backward
  produces their gradients), are grouped into flat buckets of at most ``bucket_cap_mb``
  megabytes (one dtype per bucket; a larger parameter is a bucket of its own). One
  all-reduce per bucket instead of one per parameter.
* Overlap: each parameter carries a post-accumulate-grad hook, which the backward pass runs
  once that parameter's gradient is complete. When the last gradient of a bucket is in, the
  bucket is packed and its all-reduce started without waiting (MPI_Iallreduce; NCCL on a
  stream of its own), while backward goes on computing the earlier layers' gradients.
  Buckets start in index order on every rank (a ready bucket waits for the ones before it),
  because the ranks must issue their collectives in the same order. The first hook queues a
  callback (``fastconv.autograd.queue_callback``) that runs when backward has finished: it
  starts any bucket left (parameters that got no gradient contribute zeros), waits for each
  all-reduce, divides by the world size and writes the averages back to ``.grad``. A plain
  ``loss.backward()`` is therefore all a training loop needs.
* ``no_sync()``: forwards inside it do not arm the hooks, so their backwards only accumulate
  locally; the next synchronised backward averages the accumulated gradients (torch's gradient
  accumulation recipe).
* After the reduction every trainable parameter has a ``.grad`` (the same on all ranks), so
  replicas never drift.
* ``broadcast_buffers=True`` (torch's default) copies rank 0's buffers (batch-norm running
  statistics) to every rank at the start of each forward.

Differences from torch: no smaller first bucket; the bucket order is fixed at wrap time (no
rebuild after the first iteration); only the default process group.
"""

from __future__ import annotations

import contextlib

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
        group = dist._default_group()
        self._comm = group.comm
        self._world_size = self._comm.Get_size()
        named = list(module.named_parameters()) + list(module.named_buffers())
        for name, t in named:
            if t.device != group.collectives.device:
                raise ValueError(
                    f"DistributedDataParallel: {name} is on {t.device}; backend "
                    f"{group.backend!r} averages {group.collectives.device.upper()} tensors "
                    "(CPU: backend='mpi', GPU: backend='nccl' with the model moved to 'cuda')")
        self._check_same_model(named)
        self._sync_module_states()
        # The buckets' collectives on a communicator of their own: they are in flight while
        # the backward pass may run other collectives (SyncBatchNorm's) on the default group.
        self._collectives = group.collectives.dup()
        self._params = [p for p in module.parameters() if p.requires_grad]
        self._buckets = self._make_buckets(self._params, int(bucket_cap_mb * 1024 * 1024))
        self._bucket_of = {id(p): i for i, bucket in enumerate(self._buckets) for p in bucket}
        self._armed = False
        self._hook_handles = [p.register_post_accumulate_grad_hook(self._on_grad_ready)
                              for p in self._params]

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
        if self._armed:  # the state of the next backward's reduction
            self._missing = [len(bucket) for bucket in self._buckets]  # gradients not yet in
            self._started = []  # (flat buffer, work) of buckets 0, 1, ... in order
            self._finish_queued = False
        return self.module(*args, **kwargs)

    def _on_grad_ready(self, param) -> None:
        """Post-accumulate-grad hook: ``param``'s gradient is complete for this backward."""
        if not self._armed:
            return
        if not self._finish_queued:
            self._finish_queued = True
            autograd.queue_callback(self._finish_reduction)
        self._missing[self._bucket_of[id(param)]] -= 1
        self._start_ready_buckets()
        for _, work in self._started:  # let MPI progress what is in flight
            if not work.poll():
                break

    def _start_ready_buckets(self, all_left: bool = False) -> None:
        """Start, in index order, every bucket whose gradients are all in (every bucket left
        when ``all_left``: after backward, a missing gradient is an unused parameter)."""
        while len(self._started) < len(self._buckets):
            i = len(self._started)
            if self._missing[i] and not all_left:
                return
            self._started.append(self._start_bucket(self._buckets[i]))

    def _start_bucket(self, bucket):
        xp = self._collectives.xp
        flat = xp.empty(sum(p.data.size for p in bucket), dtype=bucket[0].data.dtype)
        offset = 0
        for p in bucket:
            n = p.data.size
            flat[offset:offset + n] = 0 if p.grad is None else p.grad.data.reshape(-1)
            offset += n
        return flat, self._collectives.start_all_reduce_(flat, dist.ReduceOp.AVG)

    def _finish_reduction(self) -> None:
        """After backward: start what is left, wait for every bucket, write the averages."""
        from fastconv.tensor import Tensor

        self._armed = False
        self._start_ready_buckets(all_left=True)
        for bucket, (flat, work) in zip(self._buckets, self._started):
            work.wait()
            offset = 0
            for p in bucket:
                n = p.data.size
                averaged = flat[offset:offset + n].reshape(p.data.shape)
                if p.grad is None:
                    p.grad = Tensor(averaged.copy())
                else:
                    p.grad.data[...] = averaged
                offset += n
        self._started = []

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
