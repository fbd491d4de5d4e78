"""``fastconv.profiler``: what each op costs, as ``torch.profiler``.

    from fastconv.profiler import profile, record_function, ProfilerActivity
    with profile(activities=[ProfilerActivity.CPU], record_shapes=True) as prof:
        with record_function("model_inference"):
            loss = F.cross_entropy(model(x), y)
        loss.backward()
    print(prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=10))
    prof.export_chrome_trace("trace.json")      # chrome://tracing or ui.perfetto.dev

What is recorded: every op's forward, named ``fastconv::<op>`` in lower case as torch's
``aten::`` ops (each call of a :class:`fastconv.function.Function`: ``fastconv::matmul``,
``fastconv::conv2d``, ``fastconv::tan``; a custom ``fastconv.autograd.Function`` under its
class's name), every backward node, named like torch's (``MatMulBackward0``,
``TanBackward0``; ``<Function>Backward`` for custom Functions), and the ``record_function``
ranges. Each event has a start, a duration, its
thread, the events inside it (``cpu_children``), and with ``record_shapes`` its inputs'
shapes, with ``profile_memory`` the bytes of its outputs (``cpu_memory_usage``; the "self"
figure subtracts what the events inside it allocated), with ``with_stack`` the user-code
frames that called it. "Self" CPU time is an event's time minus that of the events inside it.

How: :meth:`fastconv.function.Function.apply` (the one place ops run) and the autograd
engine's backward loop read one module global, ``fastconv.function.profile_hook``; it is
None unless a profiler is recording, so an idle profiler costs one global read per op.

Differences from torch: times are CPU (host) times only. A CUDA op's time is the time to
launch it (CuPy runs kernels asynchronously); ``ProfilerActivity.CUDA`` is accepted and adds
no device timeline, and ``with_flops`` counts nothing. The ops are fastconv's own, so names
and counts differ from torch's ``aten::`` ops.
"""

from __future__ import annotations

import contextlib
import enum
import gzip
import json
import os
import threading
import time
import traceback
import warnings

__all__ = ["EventList", "FunctionEvent", "FunctionEventAvg", "ProfilerAction",
           "ProfilerActivity", "profile", "record_function", "schedule",
           "supported_activities", "tensorboard_trace_handler"]

_PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))


class ProfilerActivity(enum.Enum):
    """The activity groups torch's profiler takes; fastconv records CPU (host) activity."""

    CPU = 0
    XPU = 1
    MTIA = 2
    CUDA = 3
    HPU = 4
    PrivateUse1 = 5


class ProfilerAction(enum.Enum):
    """What the profiler does at a step (see :func:`schedule`)."""

    NONE = 0
    WARMUP = 1
    RECORD = 2
    RECORD_AND_SAVE = 3


def supported_activities() -> set:
    """CPU, and CUDA when a GPU is available (its ops are recorded as host events)."""
    from fastconv import cuda

    return {ProfilerActivity.CPU} | ({ProfilerActivity.CUDA} if cuda.is_available() else set())


def schedule(*, wait: int, warmup: int, active: int, repeat: int = 0, skip_first: int = 0,
             skip_first_wait: int = 0):
    """The profiler's action at each step, as torch's: skip ``skip_first`` steps, then cycles
    of ``wait`` idle steps, ``warmup`` steps and ``active`` recorded steps (the last one
    RECORD_AND_SAVE: the trace is handed to ``on_trace_ready``), ``repeat`` cycles (0: until
    the profiler stops). ``skip_first_wait`` skips the first cycle's wait."""
    if wait < 0 or warmup < 0 or active <= 0 or repeat < 0 or skip_first < 0:
        raise AssertionError(
            f"Invalid profiler schedule arguments. Got wait={wait} (need >= 0), warmup="
            f"{warmup} (need >= 0), active={active} (need > 0), repeat={repeat} (need >= 0), "
            f"skip_first={skip_first} (need >= 0).")
    if warmup == 0:
        warnings.warn("Profiler won't be using warmup, this can skew profiler results",
                      stacklevel=2)

    def schedule_fn(step: int) -> ProfilerAction:
        if step < 0:
            raise AssertionError(f"Step must be non-negative. Got {step}.")
        if step < skip_first:
            return ProfilerAction.NONE
        step -= skip_first
        if skip_first_wait != 0:
            step += wait
        num_steps = wait + warmup + active
        if repeat > 0 and step / num_steps >= repeat:
            return ProfilerAction.NONE
        mod_step = step % num_steps
        if mod_step < wait:
            return ProfilerAction.NONE
        if mod_step < wait + warmup:
            return ProfilerAction.WARMUP
        return (ProfilerAction.RECORD if mod_step < num_steps - 1
                else ProfilerAction.RECORD_AND_SAVE)

    return schedule_fn


