"""The bfloat16 GEMM (csrc/gemm_bf16.h) next to the float32 one on conv-shaped products.

Each benchmark id is ``<kernels>-<shape>``; groups pair the two. A shape is the GEMM of one
image of a convolution layer, y = W col: M = output channels, N = output pixels, K = input
channels x kernel taps. ``extra_info`` carries the FLOP count and the bfloat16 variant, so
report.py turns times into GFLOP/s. The bfloat16 rows run only where the CPU has bfloat16
kernels (``cpu.bf16_kernels()`` is 'amx' or 'avx512bf16'): the emulations are for tests,
orders of magnitude slower, and are not timed. Run with
``pytest benchmarks/bench_bf16_gemm.py --benchmark-enable``.
"""

import numpy as np
import pytest

from fastconv.backend import cpu as cpu_backend

ROUNDS = dict(rounds=7, warmup_rounds=2, iterations=1)

SHAPES = {  # name: (M, N, K), one image's forward GEMM
    "alexnet_conv1": (64, 55 * 55, 3 * 11 * 11),
    "alexnet_conv3": (384, 13 * 13, 192 * 9),
    "nin_cifar_1x1": (160, 32 * 32, 192),
    "vgg_conv_3x3": (256, 16 * 16, 256 * 9),
    "googlenet_3a_1x1": (64, 28 * 28, 192),
}
KERNELS = ["fp32", "bf16"]


@pytest.mark.parametrize("shape", list(SHAPES))
@pytest.mark.parametrize("kernels", KERNELS)
def test_gemm(benchmark, kernels, shape):
    M, N, K = SHAPES[shape]
    rng = np.random.default_rng(0)
    a = rng.standard_normal((M, K), dtype=np.float32)
    b = rng.standard_normal((K, N), dtype=np.float32)
    if kernels == "bf16":
        variant = cpu_backend.bf16_kernels()
        if variant not in ("amx", "avx512bf16"):
            pytest.skip(f"no bfloat16 kernels on this CPU (bf16_kernels() is {variant!r}; "
                        "they need AVX512-BF16 or AMX-BF16)")
        run = lambda: cpu_backend.gemm_bf16(a, b)  # noqa: E731
    else:
        variant = None
        run = lambda: cpu_backend.gemm(a, b)  # noqa: E731
    benchmark.group = f"gemm-{shape}"
    benchmark.extra_info.update(flops=2.0 * M * N * K, shape=shape, bf16_kernels=variant)
    y = benchmark.pedantic(run, **ROUNDS)
    assert y.shape == (M, N)
