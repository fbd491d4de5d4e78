"""The collectives of backend "nccl": CuPy arrays on this rank's GPU, through CuPy's NCCL
binding (``cupy.cuda.nccl.NcclCommunicator``), as ChainerMN's GPU communicators do.

MPI still launches the job: rank 0 makes NCCL's unique id and broadcasts it over MPI, then
every rank builds its communicator on the GPU of its local rank (its index among the ranks on
its machine). The public collectives run on the current CUDA stream, so they are ordered with
the kernels around them and the host does not wait (``barrier`` does: it synchronises).
``start_all_reduce_`` (DistributedDataParallel's buckets) runs on a stream of its own, after
the work already queued on the current one, so it overlaps the rest of the backward pass;
``Work.wait`` makes the current stream wait for it.
"""

from __future__ import annotations

import os

from fastconv.distributed.reduce_op import ReduceOp

#: Launcher variables holding the local rank (Open MPI, MPICH / Intel MPI); without one the
#: ranks sharing this machine are found with MPI_Comm_split_type.
LOCAL_RANK_VARS = ("OMPI_COMM_WORLD_LOCAL_RANK", "MPI_LOCALRANKID")

_DTYPES = {"int8": "NCCL_INT8", "uint8": "NCCL_UINT8", "int32": "NCCL_INT32",
           "uint32": "NCCL_UINT32", "int64": "NCCL_INT64", "uint64": "NCCL_UINT64",
           "float16": "NCCL_FLOAT16", "float32": "NCCL_FLOAT32", "float64": "NCCL_FLOAT64"}
_OPS = {ReduceOp.SUM: "NCCL_SUM", ReduceOp.AVG: "NCCL_SUM", ReduceOp.PRODUCT: "NCCL_PROD",
        ReduceOp.MAX: "NCCL_MAX", ReduceOp.MIN: "NCCL_MIN"}


def import_nccl():
    """(cupy, cupy.cuda.nccl), or a RuntimeError saying what to install."""
    try:
        import cupy
    except ImportError as e:
        raise RuntimeError(
            "backend='nccl' needs CuPy: pip install -e \".[cuda]\" (the CuPy wheel for your "
            f"CUDA version) on a machine with NVIDIA GPUs ({e})") from e
    try:
        from cupy.cuda import nccl
    except ImportError as e:
        raise RuntimeError(f"backend='nccl': this CuPy has no NCCL binding ({e}); install "
                           "NCCL (pip install nvidia-nccl-cu12) or use backend='mpi'") from e
    if not getattr(nccl, "available", True):
        raise RuntimeError("backend='nccl': CuPy found no NCCL library; install it (pip "
                           "install nvidia-nccl-cu12) or use backend='mpi'")
    return cupy, nccl


def local_rank(world_comm) -> int:
    for var in LOCAL_RANK_VARS:
        value = os.environ.get(var, "").strip()
        if value.isdigit():
            return int(value)
    from fastconv.distributed.mpi import import_mpi

    node = world_comm.Split_type(import_mpi().COMM_TYPE_SHARED)
    try:
        return node.Get_rank()
    finally:
        node.Free()


class Work:
    """An all-reduce queued on the collectives' own stream."""

    def __init__(self, cupy, done, array, op, size):
        self.cupy, self.done, self.array, self.op, self.size = cupy, done, array, op, size

    def poll(self) -> bool:
        return self.done.done

    def wait(self) -> None:
        self.cupy.cuda.get_current_stream().wait_event(self.done)
        if self.op is ReduceOp.AVG:
            self.array /= self.size


class NcclCollectives:
    device = "cuda"

    def __init__(self, world_comm):
        cupy, nccl = import_nccl()
        self.cupy, self.nccl = cupy, nccl
        self.xp = cupy
        self.rank, self.size = world_comm.Get_rank(), world_comm.Get_size()
        self.local_rank = local_rank(world_comm)
        count = cupy.cuda.runtime.getDeviceCount()
        if self.local_rank >= count:
            raise RuntimeError(
                f"backend='nccl': rank {self.rank} has local rank {self.local_rank} but this "
                f"machine shows {count} GPU(s); start at most one rank per GPU on each machine")
        self.device_id = self.local_rank
        cupy.cuda.Device(self.device_id).use()
        uid = nccl.get_unique_id() if self.rank == 0 else None
        uid = world_comm.bcast(uid, root=0)
        self.comm = nccl.NcclCommunicator(self.size, uid, self.rank)
        self._stream = None  # start_all_reduce_'s stream, made on first use

    def dup(self) -> NcclCollectives:
        return self  # NCCL runs a communicator's calls in the order the host issues them

    def free(self) -> None:
        self.comm.destroy()

    # ---- what the NCCL calls take ------------------------------------------------------------
    def _dtype(self, array) -> int:
        name = _DTYPES.get(str(array.dtype))
        if name is None:
            raise TypeError(f"backend='nccl' has no type for {array.dtype} (supported: "
                            f"{', '.join(_DTYPES)})")
        return getattr(self.nccl, name)

    def _op(self, op: ReduceOp) -> int:
        if not isinstance(op, ReduceOp):
            raise TypeError(f"op must be a fastconv.distributed.ReduceOp, got {op!r}")
        return getattr(self.nccl, _OPS[op])

    def _current_stream(self) -> int:
        return self.cupy.cuda.get_current_stream().ptr

    def _contiguous(self, array):
        return array if array.flags.c_contiguous else self.cupy.ascontiguousarray(array)

    # ---- collectives ---------------------------------------------------------------------------
    def barrier(self) -> None:
        """An all-reduce of one number, then the host waits for it (torch does the same)."""
        token = self.cupy.zeros(1, dtype="float32")
        self.all_reduce_(token)
        self.cupy.cuda.get_current_stream().synchronize()

    def all_reduce_(self, array, op: ReduceOp = ReduceOp.SUM) -> None:
        buf = self._contiguous(array)
        self.comm.allReduce(buf.data.ptr, buf.data.ptr, buf.size, self._dtype(buf),
                            self._op(op), self._current_stream())
        if op is ReduceOp.AVG:
            buf /= self.size
        if buf is not array:
            array[...] = buf

    def start_all_reduce_(self, array, op: ReduceOp = ReduceOp.SUM) -> Work:
        cuda = self.cupy.cuda
        if self._stream is None:
            self._stream = cuda.Stream(non_blocking=True)
        self._stream.wait_event(cuda.get_current_stream().record())  # the gradients are ready
        assert array.flags.c_contiguous
        self.comm.allReduce(array.data.ptr, array.data.ptr, array.size, self._dtype(array),
                            self._op(op), self._stream.ptr)
        return Work(self.cupy, self._stream.record(), array, op, self.size)

    def broadcast_(self, array, src: int) -> None:
        buf = self._contiguous(array)
        self.comm.broadcast(buf.data.ptr, buf.data.ptr, buf.size, self._dtype(buf), src,
                            self._current_stream())
        if buf is not array:
            array[...] = buf

    def all_gather(self, array):
        """Every rank's ``array`` stacked: shape (world size, *array.shape)."""
        array = self._contiguous(array)
        gathered = self.cupy.empty((self.size,) + tuple(array.shape), dtype=array.dtype)
        self.comm.allGather(array.data.ptr, gathered.data.ptr, array.size, self._dtype(array),
                            self._current_stream())
        return gathered
