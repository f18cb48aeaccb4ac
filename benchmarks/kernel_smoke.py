"""Every compiled kernel once, small: forward and backward of warp (every mode and padding),
scaling-and-squaring and LNCC, in 2D and 3D, in float32 and bfloat16, against the reference.
Small enough to run under compute-sanitizer (benchmarks/gpu_check.sh); exits 1 on a mismatch.

    python benchmarks/kernel_smoke.py --device cuda
"""

from __future__ import annotations

import argparse
import itertools
import sys

import torch

from motionext import ops

SHAPES = {2: (2, 12, 16), 3: (1, 6, 8, 10)}  # (batch, *spatial)
TOLERANCE = {torch.float32: 1e-4, torch.bfloat16: 2e-2}  # relative to the largest value


def _run(fn, backend, inputs):
    """fn's output and the gradients of a fixed weighted sum of it, on `backend`."""
    leaves = [x.detach().clone().requires_grad_(True) for x in inputs]
    with ops.use_backend(backend):
        out = fn(*leaves)
    weights = torch.linspace(-1, 1, out.numel(), device=out.device, dtype=out.dtype).view_as(out)
    (out * weights).sum().backward()
    return [out.detach()] + [x.grad for x in leaves if x.grad is not None]


def cases(ndim: int, device: str, dtype):
    b, *spatial = SHAPES[ndim]
    g = torch.Generator().manual_seed(ndim)
    image = torch.rand(b, 1, *spatial, generator=g).to(device, dtype)
    # Displacements that are odd multiples of 1/64 within ±2 voxels: exact in bfloat16, and never
    # on a voxel centre or half-way between two, where nearest rounding and the linear weights'
    # derivative jump and the two backends may rightly pick different sides.
    steps = torch.randint(-64, 64, (b, ndim, *spatial), generator=g)
    field = ((2 * steps + 1) / 64).to(device, dtype)
    for mode, padding in itertools.product(("bilinear", "nearest"), ("border", "zeros")):
        # nearest has no gradient to the displacement; the image's is the scatter
        detach = mode == "nearest"
        yield (f"warp {mode} {padding}",
               lambda i, u, m=mode, p=padding, d=detach: ops.warp(i, u.detach() if d else u, mode=m, padding=p),
               [image, field])
    for padding in ("border", "zeros"):
        yield f"scaling_squaring {padding}", lambda v, p=padding: ops.scaling_squaring(v, steps=4, padding=p), [field]
    other = torch.rand(b, 1, *spatial, generator=g).to(device, dtype)
    yield "lncc", lambda a, c: ops.lncc(a, c, window=5, reduction="none"), [image, other]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)
    if not ops.build_info()["compiled"]:
        print(f"kernel_smoke: the compiled extension is not loaded: {ops.build_info()['load_error']}")
        return 1
    # The reference is the yardstick: its convolutions (LNCC's box sums) must not drop to TF32.
    torch.backends.cudnn.allow_tf32 = False
    torch.backends.cuda.matmul.allow_tf32 = False
    failures = 0
    for ndim, dtype in itertools.product((2, 3), (torch.float32, torch.bfloat16)):
        for name, fn, inputs in cases(ndim, args.device, dtype):
            # The reference runs in float32 on the same (rounded) inputs: the compiled kernels
            # accumulate in float32 whatever their inputs' dtype, and round only what they store.
            compiled = _run(fn, "compiled", inputs)
            reference = _run(lambda *x: fn(*x).to(dtype), "reference", [x.float() for x in inputs])
            errors = [float((c.double() - r.double()).abs().max() / (r.double().abs().max() + 1e-6))
                      for c, r in zip(compiled, reference)]
            ok = all(e <= TOLERANCE[dtype] for e in errors)
            failures += not ok
            print(f"{'ok  ' if ok else 'FAIL'} {ndim}D {str(dtype).removeprefix('torch.'):8} {name:26} "
                  f"relative max error {max(errors):.2e}", flush=True)
    if args.device == "cuda":
        torch.cuda.synchronize()
    print(f"kernel_smoke: {failures} mismatch(es) on {args.device}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