def _always_record(step: int) -> ProfilerAction:
    return ProfilerAction.RECORD


# ----------------------------------------------------------------------------- events


def _format_time(us: float) -> str:
    if us >= 1e6:
        return f"{us / 1e6:.3f}s"
    if us >= 1e3:
        return f"{us / 1e3:.3f}ms"
    return f"{us:.3f}us"


def _format_share(us: float, total: float) -> str:
    if total == 0:
        return "NaN"
    return f"{us * 100.0 / total:.2f}%"


def _format_memory(nbytes: int) -> str:
    for unit, size in (("GB", 1024 ** 3), ("MB", 1024 ** 2), ("KB", 1024)):
        if abs(nbytes) >= size:
            return f"{nbytes / size:.2f} {unit}"
    return f"{nbytes} B"


class FunctionEvent:
    """One recorded op call or range. Times are in microseconds, as torch's."""

    count = 1
    device_type = "CPU"
    device_time_total = self_device_time_total = 0.0
    device_memory_usage = self_device_memory_usage = 0
    is_async = False
    is_legacy = False
    is_remote = False
    node_id = -1

    def __init__(self, id: int, name: str, thread: int, kind: str, start_ns: int,
                 input_shapes=None, stack=None):
        self.id, self.name, self.thread, self.kind = id, name, thread, kind
        self.start_ns, self.end_ns = start_ns, None
        self.input_shapes = input_shapes if input_shapes is not None else []
        self.stack = stack if stack is not None else []
        self.cpu_children: list[FunctionEvent] = []
        self.cpu_parent: FunctionEvent | None = None
        self.cpu_memory_usage = 0

    @property
    def key(self) -> str:
        return self.name

    @property
    def is_user_annotation(self) -> bool:
        return self.kind == "user_annotation"

    @property
    def time_range(self):
        return self.start_ns / 1e3, self.end_ns / 1e3

    @property
    def cpu_time_total(self) -> float:
        return (self.end_ns - self.start_ns) / 1e3

    @property
    def self_cpu_time_total(self) -> float:
        return self.cpu_time_total - sum(c.cpu_time_total for c in self.cpu_children)

    @property
    def cpu_time(self) -> float:
        return self.cpu_time_total

    @property
    def self_cpu_memory_usage(self) -> int:
        return self.cpu_memory_usage - sum(c.cpu_memory_usage for c in self.cpu_children)

    cpu_time_str = property(lambda self: _format_time(self.cpu_time))
    cpu_time_total_str = property(lambda self: _format_time(self.cpu_time_total))
    self_cpu_time_total_str = property(lambda self: _format_time(self.self_cpu_time_total))

    def __repr__(self) -> str:
        return (f"<FunctionEvent id={self.id} name={self.name} thread={self.thread} "
                f"cpu_time={self.cpu_time_str} self_cpu_time={self.self_cpu_time_total_str} "
                f"input_shapes={self.input_shapes} cpu_memory_usage={self.cpu_memory_usage}>")


