"""The CPU backend's uniform draws (csrc/random.cpp: Philox4x32-10), behind dropout, RReLU,
Gumbel noise and fractional pooling: the algorithm against a pure-Python reference and
Random123's known answer, independence from the thread count, statistics, and seeding; and
dropout's one-pass kernels against the draws."""

from __future__ import annotations

import numpy as np
import pytest
import reference as R

import fastconv
from fastconv import _C
from fastconv.backend import cpu as cpu_backend


def _expected(seed, offset, n):
    key = (seed & 0xFFFFFFFF, seed >> 32)
    words = [R.philox4x32_10((g & 0xFFFFFFFF, g >> 32, offset & 0xFFFFFFFF, offset >> 32), key)
             for g in range((n + 3) // 4)]
    return np.array([words[i // 4][i % 4] >> 8 for i in range(n)], np.float64) / 2**24


def test_known_answer():
    # Random123's known-answer vector for philox4x32-10, counter 0, key 0.
    want = [v >> 8 for v in (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)]
    np.testing.assert_array_equal(_C.random_uniform((4,), 0, 0).astype(np.float64),
                                  np.array(want, np.float64) / 2**24)


@pytest.mark.parametrize("n", [1, 3, 4, 1001])
def test_equals_the_reference_for_any_seed_and_length(rng, n):
    seed, offset = int(rng.integers(0, 2**63)) * 2 + 1, int(rng.integers(0, 2**40))
    got = _C.random_uniform((n,), seed, offset)
    assert got.dtype == np.float32 and got.shape == (n,)
    np.testing.assert_array_equal(got.astype(np.float64), _expected(seed, offset, n))


def test_shapes_and_empty():
    assert _C.random_uniform((2, 0, 3), 1).shape == (2, 0, 3)
    assert _C.random_uniform((), 1).shape == ()
    with pytest.raises(ValueError, match="negative size"):
        _C.random_uniform((2, -1), 1)


def test_the_thread_count_does_not_change_the_draws(rng):
    seed = int(rng.integers(0, 2**63))
    before = cpu_backend.get_num_threads()
    try:
        cpu_backend.set_num_threads(1)
        one = _C.random_uniform((300_001,), seed)
        cpu_backend.set_num_threads(2)
        two = _C.random_uniform((300_001,), seed)
    finally:
        cpu_backend.set_num_threads(before)
    np.testing.assert_array_equal(one, two)


def test_statistics(rng):
    """1M draws: mean, variance, 64-bin histogram and neighbour correlation of a uniform
    [0, 1) variable, each within about 5 standard errors."""
    u = cpu_backend.random_uniform((1 << 20,)).astype(np.float64)
    n = u.size
    assert u.min() >= 0.0 and u.max() < 1.0
    assert abs(u.mean() - 0.5) < 5 * np.sqrt(1 / 12 / n)
    assert abs(u.var() - 1 / 12) < 5 * np.sqrt(1 / 180 / n)
    counts = np.bincount((u * 64).astype(int), minlength=64)
    chi2 = ((counts - n / 64) ** 2 / (n / 64)).sum()
    assert chi2 < 63 + 5 * np.sqrt(2 * 63)
    assert abs(np.corrcoef(u[:-1], u[1:])[0, 1]) < 5 / np.sqrt(n)


def test_seeding_and_fresh_draws():
    fastconv.manual_seed(7)
    a, b = cpu_backend.random_uniform((100,)), cpu_backend.random_uniform(100)
    fastconv.manual_seed(7)
    np.testing.assert_array_equal(cpu_backend.random_uniform((100,)), a)
    assert not np.array_equal(a, b)
    state = fastconv.get_rng_state()
    c = cpu_backend.random_uniform((5, 3))
    fastconv.set_rng_state(state)
    np.testing.assert_array_equal(cpu_backend.random_uniform((5, 3)), c)



@pytest.mark.parametrize("n", [0, 1, 3, 4, 7, 1001, 100_003])
@pytest.mark.parametrize("p", [0.0, 0.1, 0.5, 0.9])
def test_dropout_kernels_apply_the_mask_of_the_draws(rng, n, p):
    """mask = 1 / (1 - p) where random_uniform's draw for the same seed is >= p: the keep-mask
    computed with NumPy from the draws, bit for bit (tails of partial Philox blocks included);
    y = x * mask (NaN and infinities as NumPy's product gives them) and dx = dy * mask."""
    x, dy = rng.standard_normal((2, n)).astype(np.float32)
    special = np.array([np.nan, np.inf, -np.inf, -0.0], np.float32)[:n]
    x[: special.size] = special
    seed = int(rng.integers(0, 2**64, dtype=np.uint64))
    y, mask = _C.dropout_forward(x, p, seed)
    want = (_C.random_uniform((n,), seed) >= np.float32(p)).astype(np.float32) \
        * np.float32(1.0 / (1.0 - p))
    np.testing.assert_array_equal(mask, want)
    np.testing.assert_array_equal(y, x * want)
    np.testing.assert_array_equal(_C.dropout_backward(dy, mask), dy * want)


def test_dropout_kernels_do_not_depend_on_the_thread_count(rng):
    x = rng.standard_normal((3, 100_001)).astype(np.float32)
    seed = int(rng.integers(0, 2**63))
    before = cpu_backend.get_num_threads()
    try:
        cpu_backend.set_num_threads(1)
        one = _C.dropout_forward(x, 0.3, seed)
        cpu_backend.set_num_threads(2)
        two = _C.dropout_forward(x, 0.3, seed)
    finally:
        cpu_backend.set_num_threads(before)
    for a, b in zip(one, two):
        np.testing.assert_array_equal(a, b)


def test_dropout_kernels_refuse_what_would_read_out_of_bounds(rng):
    x = rng.standard_normal((4, 5)).astype(np.float32)
    with pytest.raises(ValueError, match="p must be in"):
        _C.dropout_forward(x, 1.0, 1)
    with pytest.raises(ValueError, match="mask"):
        _C.dropout_backward(x, np.ones((4, 4), np.float32))
    with pytest.raises(TypeError):
        _C.dropout_forward(x.astype(np.float64), 0.5, 1)


def test_functional_dropout_draws_its_mask_from_the_seeded_generator(rng):
    """F.dropout's mask is the one the generator's next uniform draws give (what the
    broadcast masks of dropout2d use), so manual_seed reproduces it; its gradient is the
    same mask."""
    import fastconv.nn.functional as F

    x = fastconv.tensor(rng.standard_normal((8, 6, 5, 5)).astype(np.float32),
                        requires_grad=True)
    fastconv.manual_seed(11)
    y = F.dropout(x, 0.4)
    fastconv.manual_seed(11)
    keep = cpu_backend.random_uniform(x.shape) >= np.float32(0.4)
    want = keep.astype(np.float32) * np.float32(1 / 0.6)
    np.testing.assert_array_equal(y.detach().numpy(), x.detach().numpy() * want)
    g = rng.standard_normal(x.shape).astype(np.float32)
    y.backward(fastconv.tensor(g))
    np.testing.assert_array_equal(x.grad.numpy(), g * want)
