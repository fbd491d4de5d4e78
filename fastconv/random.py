"""The random-number generator behind dropout and the initialisers.

One seeded NumPy generator (PCG64) serves the CPU: the initialisers draw from it, and
:func:`uniform` on the CPU (dropout masks) draws one 64-bit key from it per call for a
Philox4x32-10 fill in ``fastconv._C`` (all cores). The CUDA backend keeps its own
counter-based generator (the same Philox) on the device, seeded from the same
``manual_seed`` call (it registers itself with :func:`register_device_generator` when
loaded).
The state of all of them can be saved and restored as one JSON-serialisable
dict, which checkpoints use to make a resumed run bit-exact.
"""

from __future__ import annotations

import numpy as np

_generator = np.random.Generator(np.random.PCG64())
_seed = None  # the last manual_seed, for backends loaded after it
_device_generators = {}  # device -> (manual_seed, get_state, set_state) of a backend's generator
_pending_states = {}  # device -> state restored before that device's backend was loaded


def register_device_generator(device: str, seed, get_state, set_state) -> None:
    """Let ``manual_seed``, ``get_rng_state`` and ``set_rng_state`` cover a backend's own
    generator. A state restored before the backend was loaded is applied now."""
    _device_generators[device] = (seed, get_state, set_state)
    if device in _pending_states:
        set_state(_pending_states.pop(device))


def manual_seed(seed: int) -> DefaultGenerator:
    """Seed every generator fastconv uses (CPU and, when loaded, CUDA); returns
    :data:`default_generator`, as ``torch.manual_seed`` does."""
    global _generator, _seed
    if isinstance(seed, bool) or not isinstance(seed, (int, np.integer)) or seed < 0:
        raise ValueError(f"manual_seed: seed must be a non-negative int, got {seed!r}")
    _seed = int(seed)
    _generator = np.random.Generator(np.random.PCG64(_seed))
    _pending_states.clear()
    for seed_device, _, _ in _device_generators.values():
        seed_device(_seed)
    return default_generator


def seed() -> int:
    """Seed every generator from fresh entropy and return that seed (``torch.seed``)."""
    fresh = int(np.random.SeedSequence().entropy % 2**63)
    manual_seed(fresh)
    return fresh


class DefaultGenerator:
    """The global generator as an object (``fastconv.default_generator``, what
    ``manual_seed`` returns): seeding or restoring it acts on fastconv's global state."""

    device = "cpu"

    def manual_seed(self, seed: int) -> DefaultGenerator:
        return manual_seed(seed)

    def seed(self) -> int:
        return seed()

    def initial_seed(self) -> int | None:
        return _seed

    def get_state(self) -> dict:
        return get_rng_state()

    def set_state(self, state: dict) -> DefaultGenerator:
        set_rng_state(state)
        return self

    def __repr__(self) -> str:
        return "<fastconv.default_generator>"


default_generator = DefaultGenerator()


def initial_seed() -> int | None:
    """The seed of the last ``manual_seed`` call (None before any)."""
    return _seed


def generator() -> np.random.Generator:
    """The CPU generator (draws for dropout masks and weight initialisation)."""
    return _generator


def get_rng_state() -> dict:
    """Every generator's state as one JSON-serialisable dict: the CPU generator's, plus
    ``"devices": {device: state}`` for the backends loaded with their own generator."""
    state = cpu_rng_state()
    # A backend's pending state is dropped when it registers, so the two never overlap.
    devices = dict(_pending_states)
    devices.update((device, get()) for device, (_, get, _) in _device_generators.items())
    if devices:
        state["devices"] = devices
    return state


def set_rng_state(state: dict) -> None:
    """Restore a state returned by :func:`get_rng_state`. A device state whose backend is not
    loaded yet is kept and applied when it loads (as when a GPU run resumes)."""
    if not isinstance(state, dict) or state.get("bit_generator") != "PCG64":
        raise ValueError("set_rng_state: expected a dict from fastconv.get_rng_state()")
    devices = state.get("devices", {})
    if not isinstance(devices, dict):
        raise ValueError(f"set_rng_state: 'devices' must be a dict, got {type(devices).__name__}")
    _set_cpu_rng_state(state)
    for device, device_state in devices.items():
        if device in _device_generators:
            _device_generators[device][2](device_state)
        else:
            _pending_states[device] = device_state


def cpu_rng_state() -> dict:
    """The CPU generator's state alone, as a JSON-serialisable dict."""
    state = _generator.bit_generator.state
    return {
        "bit_generator": state["bit_generator"],
        "state": {k: str(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def _set_cpu_rng_state(state: dict) -> None:
    _generator.bit_generator.state = {
        "bit_generator": "PCG64",
        "state": {k: int(v) for k, v in state["state"].items()},
        "has_uint32": int(state["has_uint32"]),
        "uinteger": int(state["uinteger"]),
    }


def uniform(shape, device: str):
    """Uniform [0, 1) float32 draws on ``device`` (from its backend's generator)."""
    from fastconv.backend import get_backend

    return get_backend(device).random_uniform(shape)