class FunctionEventAvg:
    """The events of one name (and shapes / stack, when grouped by them), summed."""

    device_type = "CPU"
    device_time_total = self_device_time_total = 0.0
    device_memory_usage = self_device_memory_usage = 0
    is_async = False
    is_legacy = False
    is_remote = False
    node_id = -1

    def __init__(self):
        self.key = None
        self.count = 0
        self.cpu_time_total = self.self_cpu_time_total = 0.0
        self.cpu_memory_usage = self.self_cpu_memory_usage = 0
        self.input_shapes = None
        self.stack = None
        self.is_user_annotation = False
        self.cpu_parent = None

    def add(self, other) -> FunctionEventAvg:
        if self.key is None:
            self.key = other.key
            self.input_shapes = other.input_shapes
            self.stack = other.stack
            self.is_user_annotation = other.is_user_annotation
        self.count += other.count
        self.cpu_time_total += other.cpu_time_total
        self.self_cpu_time_total += other.self_cpu_time_total
        self.cpu_memory_usage += other.cpu_memory_usage
        self.self_cpu_memory_usage += other.self_cpu_memory_usage
        return self

    __iadd__ = add

    @property
    def cpu_time(self) -> float:
        return self.cpu_time_total / max(self.count, 1)

    cpu_time_str = property(lambda self: _format_time(self.cpu_time))
    cpu_time_total_str = property(lambda self: _format_time(self.cpu_time_total))
    self_cpu_time_total_str = property(lambda self: _format_time(self.self_cpu_time_total))

    def __repr__(self) -> str:
        return (f"<FunctionEventAvg key={self.key} self_cpu_time={self.self_cpu_time_total_str}"
                f" cpu_time={self.cpu_time_str} input_shapes={self.input_shapes} "
                f"cpu_memory_usage={self.cpu_memory_usage}>")


_SORT_KEYS = ("cpu_time", "cpu_time_total", "self_cpu_time_total", "count",
              "cpu_memory_usage", "self_cpu_memory_usage", "device_time_total",
              "self_device_time_total", "cuda_time_total", "self_cuda_time_total",
              "device_memory_usage", "self_device_memory_usage")


class EventList(list):
    """A list of FunctionEvents (or of FunctionEventAvgs) with torch's summaries."""

    def __init__(self, *args, profile_memory: bool = False, **kwargs):
        super().__init__(*args, **kwargs)
        self._profile_memory = profile_memory

    @property
    def self_cpu_time_total(self) -> float:
        return sum(e.self_cpu_time_total for e in self)

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        """One FunctionEventAvg per name (per name and input shapes with
        ``group_by_input_shape``; per name and the top ``group_by_stack_n`` frames), in the
        order of first appearance."""
        groups: dict = {}
        for e in self:
            key = (e.key,
                   str(e.input_shapes) if group_by_input_shape else None,
                   tuple(e.stack[:group_by_stack_n]) if group_by_stack_n > 0 else None)
            groups.setdefault(key, FunctionEventAvg()).add(e)
        averages = EventList(groups.values(), profile_memory=self._profile_memory)
        for avg in averages:
            if not group_by_input_shape:
                avg.input_shapes = None
            if group_by_stack_n <= 0:
                avg.stack = None
            else:
                avg.stack = avg.stack[:group_by_stack_n]
        return averages

    def total_average(self) -> FunctionEventAvg:
        total = FunctionEventAvg()
        for e in self:
            total.add(e)
        total.key = "Total"
        return total

    def table(self, sort_by=None, row_limit: int = 100, max_src_column_width: int = 75,
              max_name_column_width: int = 55, max_shapes_column_width: int = 80,
              header=None, top_level_events_only: bool = False, time_unit=None) -> str:
        """The events as torch's text table: Name, Self CPU %, Self CPU, CPU total %,
        CPU total, CPU time avg (then CPU Mem and Self CPU Mem with ``profile_memory``),
        # of Calls, and Input Shapes / Source Location when recorded; sorted (descending)
        by ``sort_by`` ("self_cpu_time_total", "cpu_time_total", "cpu_time", "count",
        "cpu_memory_usage", ...), at most ``row_limit`` rows. ``time_unit`` "s", "ms" or
        "us" fixes the unit of every time."""
        return _build_table(self, sort_by, row_limit, max_src_column_width,
                            max_name_column_width, max_shapes_column_width, header,
                            top_level_events_only, time_unit, self._profile_memory)

    def export_chrome_trace(self, path: str) -> None:
        _write_chrome_trace(path, [e for e in self if isinstance(e, FunctionEvent)])

    def __str__(self) -> str:
        return self.table()


