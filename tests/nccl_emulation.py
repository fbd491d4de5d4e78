"""A CPU stand-in for CuPy's arrays, streams and NCCL binding, to run fastconv's "nccl"
backend (fastconv/distributed/nccl.py) under mpirun without a GPU.

    import nccl_emulation
    emu = nccl_emulation.install(devices=2)    # before fastconv.distributed uses cupy
    dist.init_process_group("nccl")
    ...
    emu.calls                                  # every NCCL call, with its arguments

What is emulated, and what it checks:
  * ``cupy.ndarray``: a NumPy array in host memory behind a class whose module is "cupy" (so
    fastconv sees a CUDA tensor), with ``.data.ptr`` its address and ``.device.id`` the
    device that was current when it was made. Implicit conversion to NumPy is refused, as
    CuPy refuses it.
  * Devices and streams: ``cupy.cuda.Device(i).use()`` sets the current device;
    ``Stream``/``Event`` are tokens (the collectives run at once), but every NCCL call must
    name a live stream, and its buffers must be on the communicator's device.
  * ``cupy.cuda.nccl.NcclCommunicator(ndev, unique_id, rank)``: all ranks must pass the same
    unique id (so rank 0's id must have been handed out), ``ndev`` must be the MPI world size
    and no two ranks on one host may share a device. Its collectives take what NCCL takes --
    raw pointers, an element count, a datatype code and a reduction-op code (the values of
    nccl.h) -- check that each [pointer, pointer + count x size) lies inside one live array,
    and perform the operation with mpi4py on views of that host memory.
"""

from __future__ import annotations

import ctypes
import os
import socket
import sys
import types
import weakref

import numpy as np
from numpy.lib.mixins import NDArrayOperatorsMixin

# nccl.h's ncclDataType_t and ncclRedOp_t
NCCL_TYPES = {0: np.int8, 1: np.uint8, 2: np.int32, 3: np.uint32, 4: np.int64, 5: np.uint64,
              6: np.float16, 7: np.float32, 8: np.float64}
NCCL_OPS = {0: "SUM", 1: "PROD", 2: "MAX", 3: "MIN"}


class _State:
    def __init__(self, devices: int):
        self.devices = devices
        self.current_device = 0
        self.allocations = {}  # address -> (end address, weakref to the host array)
        self.streams = {}      # pointer -> Stream
        self.calls = []        # (name, arguments) of every NCCL call


_state: _State | None = None


def _host(a):
    return a._host if isinstance(a, ndarray) else a


def _wrap(a, device=None):
    return ndarray(a, device) if isinstance(a, np.ndarray) else a


class _Memory:
    def __init__(self, ptr):
        self.ptr = ptr


class _DeviceRef:
    def __init__(self, i):
        self.id = i


class ndarray(NDArrayOperatorsMixin):
    """Host memory posing as device memory."""

    def __init__(self, host: np.ndarray, device: int | None = None):
        self._host = host
        self._device = _state.current_device if device is None else device
        base = host if host.base is None else host.base
        if isinstance(base, np.ndarray) and base.base is None:
            start = base.ctypes.data
            known = _state.allocations.get(start)
            if known is None or known[1]() is not base:  # new, or the address was reused
                _state.allocations[start] = (start + base.nbytes, weakref.ref(base))

    shape = property(lambda self: self._host.shape)
    dtype = property(lambda self: self._host.dtype)
    size = property(lambda self: self._host.size)
    nbytes = property(lambda self: self._host.nbytes)
    ndim = property(lambda self: self._host.ndim)
    flags = property(lambda self: self._host.flags)
    data = property(lambda self: _Memory(self._host.ctypes.data))
    device = property(lambda self: _DeviceRef(self._device))
    T = property(lambda self: ndarray(self._host.T, self._device))

    def get(self):
        return self._host.copy()

    def __array__(self, dtype=None, copy=None):
        raise TypeError("Implicit conversion to a NumPy array is not allowed. Please use "
                        "`.get()` to construct a NumPy array explicitly.")

    def __array_ufunc__(self, ufunc, method, *inputs, **kwargs):
        out = kwargs.get("out")
        if out is not None:  # in place (a /= 2): the result is the wrapper itself
            kwargs["out"] = tuple(_host(o) for o in out)
        result = getattr(ufunc, method)(*(_host(a) for a in inputs), **kwargs)
        if out is not None:
            return out[0] if len(out) == 1 else out
        return _wrap(result, self._device)

    def __getitem__(self, key):
        return _wrap(self._host[key], self._device)

    def __setitem__(self, key, value):
        if isinstance(value, np.ndarray):
            raise TypeError("setting a device array from a NumPy array: use cupy.asarray")
        self._host[key] = _host(value)

    def reshape(self, *shape):
        return ndarray(self._host.reshape(*shape), self._device)

    def copy(self):
        return ndarray(self._host.copy(), self._device)

    def astype(self, dtype):
        return ndarray(self._host.astype(dtype), self._device)

    def transpose(self, *axes):
        return ndarray(self._host.transpose(*axes), self._device)

    def sum(self, *args, **kwargs):
        return _wrap(self._host.sum(*args, **kwargs), self._device)

    def __len__(self):
        return len(self._host)


