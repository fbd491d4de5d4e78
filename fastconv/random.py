"""The random-number generator behind dropout and the initialisers.

One seeded NumPy generator (PCG64) serves the CPU; the CUDA backend keeps its
own counter-based generator on the device, seeded from the same ``manual_seed`` call. Its state can be
saved and restored as a JSON-serialisable dict, which checkpoints use to make a
resumed run bit-exact.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.Generator(np.random.PCG64())
_seed = None  # the last manual_seed, for backends loaded after it
_seed_listeners = []  # callbacks(seed) of backends that keep their own generator


def manual_seed(seed: int) -> None:
    """Seed every generator fastconv uses (CPU and, when loaded, CUDA)."""
    global _generator, _seed
    if not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _seed = int(seed)
    _generator = np.random.Generator(np.random.PCG64(_seed))
    for listener in _seed_listeners:
        listener(int(seed))


def initial_seed() -> int | None:
    """The seed of the last ``manual_seed`` call (None before any)."""
    return _seed


def generator() -> np.random.Generator:
    """The CPU generator (draws for dropout masks and weight initialisation)."""
    return _generator


def get_rng_state() -> dict:
    """The CPU generator's state as a JSON-serialisable dict."""
    state = _generator.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("set_rng_state: expected a dict from fastconv.get_rng_state()")
    _generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {k: int(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def uniform(shape, device: str):
    """Uniform [0, 1) float32 draws on ``device``."""
    if device == "cpu":
        return _generator.random(shape, dtype=np.float32)
    from fastconv.backend import get_backend

    return get_backend(device).random_uniform(shape)