def _build_table(events, sort_by, row_limit, max_src_column_width, max_name_column_width,
                 max_shapes_column_width, header, top_level_events_only, time_unit,
                 profile_memory) -> str:
    if len(events) == 0:
        return ""
    if sort_by is not None:
        attr = sort_by.replace("cuda", "device").replace("xpu", "device")
        if attr not in _SORT_KEYS or not hasattr(events[0], attr):
            raise AttributeError(f"table(sort_by={sort_by!r}): not a sort key; use one of "
                                 f"{', '.join(repr(k) for k in _SORT_KEYS)}")
        events = sorted(events, key=lambda e: getattr(e, attr), reverse=True)
    has_shapes = any(e.input_shapes for e in events)
    stacks = [e.stack for e in events if e.stack]
    name_width = max(len(e.key) for e in events) + 4
    if max_name_column_width is not None:
        name_width = min(name_width, max_name_column_width)
    width = 12
    headers = ["Name", "Self CPU %", "Self CPU", "CPU total %", "CPU total", "CPU time avg"]
    if profile_memory:
        headers += ["CPU Mem", "Self CPU Mem"]
    headers.append("# of Calls")
    columns = [(name_width, ">")] + [(width, ">")] * (len(headers) - 1)
    if has_shapes:
        shapes_width = max(len(str(e.input_shapes)) for e in events) + 4
        if max_shapes_column_width is not None:
            shapes_width = min(shapes_width, max_shapes_column_width)
        headers.append("Input Shapes")
        columns.append((shapes_width, ">"))
    if stacks:
        src_width = max(len(line) for s in stacks for line in s) + 4
        if max_src_column_width is not None:
            src_width = min(src_width, max_src_column_width)
        headers.append("Source Location")
        columns.append((src_width, "<"))
    row_format = "".join("{: " + align + str(w) + "}  " for w, align in columns)
    separator = "".join("-" * w + "  " for w, _ in columns)
    line_length = sum(w + 2 for w, _ in columns) - 2

    def fmt(us, default):
        return {"s": f"{us / 1e6:.3f}s", "ms": f"{us / 1e3:.3f}ms",
                "us": f"{us:.3f}us"}.get(time_unit, default)

    total_self = sum(e.self_cpu_time_total for e in events)
    lines = []
    if header is not None:
        lines += ["=" * line_length, header]
    if top_level_events_only:
        lines += ["=" * line_length, "This report only display top-level ops statistics"]
    lines += [separator, row_format.format(*headers), separator]
    shown = 0
    for e in events:
        if shown == row_limit:
            break
        if top_level_events_only and e.cpu_parent is not None:
            continue
        shown += 1
        name = e.key
        if max_name_column_width is not None and len(name) >= max_name_column_width - 3:
            name = name[:max_name_column_width - 3] + "..."
        row = [name, _format_share(e.self_cpu_time_total, total_self),
               fmt(e.self_cpu_time_total, _format_time(e.self_cpu_time_total)),
               _format_share(e.cpu_time_total, total_self),
               fmt(e.cpu_time_total, _format_time(e.cpu_time_total)),
               fmt(e.cpu_time, _format_time(e.cpu_time))]
        if profile_memory:
            row += [_format_memory(e.cpu_memory_usage), _format_memory(e.self_cpu_memory_usage)]
        row.append(e.count)
        if has_shapes:
            row.append(str(e.input_shapes)[:shapes_width])
        if stacks:
            src = e.stack[0] if e.stack else ""
            if len(src) > src_width:
                src = "..." + src[len(src) - src_width + 3:]
            row.append(src)
        lines.append(row_format.format(*row))
        # the further frames of the stack, one per line under the first
        for frame in (e.stack[1:] if stacks and e.stack else []):
            lines.append(row_format.format(*([""] * (len(headers) - 1) + [frame[:src_width]])))
    lines.append(separator)
    lines.append(f"Self CPU time total: {_format_time(total_self)}")
    return "\n".join(lines) + "\n"


