"""DataLoader (``torch.utils.data.DataLoader``): batches of fastconv Tensors from any dataset.

    from fastconv.utils.data import DataLoader, TensorDataset
    loader = DataLoader(TensorDataset(x, y), batch_size=64, shuffle=True, num_workers=2)
    for xb, yb in loader:
        ...

Same arguments, defaults and meaning as PyTorch 2's: a map-style dataset is read
through ``sampler`` (``SequentialSampler``, or ``RandomSampler`` with ``shuffle``)
and ``batch_sampler`` (``BatchSampler(sampler, batch_size, drop_last)``), each batch
fetched with the dataset's ``__getitems__`` when it has one (else ``ds[i]`` per
index) and merged by ``collate_fn`` (:func:`default_collate`: fastconv Tensors);
an :class:`IterableDataset` is read as a stream. ``batch_size=None`` turns batching
off (each sample goes through :func:`default_convert`).

**Workers are threads, not processes.** ``num_workers=k`` starts ``k`` threads
that fetch and collate batches ahead of the loop (``prefetch_factor`` batches
each, default 2), handed out round-robin and returned in order (``in_order``).
Why threads: fastconv's data sets keep their decoded images in one in-memory
array that threads share for free (processes would each need a copy, or shared
memory, and pickling of the dataset and of every batch); NumPy, PIL decoding and
fastconv's kernels release the GIL, so the work that dominates -- decoding,
cropping, converting arrays -- does run in parallel; and it behaves the same on
every platform (no fork/spawn differences, no pickling errors for lambdas or
locally defined datasets). The cost: per-sample work written in pure Python holds
the GIL, so it does not speed up with more workers. What PyTorch keeps per worker
process is kept per thread: :func:`get_worker_info` (id, num_workers, seed,
dataset -- the shared object), and each worker's own random generator, seeded
``base_seed + worker_id`` for every iterator, from which fastconv's per-sample
transforms draw (so augmentation does not depend on thread timing). Python's
``random`` module and NumPy's legacy global generator are shared by all threads
and are not reseeded per worker (PyTorch reseeds them in each process); use
:func:`fastconv.utils.data.sample_rng` or ``get_worker_info().seed`` instead.
``worker_init_fn(worker_id)`` runs in each worker thread before its first batch;
``persistent_workers`` keeps the threads (and what ``worker_init_fn`` set up)
from one epoch to the next. ``multiprocessing_context`` does not apply and is
refused; ``pin_memory`` has no effect (a warning says so: fastconv has no pinned
memory).

fastconv's training program (``models.train_cifar``) uses the batch loader
:class:`fastconv.data.DataLoader` instead: batch transforms on whole uint8
arrays, gathered with one indexing copy per batch, seeded by (seed, epoch,
batch) for bit-exact resumes. The two share no code on purpose: this one keeps
PyTorch's per-sample contract, that one its speed.
"""

from __future__ import annotations

import itertools
import numbers
import queue
import threading
import warnings

from ._collate import default_collate, default_convert
from ._worker import WorkerInfo, _enter_worker
from .dataset import IterableDataset
from .sampler import BatchSampler, RandomSampler, SequentialSampler, _numpy_generator

__all__ = ["DataLoader"]


class _InfiniteConstantSampler:
    def __iter__(self):
        while True:
            yield None