ndarray.__module__ = "cupy"  # what fastconv.backend.device_of reads


# ---- the cupy module ----------------------------------------------------------------------------
def asarray(a, dtype=None):
    if isinstance(a, ndarray):
        return a if dtype is None else a.astype(dtype)
    return ndarray(np.array(a, dtype=dtype))


def asnumpy(a):
    return a.get()


def ascontiguousarray(a, dtype=None):
    return ndarray(np.ascontiguousarray(_host(a), dtype=dtype), a._device)


def _factory(name):
    def make(*args, **kwargs):
        return ndarray(getattr(np, name)(*args, **kwargs))
    return make


class Device:
    def __init__(self, i=None):
        self.id = _state.current_device if i is None else int(i)
        if not 0 <= self.id < _state.devices:
            raise RuntimeError(f"cudaErrorInvalidDevice: device {self.id} of {_state.devices}")

    def use(self):
        _state.current_device = self.id


class Event:
    def __init__(self):
        self.done = False

    def record(self, stream=None):
        self.done = True  # the emulated streams have no pending work


class Stream:
    _next = 0x1000

    def __init__(self, non_blocking=False, null=False):
        self.ptr = 0 if null else Stream._next
        Stream._next += 0x10
        _state.streams[self.ptr] = self

    def record(self, event=None):
        event = event or Event()
        event.record(self)
        return event

    def wait_event(self, event):
        assert isinstance(event, Event)

    def synchronize(self):
        pass


_null_stream = None


def get_current_stream():
    return _null_stream


# ---- cupy.cuda.nccl ------------------------------------------------------------------------------
def get_unique_id():
    return tuple(os.urandom(128))


