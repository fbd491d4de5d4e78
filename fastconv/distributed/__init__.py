"""``torch.distributed`` for fastconv, on MPI and NCCL: process group, collectives, rank, size.

    import fastconv.distributed as dist
    dist.init_process_group(backend="mpi")      # launched by: mpirun -np 4 python train.py
    dist.all_reduce(t, op=dist.ReduceOp.SUM)    # in place on t's array, as torch

Launch and rendezvous are MPI's (through ``mpi4py``, the ``mpi`` extra: ``pip install -e
".[mpi]"``); fastconv has no transport of its own, as ChainerMN and Horovod have none. Rank
and world size are MPI_COMM_WORLD's, so there is no ``MASTER_ADDR`` / ``init_method`` to set:
``mpirun`` already did the rendezvous. The backend decides where the collectives run:

* ``"mpi"`` (fastconv/distributed/mpi.py): CPU tensors, MPI's collectives.
* ``"nccl"`` (fastconv/distributed/nccl.py): CUDA tensors, NCCL through ``cupy.cuda.nccl``
  on the current stream; each rank takes the GPU of its local rank (``cupy.cuda.Device(
  local_rank).use()``, so "cuda" means that GPU in this process). NCCL's unique id goes
  from rank 0 to the others over MPI.

An uncaught exception on any rank would leave the others blocked forever in their next
collective. ``init_process_group`` therefore installs a ``sys.excepthook`` that prints the
traceback and calls ``MPI_Abort`` on MPI_COMM_WORLD, which ends every rank of the job with an
error (Horovod and ``python -m mpi4py`` do the same); ``destroy_process_group`` removes it.

Only the default group exists (``group`` must be None) and every public call is synchronous
(``async_op=True`` is refused); DistributedDataParallel starts its bucket all-reduces
without waiting through the backend's ``start_all_reduce_``.
"""

from __future__ import annotations

import sys

import numpy as np

from fastconv.distributed.mpi import MpiCollectives, import_mpi
from fastconv.distributed.reduce_op import ReduceOp

__all__ = [
    "ReduceOp",
    "all_gather",
    "all_gather_object",
    "all_reduce",
    "barrier",
    "broadcast",
    "destroy_process_group",
    "get_backend",
    "get_rank",
    "get_world_size",
    "init_process_group",
    "is_available",
    "is_initialized",
    "is_mpi_available",
    "is_nccl_available",
]

BACKENDS = ("mpi", "nccl")


class _Group:
    """The default process group: MPI_COMM_WORLD (a duplicate, so that fastconv's messages
    never match a user's own on COMM_WORLD), the backend's collectives and the excepthook
    that was replaced."""

    def __init__(self, backend, comm, world_comm, collectives, previous_excepthook):
        self.backend = backend
        self.comm = comm
        self.world_comm = world_comm
        self.collectives = collectives
        self.previous_excepthook = previous_excepthook


_group: _Group | None = None


def is_available() -> bool:
    return True


def is_mpi_available() -> bool:
    """Whether mpi4py (and through it an MPI library) can be imported."""
    try:
        import mpi4py  # noqa: F401
    except ImportError:
        return False
    return True


def is_nccl_available() -> bool:
    """Whether CuPy with an NCCL library can be imported."""
    from fastconv.distributed.nccl import import_nccl

    try:
        import_nccl()
    except RuntimeError:
        return False
    return True


def is_initialized() -> bool:
    return _group is not None


def _default_group() -> _Group:
    if _group is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to "
                           "call init_process_group.")
    return _group


def init_process_group(backend: str = "mpi", init_method=None, timeout=None, world_size=-1,
                       rank=-1, store=None, group_name: str = "", **kwargs) -> None:
    """Join the job's default process group; rank and world size come from MPI.

    ``world_size`` / ``rank``, if given, must agree with what mpirun assigned (a mismatch is a
    launch error, reported as one). ``init_method``, ``store`` and ``timeout`` are accepted for
    torch's signature and unused: mpirun has done the rendezvous.
    """
    global _group
    if _group is not None:
        raise RuntimeError("trying to initialize the default process group twice!")
    backend = "mpi" if backend is None else str(backend).lower()
    if backend not in BACKENDS:
        raise ValueError(f"unknown backend {backend!r}: fastconv.distributed supports "
                         f"{' and '.join(repr(b) for b in BACKENDS)}")
    if backend == "nccl":  # say what is missing before MPI starts
        from fastconv.distributed.nccl import NcclCollectives, import_nccl

        import_nccl()
    MPI = import_mpi()
    world = MPI.COMM_WORLD
    if world_size not in (-1, None) and world_size != world.Get_size():
        raise ValueError(f"init_process_group(world_size={world_size}) but mpirun started "
                         f"{world.Get_size()} processes")
    if rank not in (-1, None) and rank != world.Get_rank():
        raise ValueError(f"init_process_group(rank={rank}) but MPI assigned rank "
                         f"{world.Get_rank()}")
    comm = world.Dup()
    if backend == "nccl":
        try:
            collectives = NcclCollectives(comm)
        except BaseException:
            comm.Free()
            raise
    else:
        collectives = MpiCollectives(comm)
    previous = sys.excepthook
    _group = _Group(backend, comm, world, collectives, previous)
    sys.excepthook = _abort_on_uncaught_exception