class DataLoader:
    """Iterate over ``dataset`` in batches (see the module docstring).

    Args (PyTorch's): dataset, batch_size=1, shuffle=None (False), sampler,
    batch_sampler, num_workers=0, collate_fn, pin_memory=False, drop_last=False,
    timeout=0 (seconds to wait for a worker's batch; 0: forever), worker_init_fn,
    multiprocessing_context (refused: workers are threads), generator (a
    ``numpy.random.Generator``; the base seed of the workers and the shuffling
    come from it, else from fastconv's global generator), prefetch_factor
    (default 2 with workers), persistent_workers, pin_memory_device, in_order.
    """

    def __init__(self, dataset, batch_size=1, shuffle=None, sampler=None, batch_sampler=None,
                 num_workers: int = 0, collate_fn=None, pin_memory: bool = False,
                 drop_last: bool = False, timeout: float = 0, worker_init_fn=None,
                 multiprocessing_context=None, generator=None, *, prefetch_factor=None,
                 persistent_workers: bool = False, pin_memory_device: str = "",
                 in_order: bool = True):
        if not isinstance(num_workers, int) or isinstance(num_workers, bool) or num_workers < 0:
            raise ValueError("num_workers option should be non-negative; use num_workers=0 to "
                             "disable multiprocessing.")
        if (not isinstance(timeout, numbers.Real) or isinstance(timeout, bool)
                or not timeout >= 0):  # NaN too
            raise ValueError(f"timeout option should be non-negative, but got timeout={timeout!r}")
        if num_workers == 0 and prefetch_factor is not None:
            raise ValueError("prefetch_factor option could only be specified in multiprocessing."
                             "let num_workers > 0 to enable multiprocessing, otherwise set "
                             "prefetch_factor to None.")
        if num_workers > 0 and prefetch_factor is None:
            prefetch_factor = 2
        if prefetch_factor is not None and (not isinstance(prefetch_factor, numbers.Integral)
                                            or isinstance(prefetch_factor, bool)
                                            or prefetch_factor < 1):
            # each worker keeps prefetch_factor batches in flight: 0 would fetch nothing
            raise ValueError(f"prefetch_factor option should be a positive integer with "
                             f"num_workers > 0, but got prefetch_factor={prefetch_factor!r}")
        if persistent_workers and num_workers == 0:
            raise ValueError("persistent_workers option needs num_workers > 0")
        if multiprocessing_context is not None:
            raise ValueError("multiprocessing_context is not supported: fastconv's DataLoader "
                             "workers are threads, not processes (see "
                             "fastconv.utils.data.dataloader)")
        if pin_memory:
            warnings.warn("pin_memory=True has no effect in fastconv: it has no pinned host "
                          "memory; batches are made on the CPU as usual", UserWarning,
                          stacklevel=2)
        if generator is not None:
            _numpy_generator(generator, "DataLoader")

        self.dataset = dataset
        self.num_workers = num_workers
        self.prefetch_factor = prefetch_factor
        self.pin_memory = pin_memory
        self.pin_memory_device = pin_memory_device
        self.timeout = timeout
        self.worker_init_fn = worker_init_fn
        self.multiprocessing_context = None
        self.persistent_workers = persistent_workers
        self.in_order = in_order
        self.generator = generator
        self._iterable = isinstance(dataset, IterableDataset)

        if self._iterable:
            if shuffle not in (False, None):
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified "
                                 f"shuffle option, but got shuffle={shuffle}")
            if sampler is not None:
                raise ValueError(f"DataLoader with IterableDataset: expected unspecified sampler "
                                 f"option, but got sampler={sampler}")
            if batch_sampler is not None:
                raise ValueError("DataLoader with IterableDataset: expected unspecified "
                                 f"batch_sampler option, but got batch_sampler={batch_sampler}")
        else:
            shuffle = bool(shuffle)
        if sampler is not None and shuffle:
            raise ValueError("sampler option is mutually exclusive with shuffle")
        if batch_sampler is not None:
            if batch_size != 1 or shuffle or sampler is not None or drop_last:
                raise ValueError("batch_sampler option is mutually exclusive with batch_size, "
                                 "shuffle, sampler, and drop_last")
            batch_size = None
            drop_last = False
        elif batch_size is None and drop_last:
            raise ValueError("batch_size=None option disables auto-batching and is mutually "
                             "exclusive with drop_last")
        if sampler is None:
            if self._iterable:
                sampler = _InfiniteConstantSampler()
            elif shuffle:
                sampler = RandomSampler(dataset, generator=generator)
            else:
                sampler = SequentialSampler(dataset)
        if batch_size is not None and batch_sampler is None:
            batch_sampler = BatchSampler(sampler, batch_size, drop_last)
        self.batch_size = batch_size
        self.drop_last = drop_last
        self.sampler = sampler
        self.batch_sampler = batch_sampler
        if collate_fn is None:
            collate_fn = default_collate if self._auto_collation else default_convert
        self.collate_fn = collate_fn
        self._pool = None

    @property
    def _auto_collation(self) -> bool:
        return self.batch_sampler is not None

    @property
    def _index_sampler(self):
        return self.batch_sampler if self._auto_collation else self.sampler

    def __len__(self) -> int:
        if self._iterable:
            n = len(self.dataset)
            if self.batch_size is not None:
                n = n // self.batch_size if self.drop_last else -(-n // self.batch_size)
            return n
        return len(self._index_sampler)

    # -- fetching ----------------------------------------------------------------------------------
    def _fetch(self, index):
        """One batch (or sample) of a map-style dataset."""
        ds = self.dataset
        if self._auto_collation:
            getitems = getattr(ds, "__getitems__", None)
            data = getitems(index) if callable(getitems) else [ds[i] for i in index]
            return self.collate_fn(data)
        return self.collate_fn(ds[index])

    def _next_from_stream(self, it):
        """The next batch (or sample) of an iterable dataset's iterator ``it``; StopIteration
        at its end."""
        if not self._auto_collation:
            return self.collate_fn(next(it))
        data = list(itertools.islice(it, self.batch_size))
        if not data or (self.drop_last and len(data) < self.batch_size):
            raise StopIteration
        return self.collate_fn(data)

    def _base_seed(self) -> int:
        return int(_numpy_generator(self.generator, "DataLoader").integers(0, 2 ** 63 - 1))

    # -- iteration ---------------------------------------------------------------------------------
    def __iter__(self):
        if self.num_workers == 0:
            return self._single()
        if self.persistent_workers:
            if self._pool is None or not self._pool.alive:
                self._pool = _WorkerPool(self, self._base_seed())
            pool = self._pool
        else:
            pool = _WorkerPool(self, self._base_seed())
        return _MultiWorkerIter(self, pool, own_pool=not self.persistent_workers)

    def _single(self):
        if self._iterable:
            it = iter(self.dataset)
            while True:
                try:
                    batch = self._next_from_stream(it)
                except StopIteration:
                    return
                yield batch
        else:
            for index in self._index_sampler:
                yield self._fetch(index)

    def __del__(self):
        pool = getattr(self, "_pool", None)
        if pool is not None:
            pool.shutdown()

    def __repr__(self) -> str:
        return (f"DataLoader({type(self.dataset).__name__}, batch_size={self.batch_size}, "
                f"num_workers={self.num_workers} (threads))")


