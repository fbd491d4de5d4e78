"""Turn a pytest-benchmark JSON file into the Markdown tables of BENCHMARKS.md.

    python -m pytest benchmarks --benchmark-enable --benchmark-only \
        --benchmark-json=benchmarks/results/cpu.json
    python benchmarks/report.py benchmarks/results/cpu.json > table.md

Each group pairs fastconv with a baseline (torch, onnxruntime, or numpy for sgemm); the table gives the
median time of each, the ratio fastconv / baseline (below 1 means fastconv is faster) and,
where the benchmark recorded its FLOP count, fastconv's GFLOP/s and its share of the
measured sgemm throughput.
"""

import json
import sys
from collections import defaultdict


def load(path):
    with open(path) as f:
        return json.load(f)


def table(data):
    groups = defaultdict(dict)
    flops = {}
    for b in data["benchmarks"]:
        impl = b["params"].get("impl", "fastconv")
        groups[b["group"]][impl] = b["stats"]["median"]
        if "flops" in b.get("extra_info", {}):
            flops[b["group"]] = b["extra_info"]["flops"]
    sgemm = groups.get("sgemm 2048^3", {}).get("fastconv")
    peak = flops["sgemm 2048^3"] / sgemm / 1e9 if sgemm else None
    lines = ["| benchmark | fastconv ms | baseline ms | ratio | fastconv GFLOP/s | % of sgemm |",
             "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for group in sorted(groups):
        impls = groups[group]
        ours = impls.get("fastconv")
        base = impls.get("torch", impls.get("onnxruntime", impls.get("numpy")))
        ratio = f"{ours / base:.2f}" if ours and base else "-"
        gflops = pct = "-"
        if ours and group in flops:
            g = flops[group] / ours / 1e9
            gflops = f"{g:.0f}"
            pct = f"{100 * g / peak:.0f}%" if peak else "-"
        fmt = lambda t: f"{t * 1e3:.2f}" if t else "-"  # noqa: E731
        lines.append(f"| {group} | {fmt(ours)} | {fmt(base)} | {ratio} | {gflops} | {pct} |")
    return "\n".join(lines)


def machine(data):
    m = data.get("machine_info", {})
    cpu = m.get("cpu", {})
    kernels = m.get("fastconv", {})
    ours = (f", fastconv conv kernels {kernels.get('conv_kernels')}, OpenBLAS "
            f"{kernels.get('blas_corename')}" if kernels else "")
    return (f"{cpu.get('brand_raw', m.get('processor', '?'))}, {cpu.get('count', '?')} logical "
            f"cores, Python {m.get('python_version', '?')}{ours}, {data.get('datetime', '')}")


if __name__ == "__main__":
    data = load(sys.argv[1])
    print(f"Machine: {machine(data)}\n")
    print(table(data))
