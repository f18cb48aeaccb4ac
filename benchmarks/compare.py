"""Compiled kernels vs the pure-PyTorch reference, side by side in one run.

For each op, size and pass it reports the median time of both backends (interleaved, so
machine noise hits both alike), the speed-up, voxels per second and peak memory. Peak memory
is measured in a fresh process per case: on the CPU from the kernel's resident-set high-water
mark (reset through /proc/self/clear_refs), on CUDA from torch.cuda.max_memory_allocated.

    python benchmarks/compare.py                 # 2D sequence size, CPU
    python benchmarks/compare.py --sizes 2d-seq 3d-cpu --markdown table.md
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from cases import FIELDS, OPS, PASSES, applies, case_gradients, make_case, voxels  # noqa: E402

from motionext import ops  # noqa: E402


def median_times(op, size, backward, device, repeats, min_seconds, field="noise"):
    """Interleave the two backends; return their median seconds per call."""
    runs = {}
    for backend in ("compiled", "reference"):
        with ops.use_backend(backend):
            fn = make_case(op, size, backward, device, field=field)
            fn()  # warm-up
        runs[backend] = fn
    times = {"compiled": [], "reference": []}
    # CUDA kernels run asynchronously: each case syncs at its end (cases.py), and this sync keeps
    # the other backend's queued work out of the clock
    sync = torch.cuda.synchronize if str(device).startswith("cuda") else (lambda: None)
    start = time.perf_counter()
    while len(times["compiled"]) < repeats or time.perf_counter() - start < min_seconds:
        for backend, fn in runs.items():
            with ops.use_backend(backend):
                sync()
                t0 = time.perf_counter()
                fn()
                sync()
                times[backend].append(time.perf_counter() - t0)
        if len(times["compiled"]) >= 200:
            break
    return {k: statistics.median(v) for k, v in times.items()}


def cpu_description() -> str:
    """The CPU's model and cache sizes (Linux), for telling machines apart in RESULTS.md."""
    model = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
        caches = []
        for index in sorted(Path("/sys/devices/system/cpu/cpu0/cache").glob("index*")):
            level, kind = (index / "level").read_text().strip(), (index / "type").read_text().strip()
            if kind != "Instruction":
                caches.append(f"L{level} {(index / 'size').read_text().strip()}")
        flags = Path("/proc/cpuinfo").read_text()
        simd = [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_bf16") if f" {f}" in flags]
        return f"{model}, {os.cpu_count()} cores, caches {', '.join(caches)}, {' '.join(simd)}"
    except OSError:
        return model


def _rss_kib(field: str) -> int:
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1])
    raise RuntimeError(f"{field} not in /proc/self/status")


def _peak_child(op, size, backward, device, backend, field="noise"):
    """Runs in a child process: peak extra bytes of one call after a warm-up, inputs excluded."""
    with ops.use_backend(backend):
        fn = make_case(op, size, backward, device, field=field)
        fn()  # warm-up: thread pools and lazy initialisation are not the op's memory
        if device == "cuda":
            torch.cuda.synchronize()
            torch.cuda.reset_peak_memory_stats()
            base = torch.cuda.memory_allocated()
            fn()
            return torch.cuda.max_memory_allocated() - base
        base = _rss_kib("VmRSS")
        Path("/proc/self/clear_refs").write_text("5")  # reset the high-water mark
        fn()
        return (_rss_kib("VmHWM") - base) * 1024


def peak_memory(op, size, backward, device, backend, field="noise"):
    env = dict(os.environ, MALLOC_MMAP_THRESHOLD_="65536", MALLOC_TRIM_THRESHOLD_="0")
    code = (
        f"import sys; sys.path.insert(0, {str(Path(__file__).resolve().parent)!r});"
        f"import compare; print(compare._peak_child({op!r}, {size!r}, {backward!r}, {device!r}, {backend!r}, {field!r}))"
    )
    # Run from here, not the repo root, so "import motionext" finds the installed build.
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True, cwd=Path(__file__).parent
    )
    return int(out.stdout.strip().splitlines()[-1])


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", nargs="+", default=["2d-seq"])
    parser.add_argument("--ops", nargs="+", default=list(OPS))
    parser.add_argument("--fields", nargs="+", default=list(FIELDS), choices=FIELDS,
                        help="the displacement and velocity fields (see cases.py; default: both); "
                        "'model' exists for 2d-seq only")
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    parser.add_argument("--repeats", type=int, default=15)
    parser.add_argument("--min-seconds", type=float, default=1.0)
    parser.add_argument("--no-memory", action="store_true", help="skip the peak-memory subprocesses")
    parser.add_argument("--markdown", type=Path, help="also write the table as Markdown here")
    parser.add_argument("--json", type=Path, help="also write the raw numbers as JSON here")
    args = parser.parse_args(argv)

    info = ops.build_info()
    if not info["compiled"]:
        sys.exit(f"compiled extension not loaded: {info['load_error']}")
    header = (
        f"motionext kernels vs reference | device={args.device} | torch {torch.__version__} | "
        f"threads={torch.get_num_threads()} | {cpu_description()}"
    )
    print(header)
    rows = []
    cols = ("op", "size", "field", "pass", "compiled ms", "reference ms", "speed-up", "compiled Mvox/s", "peak MiB compiled", "peak MiB reference", "memory ratio")
    print(" | ".join(cols))
    cases = [(size, op, field) for size in args.sizes for op in args.ops for field in args.fields
             if (field == "noise" or size == "2d-seq") and (op != "lncc" or field == args.fields[0])]
    for size, op, field in cases:
        for name in [p for p in PASSES if applies(op, p)]:
            backward = case_gradients(name)
            t = median_times(op, size, backward, args.device, args.repeats, args.min_seconds, field)
            row = {
                "op": op, "size": size, "field": field if op != "lncc" else "-", "pass": name,
                "compiled_ms": t["compiled"] * 1e3, "reference_ms": t["reference"] * 1e3,
                "speedup": t["reference"] / t["compiled"],
                "compiled_mvox_s": voxels(size) / t["compiled"] / 1e6,
            }
            if not args.no_memory:
                row["peak_compiled_mib"] = peak_memory(op, size, backward, args.device, "compiled", field) / 2**20
                row["peak_reference_mib"] = peak_memory(op, size, backward, args.device, "reference", field) / 2**20
                row["memory_ratio"] = row["peak_compiled_mib"] / max(row["peak_reference_mib"], 1e-9)
            rows.append(row)
            print(_format(row))
    if args.markdown:
        lines = [f"_{header}_", "", "| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
        lines += ["| " + _format(r) + " |" for r in rows]
        args.markdown.write_text("\n".join(lines) + "\n")
    if args.json:
        args.json.write_text(json.dumps({"header": header, "rows": rows}, indent=2))
    return rows


def _format(r):
    mem = (
        f"{r['peak_compiled_mib']:.1f} | {r['peak_reference_mib']:.1f} | {r['memory_ratio']:.2f}"
        if "peak_compiled_mib" in r else "- | - | -"
    )
    return (
        f"{r['op']} | {r['size']} | {r['field']} | {r['pass']} | {r['compiled_ms']:.2f} | {r['reference_ms']:.2f} | "
        f"{r['speedup']:.1f}x | {r['compiled_mvox_s']:.1f} | {mem}"
    )


if __name__ == "__main__":
    main()