_STOP = object()        # a task queue's end
_EXHAUSTED = object()   # an iterable dataset's worker has no more batches


class _WorkerPool:
    """``num_workers`` threads, each with its own task queue, one shared result queue.
    Tasks: (generation, task_id, payload); results: (generation, task_id, ok, value)."""

    def __init__(self, loader: DataLoader, base_seed: int):
        self.loader = loader
        self.results = queue.Queue()
        self.tasks = [queue.Queue() for _ in range(loader.num_workers)]
        self.alive = True
        self.generation = 0
        self.threads = []
        for wid in range(loader.num_workers):
            t = threading.Thread(target=self._loop, args=(wid, base_seed), daemon=True,
                                 name=f"fastconv-dataloader-{wid}")
            t.start()
            self.threads.append(t)

    def _loop(self, wid: int, base_seed: int) -> None:
        loader = self.loader
        _enter_worker(WorkerInfo(id=wid, num_workers=loader.num_workers,
                                 seed=(base_seed + wid) % 2 ** 64, dataset=loader.dataset))
        init_error = None
        if loader.worker_init_fn is not None:
            try:
                loader.worker_init_fn(wid)
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                init_error = (e, wid)
        streams = {}  # generation -> this worker's iterator over an iterable dataset
        while True:
            task = self.tasks[wid].get()
            if task is _STOP:
                return
            gen, tid, payload = task
            if gen != self.generation:
                continue  # a task of an iterator that was abandoned
            if init_error is not None:
                self.results.put((gen, tid, False, init_error))
                continue
            try:
                if loader._iterable:
                    if gen not in streams:
                        streams.clear()
                        streams[gen] = iter(loader.dataset)
                    try:
                        value = loader._next_from_stream(streams[gen])
                    except StopIteration:
                        value = _EXHAUSTED
                else:
                    value = loader._fetch(payload)
                self.results.put((gen, tid, True, value))
            except BaseException as e:  # noqa: BLE001 - re-raised in the main thread
                self.results.put((gen, tid, False, (e, wid)))

    def shutdown(self) -> None:
        if not self.alive:
            return
        self.alive = False
        for q in self.tasks:
            q.put(_STOP)