def _write_chrome_trace(path: str, events) -> None:
    """The events as Chrome trace JSON (complete "X" events, microseconds)."""
    pid = os.getpid()
    trace = [{"ph": "M", "name": "process_name", "pid": pid, "tid": 0,
              "args": {"name": "fastconv"}}]
    threads = sorted({e.thread for e in events})
    for i, tid in enumerate(threads):
        trace.append({"ph": "M", "name": "thread_name", "pid": pid, "tid": tid,
                      "args": {"name": f"thread {i} ({tid})"}})
    for e in events:
        args = {"External id": e.id}
        if e.input_shapes:
            args["Input Dims"] = e.input_shapes
        if e.cpu_memory_usage:
            args["Memory"] = e.cpu_memory_usage
        if e.stack:
            args["Call stack"] = ";".join(e.stack)
        trace.append({"ph": "X", "cat": e.kind, "name": e.name, "pid": pid, "tid": e.thread,
                      "ts": e.start_ns / 1e3, "dur": (e.end_ns - e.start_ns) / 1e3,
                      "args": args})
    doc = {"schemaVersion": 1, "displayTimeUnit": "ms", "traceName": str(path),
           "traceEvents": trace}
    opener = gzip.open if str(path).endswith(".gz") else open
    with opener(path, "wt") as f:
        json.dump(doc, f)


# ----------------------------------------------------------------------------- recording


def _nbytes(out) -> int:
    if isinstance(out, (tuple, list)):
        return sum(_nbytes(o) for o in out)
    if type(out).__module__.startswith("cupy"):  # device memory: not the CPU's
        return 0
    return int(getattr(out, "nbytes", 0) or 0)


def _shape(a):
    from fastconv.tensor import Tensor

    if isinstance(a, Tensor):
        a = a.data
    shape = getattr(a, "shape", None)
    return [int(n) for n in shape] if shape is not None else []


class _Recorder:
    """The events of one recording; installed as ``fastconv.function.profile_hook`` while it
    records. Each thread has its own stack of open events (DataLoader workers are threads)."""

    def __init__(self, record_shapes: bool, profile_memory: bool, with_stack: bool):
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack = with_stack
        self.events: list[FunctionEvent] = []
        self._local = threading.local()
        self._ids = iter(range(1 << 62))
        self._lock = threading.Lock()

    def _stack(self) -> list:
        stack = getattr(self._local, "stack", None)
        if stack is None:
            stack = self._local.stack = []
        return stack

    def begin(self, name: str, kind: str, inputs=None) -> FunctionEvent:
        shapes = [_shape(a) for a in inputs] if self.record_shapes and inputs is not None \
            else None
        stack = _user_stack() if self.with_stack and kind != "user_annotation" else None
        with self._lock:
            event = FunctionEvent(next(self._ids), name, threading.get_ident(), kind, 0,
                                  shapes, stack)
            self.events.append(event)
        open_events = self._stack()
        if open_events:
            event.cpu_parent = open_events[-1]
            open_events[-1].cpu_children.append(event)
        open_events.append(event)
        event.start_ns = time.perf_counter_ns()
        return event

    def end(self, event: FunctionEvent, out=None) -> None:
        end = time.perf_counter_ns()
        if event.end_ns is not None:
            return
        event.end_ns = end
        if self.profile_memory and out is not None:
            event.cpu_memory_usage = _nbytes(out)
        open_events = self._stack()
        if event in open_events:  # events opened inside and left open end here too
            while open_events:
                inner = open_events.pop()
                if inner is event:
                    break
                if inner.end_ns is None:
                    inner.end_ns = end

    def close(self) -> None:
        """End every event still open (a range around the profiler's stop, another thread's
        op in flight) at this moment."""
        end = time.perf_counter_ns()
        for e in self.events:
            if e.end_ns is None:
                e.end_ns = end

    # -- the two calls of fastconv.function / fastconv.autograd ---------------------------
    def run_forward(self, fn, args, kwargs):
        event = self.begin("fastconv::?", "cpu_op", args)
        out = None
        try:
            out = fn.forward(*args, **kwargs)
            return out
        finally:
            event.name = "fastconv::" + fn.profile_name()
            self.end(event, out)

    def run_backward(self, fn, dy):
        event = self.begin(fn.profile_backward_name(), "cpu_op", (dy,))
        out = None
        try:
            out = fn.backward(dy)
            return out
        finally:
            self.end(event, out)


