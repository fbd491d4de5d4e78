"""``fastconv.utils.benchmark``: :class:`Timer` and :class:`Measurement`, as
``torch.utils.benchmark``.

    from fastconv.utils import benchmark
    t = benchmark.Timer("F.conv2d(x, w)", setup="from fastconv import functional as F",
                        globals={"x": x, "w": w}, label="conv2d", num_threads=2)
    m = t.blocked_autorange(min_run_time=0.5)
    print(m)            # median, IQR, measurement count, as torch's repr
    m.median, m.mean, m.iqr, m.times

Timer runs ``stmt`` with :mod:`timeit` (after ``setup``, in a namespace with ``fastconv`` and
``globals``), with fastconv's CPU kernels set to ``num_threads`` threads for the measurement
(1 by default, as torch's), and, when a CUDA device is in use, synchronizes it before each
reading of the clock. ``blocked_autorange`` first grows the block size (runs per measurement)
by factors of 10 until the timer's own overhead is negligible, then measures blocks until
``min_run_time`` has passed; ``adaptive_autorange`` measures until the interquartile range is
below ``threshold`` of the median (or ``max_run_time`` has passed).
"""

from __future__ import annotations

import dataclasses
import sys
import textwrap
import timeit as _timeit

import numpy as np

__all__ = ["Measurement", "TaskSpec", "Timer", "select_unit"]

_IQR_WARN_THRESHOLD = 0.1
_IQR_GROSS_WARN_THRESHOLD = 0.25


def default_timer() -> float:
    """``timeit.default_timer``, after synchronizing the GPU when CuPy is in use (GPU work is
    asynchronous: without it the clock would read before the kernels finish)."""
    if "cupy" in sys.modules:
        from fastconv import cuda

        if cuda.is_available():
            cuda.synchronize()
    return _timeit.default_timer()


@dataclasses.dataclass(frozen=True)
class TaskSpec:
    """What a Timer measures (everything but the globals), as torch's."""

    stmt: str
    setup: str
    global_setup: str = ""
    label: str | None = None
    sub_label: str | None = None
    description: str | None = None
    env: str | None = None
    num_threads: int = 1

    @property
    def title(self) -> str:
        if self.label is not None:
            return self.label + (f": {self.sub_label}" if self.sub_label else "")
        if "\n" not in self.stmt:
            return self.stmt + (f": {self.sub_label}" if self.sub_label else "")
        return (f"stmt:{f' ({self.sub_label})' if self.sub_label else ''}\n"
                f"{textwrap.indent(self.stmt, '  ')}")

    def setup_str(self) -> str:
        if self.setup == "pass" or not self.setup:
            return ""
        if "\n" in self.setup:
            return f"setup:\n{textwrap.indent(self.setup, '  ')}"
        return f"setup: {self.setup}"

    def summarize(self) -> str:
        sections = [self.title, self.description or "", self.setup_str()]
        return "\n".join(f"{s}\n" if "\n" in s else s for s in sections if s)


_TASKSPEC_FIELDS = tuple(f.name for f in dataclasses.fields(TaskSpec))