def _abort_on_uncaught_exception(exc_type, exc, tb) -> None:
    """Print the traceback as Python would, then end the whole job: the other ranks would
    otherwise wait forever in their next collective."""
    group = _group
    previous = group.previous_excepthook if group is not None else sys.__excepthook__
    try:
        previous(exc_type, exc, tb)
    finally:
        sys.stderr.flush()
        if group is not None:
            rank = group.world_comm.Get_rank()
            sys.stderr.write(f"fastconv.distributed: uncaught {exc_type.__name__} on rank "
                             f"{rank}; calling MPI_Abort to end every rank\n")
            sys.stderr.flush()
            group.world_comm.Abort(1)


def destroy_process_group(group=None) -> None:
    """Leave the default group and restore the excepthook. MPI itself stays initialised
    until the process exits (mpi4py finalises it then)."""
    global _group
    _check_group(group)
    current = _default_group()
    if sys.excepthook is _abort_on_uncaught_exception:
        sys.excepthook = current.previous_excepthook
    if current.backend == "nccl":
        current.collectives.free()
    current.comm.Free()
    _group = None


def _check_group(group) -> None:
    if group is not None:
        raise NotImplementedError("fastconv.distributed has only the default process group: "
                                  "pass group=None")


def _check_sync(async_op) -> None:
    if async_op:
        raise NotImplementedError("async_op=True is not supported: fastconv's collectives are "
                                  "synchronous")


def get_backend(group=None) -> str:
    _check_group(group)
    return _default_group().backend


def get_rank(group=None) -> int:
    _check_group(group)
    return _default_group().comm.Get_rank()


def get_world_size(group=None) -> int:
    _check_group(group)
    return _default_group().comm.Get_size()


def barrier(group=None, async_op: bool = False, device_ids=None) -> None:
    _check_group(group)
    _check_sync(async_op)
    _default_group().collectives.barrier()


def _array_of(tensor, who: str, name: str = "tensor"):
    """The array of ``tensor``, checked to be on the device the backend works on."""
    from fastconv.tensor import Tensor

    if not isinstance(tensor, Tensor):
        raise TypeError(f"{who}: {name} must be a fastconv.Tensor, got "
                        f"{type(tensor).__name__}")
    group = _default_group()
    expected = group.collectives.device
    if tensor.device != expected:
        other = "nccl" if expected == "cpu" else "mpi"
        raise ValueError(f"{who}: backend {group.backend!r} takes {expected.upper()} tensors, "
                         f"{name} is on {tensor.device} (move it with .to({expected!r}) or "
                         f"use backend={other!r})")
    if expected == "cuda":
        device_id = group.collectives.device_id
        if tensor.data.device.id != device_id:
            raise ValueError(f"{who}: {name} is on GPU {tensor.data.device.id}, this rank's "
                             f"NCCL communicator is on GPU {device_id} (its local rank)")
    return tensor.data


def _check_op(array, op) -> None:
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a fastconv.distributed.ReduceOp, got {op!r}")
    if op is ReduceOp.AVG and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"ReduceOp.AVG needs a floating-point tensor, got {array.dtype}")


def allreduce_array_(comm, array: np.ndarray, op: ReduceOp = ReduceOp.SUM) -> None:
    """In-place MPI_Allreduce of a NumPy array on the MPI communicator ``comm`` (host-side
    sums of a training run, whatever the backend)."""
    _check_op(array, op)
    MpiCollectives(comm).all_reduce_(array, op)


def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Combine ``tensor`` across all ranks with ``op``; every rank's ``tensor`` holds the
    result afterwards (its array is written in place, as torch's)."""
    _check_group(group)
    _check_sync(async_op)
    array = _array_of(tensor, "all_reduce")
    _check_op(array, op)
    _default_group().collectives.all_reduce_(array, op)


def broadcast(tensor, src: int, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor`` (in place)."""
    _check_group(group)
    _check_sync(async_op)
    size = get_world_size()
    if not 0 <= src < size:
        raise ValueError(f"broadcast: src={src} is not a rank of a group of {size}")
    _default_group().collectives.broadcast_(_array_of(tensor, "broadcast"), src)


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list[i]`` with rank i's ``tensor`` (same shape and dtype on every rank,
    as torch requires)."""
    _check_group(group)
    _check_sync(async_op)
    size = get_world_size()
    if len(tensor_list) != size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors for a world "
                         f"of {size}")
    array = _array_of(tensor, "all_gather")
    outs = [_array_of(t, "all_gather", f"tensor_list[{i}]") for i, t in enumerate(tensor_list)]
    for i, out in enumerate(outs):
        if out.shape != array.shape or out.dtype != array.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] is {out.dtype}{list(out.shape)}, "
                             f"the input is {array.dtype}{list(array.shape)}")
    gathered = _default_group().collectives.all_gather(array)
    for i, out in enumerate(outs):
        out[...] = gathered[i]


def all_gather_object(object_list, obj, group=None) -> None:
    """Fill ``object_list[i]`` with rank i's picklable ``obj``."""
    _check_group(group)
    comm = _default_group().comm
    if len(object_list) != comm.Get_size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries for "
                         f"a world of {comm.Get_size()}")
    object_list[:] = comm.allgather(obj)