def _user_stack(limit: int = 8) -> list:
    """The innermost frames outside fastconv, innermost first, as "file(line): function"."""
    frames = []
    for frame in reversed(traceback.extract_stack()[:-2]):
        if os.path.abspath(frame.filename).startswith(_PACKAGE_DIR + os.sep):
            continue
        frames.append(f"{frame.filename}({frame.lineno}): {frame.name}")
        if len(frames) == limit:
            break
    return frames


def _install(recorder) -> None:
    from fastconv import function

    current = function.profile_hook
    if current is not None and current is not recorder:
        raise RuntimeError("a fastconv profiler is already recording: profilers cannot be "
                           "nested or run at the same time")
    function.profile_hook = recorder


def _uninstall(recorder) -> None:
    from fastconv import function

    if function.profile_hook is recorder:
        function.profile_hook = None
    recorder.close()


def _active():
    from fastconv import function

    return function.profile_hook


# ----------------------------------------------------------------------------- the public API


class record_function(contextlib.ContextDecorator):
    """A named range in the profile: ``with record_function("forward"): ...`` or as a
    decorator, ``@record_function("step")``. Ops run inside it are its children (its self
    time excludes theirs). Does nothing when no profiler is recording."""

    def __init__(self, name: str, args: str | None = None):
        self.name, self.args = name, args
        self._open = []

    def __enter__(self):
        recorder = _active()
        self._open.append((recorder, recorder.begin(self.name, "user_annotation"))
                          if recorder is not None else None)
        return self

    def __exit__(self, *exc):
        entry = self._open.pop() if self._open else None
        if entry is not None:
            entry[0].end(entry[1])
        return False