class NcclCommunicator:
    def __init__(self, ndev, commId, rank):
        from mpi4py import MPI

        world = MPI.COMM_WORLD
        assert ndev == world.Get_size(), f"ndev={ndev}, the MPI world has {world.Get_size()}"
        assert rank == world.Get_rank(), f"rank={rank}, MPI says {world.Get_rank()}"
        self.device = _state.current_device
        ids = world.allgather((tuple(commId), socket.gethostname(), self.device))
        assert len({i for i, _, _ in ids}) == 1, "the ranks were given different unique ids"
        placed = [(host, dev) for _, host, dev in ids]
        assert len(set(placed)) == len(placed), f"two ranks share a GPU: {placed}"
        self.comm = world.Dup()
        self.ndev, self.rank = ndev, rank
        _state.calls.append(("init", {"ndev": ndev, "rank": rank, "device": self.device}))

    def rank_id(self):
        return self.rank

    def size(self):
        return self.ndev

    def device_id(self):
        return self.device

    def destroy(self):
        _state.calls.append(("destroy", {}))
        self.comm.Free()

    def _view(self, ptr, count, datatype):
        dtype = np.dtype(NCCL_TYPES[datatype])
        nbytes = count * dtype.itemsize
        for start, (end, ref) in _state.allocations.items():
            if start <= ptr and ptr + nbytes <= end and ref() is not None:
                break
        else:
            raise AssertionError(f"NCCL buffer [{ptr:#x}, +{nbytes}) is not inside a live array")
        buf = (ctypes.c_char * max(nbytes, 1)).from_address(ptr)
        return np.frombuffer(buf, dtype=dtype, count=count)

    def _check_stream(self, stream):
        assert stream in _state.streams, f"stream {stream:#x} is not a live stream"
        assert _state.current_device == self.device, "called with another device current"

    def _log(self, name, **args):
        _state.calls.append((name, args))

    def allReduce(self, sendbuf, recvbuf, count, datatype, op, stream):
        from mpi4py import MPI

        self._check_stream(stream)
        self._log("allReduce", send=sendbuf, recv=recvbuf, count=count, datatype=datatype, op=op,
                  stream=stream)
        recv = self._view(recvbuf, count, datatype)
        mpi_op = getattr(MPI, NCCL_OPS[op])
        if sendbuf == recvbuf:
            self.comm.Allreduce(MPI.IN_PLACE, recv, op=mpi_op)
        else:
            self.comm.Allreduce(self._view(sendbuf, count, datatype).copy(), recv, op=mpi_op)

    def broadcast(self, sendbuf, recvbuf, count, datatype, root, stream):
        self._check_stream(stream)
        self._log("broadcast", send=sendbuf, recv=recvbuf, count=count, datatype=datatype,
                  root=root, stream=stream)
        recv = self._view(recvbuf, count, datatype)
        if self.rank == root and sendbuf != recvbuf:
            recv[...] = self._view(sendbuf, count, datatype)
        self.comm.Bcast(recv, root=root)

    def bcast(self, buff, count, datatype, root, stream):
        self.broadcast(buff, buff, count, datatype, root, stream)

    def allGather(self, sendbuf, recvbuf, count, datatype, stream):
        self._check_stream(stream)
        self._log("allGather", send=sendbuf, recv=recvbuf, count=count, datatype=datatype,
                  stream=stream)
        send = self._view(sendbuf, count, datatype).copy()
        self.comm.Allgather(send, self._view(recvbuf, count * self.ndev, datatype))


def install(devices: int = 2) -> _State:
    """Register the stand-in as ``cupy``, ``cupy.cuda`` and ``cupy.cuda.nccl``; returns its
    state (``calls``: the NCCL calls made)."""
    global _state, _null_stream
    _state = _State(devices)
    _null_stream = Stream(null=True)
    cp = types.ModuleType("cupy")
    cp.ndarray = ndarray
    cp.asarray, cp.asnumpy, cp.ascontiguousarray = asarray, asnumpy, ascontiguousarray
    for name in ("empty", "zeros", "ones", "full", "arange"):
        setattr(cp, name, _factory(name))
    cuda = types.ModuleType("cupy.cuda")
    cuda.Device, cuda.Stream, cuda.Event = Device, Stream, Event
    cuda.get_current_stream = get_current_stream
    cuda.runtime = types.SimpleNamespace(getDeviceCount=lambda: _state.devices)
    nccl = types.ModuleType("cupy.cuda.nccl")
    nccl.available = True
    nccl.get_unique_id = get_unique_id
    nccl.NcclCommunicator = NcclCommunicator
    for code, t in NCCL_TYPES.items():
        setattr(nccl, f"NCCL_{np.dtype(t).name.upper()}", code)
    for code, name in NCCL_OPS.items():
        setattr(nccl, f"NCCL_{name}", code)
    nccl.NCCL_AVG = 4
    cuda.nccl = nccl
    cp.cuda = cuda
    sys.modules.update({"cupy": cp, "cupy.cuda": cuda, "cupy.cuda.nccl": nccl})
    return _state