def select_unit(t: float) -> tuple[str, float]:
    """The unit ("ns", "us", "ms" or "s") that puts ``t`` seconds in [1, 1000), and its scale."""
    exponent = int(np.floor(np.log10(t) / 3)) if t > 0 else -3
    unit = {-3: "ns", -2: "us", -1: "ms"}.get(exponent, "s")
    return unit, {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[unit]


@dataclasses.dataclass(repr=False)
class Measurement:
    """The result of a Timer measurement: ``raw_times`` (seconds per block of
    ``number_per_run`` runs) and the statistics of the per-run ``times``: ``mean``,
    ``median``, ``iqr`` (75th minus 25th percentile, linear interpolation as torch's)."""

    number_per_run: int
    raw_times: list
    task_spec: TaskSpec
    metadata: dict | None = None

    def __getattr__(self, name):
        if name in _TASKSPEC_FIELDS:
            return getattr(self.task_spec, name)
        raise AttributeError(f"'Measurement' object has no attribute {name!r}")

    @property
    def times(self) -> list:
        """Seconds per run of ``stmt``, one entry per measurement."""
        return [t / self.number_per_run for t in self.raw_times]

    def _stats(self):
        times = np.sort(np.asarray(self.times, dtype=np.float64))
        if not times.size:
            return (float("nan"),) * 4
        return (float(np.median(times)), float(times.mean()), float(np.quantile(times, 0.25)),
                float(np.quantile(times, 0.75)))

    @property
    def median(self) -> float:
        return self._stats()[0]

    @property
    def mean(self) -> float:
        return self._stats()[1]

    @property
    def iqr(self) -> float:
        _, _, p25, p75 = self._stats()
        return p75 - p25

    def meets_confidence(self, threshold: float = _IQR_WARN_THRESHOLD) -> bool:
        return self.iqr / self.median < threshold

    @property
    def significant_figures(self) -> int:
        """Digits of the median that the spread of the middle half of the times supports
        (1 to 4), as torch's estimate."""
        times = np.sort(np.asarray(self.times, dtype=np.float64))
        n = times.size
        middle = times[n // 4:int(np.ceil(3 * n / 4))]
        ci = max(1.645 * float(middle.std()) / np.sqrt(len(middle)), 25e-9)
        return min(max(int(np.floor(np.log10(self.median / ci))), 1), 4)

    @property
    def warnings(self) -> tuple:
        if len(self.raw_times) < 1 or not self.median:
            return ()
        rel_iqr = self.iqr / self.median * 100
        if not self.meets_confidence(_IQR_GROSS_WARN_THRESHOLD):
            why = "This suggests significant environmental influence."
        elif not self.meets_confidence(_IQR_WARN_THRESHOLD):
            why = "This could indicate system fluctuation."
        else:
            return ()
        return (f"  WARNING: Interquartile range is {rel_iqr:.1f}% of the median measurement."
                f"\n           {why}",)

    @property
    def has_warnings(self) -> bool:
        return bool(self.warnings)

    @property
    def title(self) -> str:
        return self.task_spec.title

    @property
    def env(self) -> str:
        return "Unspecified env" if self.task_spec.env is None else self.task_spec.env

    @property
    def as_row_name(self) -> str:
        return self.task_spec.sub_label or self.task_spec.stmt or "[Unknown]"

    def __repr__(self) -> str:
        n = len(self.raw_times)
        median, _, p25, p75 = self._stats()
        unit, scale = select_unit(median)
        threads = self.task_spec.num_threads
        lines = [object.__repr__(self), self.task_spec.summarize(),
                 f"  {'Median: ' if n > 1 else ''}{median / scale:.2f} {unit}"]
        if n >= 4:
            lines.append(f"  IQR:    {(p75 - p25) / scale:.2f} {unit} ({p25 / scale:.2f} to "
                         f"{p75 / scale:.2f})")
        lines.append(f"  {n} measurement{'s' if n > 1 else ''}, {self.number_per_run} runs "
                     f"{'per measurement,' if n > 1 else ','} {threads} "
                     f"thread{'s' if threads > 1 else ''}")
        lines += list(self.warnings)
        return "\n".join(line for line in "\n".join(lines).strip().splitlines())

    @staticmethod
    def merge(measurements) -> list:
        """Replicates of one task merged into one Measurement each (times per run, so
        ``number_per_run`` becomes 1)."""
        groups: dict = {}
        for m in measurements:
            groups.setdefault(m.task_spec, []).extend(m.times)
        return [Measurement(1, times, spec) for spec, times in groups.items()]


class Timer:
    """Times a Python statement, as ``torch.utils.benchmark.Timer`` (see the module
    docstring). ``stmt`` and ``setup`` are strings of code; ``globals`` the names they use
    (``fastconv`` is always there); ``label``, ``sub_label``, ``description`` and ``env``
    label the Measurement; ``num_threads`` the CPU kernels' threads while measuring."""

    def __init__(self, stmt: str = "pass", setup: str = "pass", global_setup: str = "",
                 timer=default_timer, globals=None, label=None, sub_label=None,
                 description=None, env=None, num_threads: int = 1, language="python"):
        if not isinstance(stmt, str):
            raise ValueError("Currently only a `str` stmt is supported.")
        if language not in ("python", "py") and getattr(language, "name", "") != "PYTHON":
            raise ValueError(f"Invalid language `{language}`: fastconv's Timer runs Python "
                             "statements only.")
        if global_setup:
            raise ValueError(f"global_setup is C++ only, got `{global_setup}`. Most likely this "
                             "code can simply be moved to `setup`.")
        if isinstance(num_threads, bool) or not isinstance(num_threads, int) or num_threads < 1:
            raise ValueError(f"num_threads must be a positive int, got {num_threads!r}")
        import fastconv

        self._globals = dict(globals or {})
        self._globals.setdefault("fastconv", fastconv)
        stmt = textwrap.dedent(stmt)
        stmt = (stmt[1:] if stmt and stmt[0] == "\n" else stmt).rstrip()
        setup = textwrap.dedent(setup)
        setup = (setup[1:] if setup and setup[0] == "\n" else setup).rstrip()
        self._timer = _timeit.Timer(stmt=stmt, setup=setup, timer=timer, globals=self._globals)
        self._task_spec = TaskSpec(stmt=stmt, setup=setup, global_setup=global_setup,
                                   label=label, sub_label=sub_label, description=description,
                                   env=env, num_threads=num_threads)

    def _timeit(self, number: int) -> float:
        return max(self._timer.timeit(number), 1e-9)

    def _threads(self):
        return _Threads(self._task_spec.num_threads)

    def timeit(self, number: int = 1000000) -> Measurement:
        """Run ``stmt`` ``number`` times (after a warm-up of ``number // 100``, at least 2)
        and return one measurement of all of them, as ``timeit.Timer.timeit``."""
        with self._threads():
            self._timeit(max(int(number // 100), 2))
            return Measurement(number, [self._timeit(number)], self._task_spec)

    def repeat(self, repeat: int = -1, number: int = -1):
        raise NotImplementedError("See `Timer.blocked_autorange.`")

    def autorange(self, callback=None):
        raise NotImplementedError("See `Timer.blocked_autorange.`")

    def _estimate_block_size(self, min_run_time: float) -> int:
        with self._threads():
            overhead = float(np.median([self._timeit(0) for _ in range(5)]))
            number = 1
            while True:
                taken = self._timeit(number)
                if overhead / taken <= 1e-4 and taken >= min_run_time / 1000:
                    break
                if taken > min_run_time or number * 10 > 2147483647:
                    break
                number *= 10
        return number

    def _measurement_loop(self, number, stop, min_run_time, max_run_time=None, callback=None):
        total, can_stop, times = 0.0, False, []
        with self._threads():
            while total < min_run_time or not can_stop:
                spent = self._timeit(number)
                times.append(spent)
                total += spent
                if callback:
                    callback(number, spent)
                can_stop = stop(times)
                if max_run_time and total > max_run_time:
                    break
        return times

    def blocked_autorange(self, callback=None, min_run_time: float = 0.2) -> Measurement:
        """Blocks of ``number_per_run`` runs (sized so the clock's overhead is negligible)
        until ``min_run_time`` seconds have been measured. ``callback(number, time)`` is
        called after each block."""
        number = self._estimate_block_size(min_run_time)
        times = self._measurement_loop(number, lambda times: True, min_run_time,
                                       callback=callback)
        return Measurement(number, times, self._task_spec)

    def adaptive_autorange(self, threshold: float = 0.1, *, min_run_time: float = 0.01,
                           max_run_time: float = 10.0, callback=None) -> Measurement:
        """Blocks until the interquartile range of the times is below ``threshold`` times
        their median (after at least 4 blocks and ``min_run_time`` seconds), or
        ``max_run_time`` seconds have been measured."""
        number = self._estimate_block_size(min_run_time=0.05)

        def stop(times):
            return len(times) > 3 and Measurement(number, times, self._task_spec) \
                .meets_confidence(threshold)

        times = self._measurement_loop(number, stop, min_run_time, max_run_time, callback)
        return Measurement(number, times, self._task_spec)


class _Threads:
    """The CPU kernels' thread count set for a block, and restored after it."""

    def __init__(self, n: int):
        self.n = n

    def __enter__(self):
        import fastconv

        self.previous = fastconv.get_num_threads()
        fastconv.set_num_threads(self.n)

    def __exit__(self, *exc):
        import fastconv

        fastconv.set_num_threads(self.previous)
        return False
