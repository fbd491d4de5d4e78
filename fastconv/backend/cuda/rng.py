"""The GPU's random numbers: a counter-based Philox4x32-10 generator (``elementwise.cu``).

Its state (seed, call offset) lives in device memory, so a captured CUDA graph draws fresh
numbers on every replay; it is reseeded by :func:`fastconv.manual_seed` and saved with
:func:`fastconv.get_rng_state` (the package registers it with ``fastconv.random``).
"""

from __future__ import annotations

import hashlib
import json

import cupy
import numpy as np

from .launch import current_device, get_kernel, i64, launch

_rng_states: dict = {}     # device -> cupy uint64[2] = (seed, offset), updated on the device
_seed = None


def _initial_seed() -> int:
    """The seed of the last fastconv.manual_seed, else one derived from the CPU generator.

    Deriving it hashes the CPU generator's state without drawing from it, so the CPU stream
    is untouched and the same program with the same manual_seed gets the same GPU numbers.
    """
    if _seed is not None:
        return _seed
    import fastconv.random as _frandom

    if _frandom.initial_seed() is not None:
        return _frandom.initial_seed()
    state = json.dumps(_frandom.cpu_rng_state(), sort_keys=True).encode()
    return int.from_bytes(hashlib.sha256(state).digest()[:8], "little") >> 1


def _rng_state():
    dev = current_device()
    st = _rng_states.get(dev)
    if st is None:
        st = cupy.array(np.array([_initial_seed(), 0], dtype=np.uint64))
        _rng_states[dev] = st
    return st


def manual_seed(seed: int) -> None:
    """Reseed the GPU generator of every device in use: state = (seed, offset 0).

    Called by :func:`fastconv.manual_seed` (this module registers its generator with
    ``fastconv.random`` when it is imported). The state arrays are updated in place, so
    captured graphs that read them see the new seed.
    """
    global _seed
    _seed = int(seed) & 0xFFFFFFFFFFFFFFFF
    host = np.array([_seed, 0], dtype=np.uint64)
    for st in _rng_states.values():
        st[...] = cupy.asarray(host)


def get_rng_state() -> dict:
    """The current device's generator state as a JSON-serialisable dict (synchronises)."""
    st = cupy.asnumpy(_rng_state())
    return {"generator": "philox4x32-10", "seed": int(st[0]), "offset": int(st[1])}


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state` on the current device."""
    if not isinstance(state, dict) or state.get("generator") != "philox4x32-10":
        raise ValueError("set_rng_state: expected a dict from "
                         "fastconv.backend.cuda.get_rng_state()")
    host = np.array([int(state["seed"]), int(state["offset"])], dtype=np.uint64)
    _rng_state()[...] = cupy.asarray(host)


def _shape(shape) -> tuple:
    if isinstance(shape, (int, np.integer)):
        return (int(shape),)
    return tuple(int(s) for s in shape)


def random_uniform(shape):
    """Uniform [0, 1) float32 draws on the current device (Philox4x32-10, 24-bit mantissa)."""
    out = cupy.empty(_shape(shape), dtype=np.float32)
    st = _rng_state()
    if out.size:
        launch("elementwise.cu", "random_uniform", (out.size + 3) // 4,
                (out, i64(out.size), st))
    get_kernel("elementwise.cu", "rng_advance")((1,), (1,), (st,))
    return out