class _MultiWorkerIter:
    """One pass over the loader with a worker pool: tasks handed out round-robin to the
    workers still active, ``prefetch_factor`` per worker ahead, results in order (or as
    they come, with ``in_order=False``)."""

    def __init__(self, loader: DataLoader, pool: _WorkerPool, own_pool: bool):
        self.loader, self.pool, self.own_pool = loader, pool, own_pool
        pool.generation += 1
        self.gen = pool.generation
        self.indices = iter(loader._index_sampler) if not loader._iterable else None
        self.active = [True] * loader.num_workers
        self.next_worker = itertools.cycle(range(loader.num_workers))
        self.sent = 0          # tasks handed out (the next task id)
        self.rcvd = 0          # in order: the next task id to yield
        self.outstanding = 0   # handed out, not yet consumed
        self.pending = {}      # task id -> (ok, value), arrived ahead of its turn
        self.owner = {}        # task id -> worker id
        self.finished = False
        for _ in range(loader.prefetch_factor * loader.num_workers):
            self._send()

    def _send(self) -> None:
        if not any(self.active):
            return
        payload = None
        if self.indices is not None:
            try:
                payload = next(self.indices)
            except StopIteration:
                self.indices = iter(())
                return
        wid = next(self.next_worker)
        while not self.active[wid]:
            wid = next(self.next_worker)
        self.owner[self.sent] = wid
        self.pool.tasks[wid].put((self.gen, self.sent, payload))
        self.sent += 1
        self.outstanding += 1

    def __iter__(self):
        return self

    def _get(self):
        timeout = self.loader.timeout or None
        while True:
            try:
                gen, tid, ok, value = self.pool.results.get(timeout=timeout)
            except queue.Empty:
                self._close()
                raise RuntimeError(f"DataLoader timed out after {self.loader.timeout} "
                                   "seconds") from None
            if gen == self.gen:
                return tid, ok, value

    def __next__(self):
        while True:
            if self.finished or self.outstanding == 0:
                self._close()
                raise StopIteration
            if self.loader.in_order:
                if self.rcvd in self.pending:
                    tid = self.rcvd
                    ok, value = self.pending.pop(tid)
                else:
                    tid, ok, value = self._get()
                    if tid != self.rcvd:
                        self.pending[tid] = (ok, value)
                        continue
                self.rcvd += 1
            else:
                tid, ok, value = self._get()
            self.outstanding -= 1
            wid = self.owner.pop(tid)
            if not ok:
                self._close()
                err, where = value
                err.add_note(f"(raised in DataLoader worker thread {where})")
                raise err
            if value is _EXHAUSTED:
                self.active[wid] = False
                self._send()
                continue
            self._send()
            return value

    def _close(self) -> None:
        self.finished = True
        if self.own_pool:
            self.pool.shutdown()

    def __del__(self):
        if not getattr(self, "finished", True):
            self._close()

    def __len__(self) -> int:
        return len(self.loader)