class profile:
    """Record the ops run inside ``with profile(...) as prof:`` (see the module docstring).

    Args:
        activities: ProfilerActivity values (CPU is what is recorded; CUDA is accepted).
        schedule: ``schedule(step) -> ProfilerAction`` (see :func:`schedule`): which calls
            of :meth:`step` delimit recorded steps; None records from start to stop.
        on_trace_ready: called with the profiler at the end of each recorded cycle (with no
            schedule, at stop), e.g. :func:`tensorboard_trace_handler`.
        record_shapes: keep each op's input shapes (an "Input Shapes" column when grouped
            by them: ``key_averages(group_by_input_shape=True)``).
        profile_memory: keep the bytes each op's outputs take ("CPU Mem" columns).
        with_stack: keep the user-code frames that called each op ("Source Location").
        with_flops, with_modules, experimental_config, execution_trace_observer, acc_events,
            custom_trace_id_callback, post_processing_timeout_s: accepted for torch's API
            (no effect). ``use_cuda`` (deprecated in torch) warns.

    With a schedule, each step is also recorded as a ``ProfilerStep#<n>`` range, as torch's.
    """

    def __init__(self, *, activities=None, schedule=None, on_trace_ready=None,
                 record_shapes: bool = False, profile_memory: bool = False,
                 with_stack: bool = False, with_flops: bool = False,
                 with_modules: bool = False, experimental_config=None,
                 execution_trace_observer=None, acc_events: bool = False, use_cuda=None,
                 custom_trace_id_callback=None, post_processing_timeout_s=None):
        if activities is not None:
            activities = set(activities)
            for a in activities:
                if not isinstance(a, ProfilerActivity):
                    raise TypeError(f"profile(activities=...): expected ProfilerActivity "
                                    f"values, got {a!r}")
            if not activities:
                raise AssertionError("No activities specified for the profiler")
        else:
            activities = supported_activities()
        if use_cuda is not None:
            warnings.warn("`use_cuda` is deprecated, use `activities` argument instead",
                          FutureWarning, stacklevel=2)
        if schedule is not None and not callable(schedule):
            raise TypeError("profile(schedule=...) must be a callable of the step number")
        if on_trace_ready is not None and not callable(on_trace_ready):
            raise TypeError("profile(on_trace_ready=...) must be a callable of the profiler")
        self.activities = activities
        self.schedule = schedule if schedule is not None else _always_record
        self.record_steps = schedule is not None
        self.on_trace_ready = on_trace_ready
        self.record_shapes, self.profile_memory = bool(record_shapes), bool(profile_memory)
        self.with_stack, self.with_flops = bool(with_stack), bool(with_flops)
        self.with_modules = bool(with_modules)
        self.step_num = 0
        self.current_action = self.schedule(self.step_num)
        self._recorder = None
        self._events = EventList(profile_memory=self.profile_memory)
        self._step_range = None

    # -- recording cycle ---------------------------------------------------------------------
    def _start_trace(self) -> None:
        self._recorder = _Recorder(self.record_shapes, self.profile_memory, self.with_stack)
        _install(self._recorder)

    def _stop_trace(self) -> None:
        if self._recorder is not None:
            _uninstall(self._recorder)
            self._events = EventList(self._recorder.events, profile_memory=self.profile_memory)
            self._recorder = None

    def _trace_ready(self) -> None:
        if self.on_trace_ready is not None:
            self.on_trace_ready(self)

    def _transit(self, prev, current) -> None:
        A = ProfilerAction
        recording = (A.RECORD, A.RECORD_AND_SAVE)
        if prev == A.RECORD_AND_SAVE:
            self._stop_trace()
            self._trace_ready()
            if current in recording:
                self._start_trace()
        elif prev == A.RECORD:
            if current not in recording:
                if current is not None:
                    warnings.warn(f"Incorrect schedule: RECORD followed by {current.name}",
                                  stacklevel=3)
                self._stop_trace()
                if current is None:
                    self._trace_ready()
        elif current in recording:
            self._start_trace()

    def _open_step_range(self) -> None:
        if self.record_steps:
            self._step_range = record_function(f"ProfilerStep#{self.step_num}")
            self._step_range.__enter__()

    def _close_step_range(self) -> None:
        if self._step_range is not None:
            self._step_range.__exit__(None, None, None)
            self._step_range = None

    def start(self) -> None:
        self._transit(ProfilerAction.NONE, self.current_action)
        self._open_step_range()

    def stop(self) -> None:
        self._close_step_range()
        self._transit(self.current_action, None)

    def step(self) -> None:
        """The next step begins (the schedule decides whether it is recorded)."""
        self._close_step_range()
        prev = self.current_action
        self.step_num += 1
        self.current_action = self.schedule(self.step_num)
        self._transit(prev, self.current_action)
        self._open_step_range()

    def __enter__(self):
        self.start()
        return self

    def __exit__(self, *exc):
        self.stop()
        return False

    # -- results ----------------------------------------------------------------------------
    def events(self) -> EventList:
        """The events of the last recorded cycle, in the order they began."""
        return self._events

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        """The events summed per name (see :meth:`EventList.key_averages`); ``.table(...)``
        prints them."""
        return self._events.key_averages(group_by_input_shape, group_by_stack_n)

    def export_chrome_trace(self, path: str) -> None:
        """Write the events as Chrome trace JSON (gzip-compressed when ``path`` ends in .gz),
        for chrome://tracing or https://ui.perfetto.dev."""
        self._events.export_chrome_trace(path)

    @property
    def self_cpu_time_total(self) -> float:
        return self._events.self_cpu_time_total


def tensorboard_trace_handler(dir_name: str, worker_name: str | None = None,
                              use_gzip: bool = False):
    """An ``on_trace_ready`` that writes each trace to
    ``dir_name/<worker_name>.<time_ns>.pt.trace.json`` (``.gz`` with ``use_gzip``);
    ``worker_name`` defaults to "<hostname>_<pid>"."""
    import socket

    def handler(prof) -> None:
        os.makedirs(dir_name, exist_ok=True)
        name = worker_name or f"{socket.gethostname()}_{os.getpid()}"
        file_name = f"{name}.{time.time_ns()}.pt.trace.json" + (".gz" if use_gzip else "")
        prof.export_chrome_trace(os.path.join(dir_name, file_name))

    return handler


class _AutogradProfile:
    """``fastconv.autograd.profiler.profile``: torch's older profiler interface, recording
    from ``__enter__`` to ``__exit__`` (``enabled=False`` records nothing); the results are
    ``function_events``, ``key_averages()``, ``table()``, ``export_chrome_trace()``,
    ``total_average()`` and ``self_cpu_time_total``."""

    def __init__(self, enabled: bool = True, *, use_cuda: bool = False, use_device=None,
                 record_shapes: bool = False, with_flops: bool = False,
                 profile_memory: bool = False, with_stack: bool = False,
                 with_modules: bool = False, use_kineto: bool = False, use_cpu: bool = True,
                 experimental_config=None, acc_events: bool = False,
                 custom_trace_id_callback=None):
        self.enabled = enabled
        self.record_shapes, self.profile_memory = record_shapes, profile_memory
        self.with_stack = with_stack
        self.function_events = None
        self._recorder = None
        self.entered = False

    def __enter__(self):
        if not self.enabled:
            return self
        if self.entered:
            raise RuntimeError("Profiler context manager is not reentrant")
        self.entered = True
        self._recorder = _Recorder(self.record_shapes, self.profile_memory, self.with_stack)
        _install(self._recorder)
        return self

    def __exit__(self, *exc):
        if not self.enabled:
            return False
        _uninstall(self._recorder)
        self.function_events = EventList(self._recorder.events,
                                         profile_memory=self.profile_memory)
        return False

    def _check_finished(self):
        if self.function_events is None:
            raise RuntimeError("Profiler didn't finish running")

    def key_averages(self, group_by_input_shape: bool = False, group_by_stack_n: int = 0,
                     group_by_overload_name: bool = False) -> EventList:
        self._check_finished()
        return self.function_events.key_averages(group_by_input_shape, group_by_stack_n)

    def table(self, sort_by=None, row_limit: int = 100, **kwargs) -> str:
        self._check_finished()
        return self.function_events.table(sort_by=sort_by, row_limit=row_limit, **kwargs)

    def export_chrome_trace(self, path: str) -> None:
        self._check_finished()
        self.function_events.export_chrome_trace(path)

    def total_average(self) -> FunctionEventAvg:
        self._check_finished()
        return self.function_events.total_average()

    @property
    def self_cpu_time_total(self) -> float:
        self._check_finished()
        return self.function_events.self_cpu_time_total

    def __str__(self) -> str:
        self._check_finished()
        return str(self.function_events)

