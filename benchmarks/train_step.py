"""One training step of the motion model (forward + backward + Adam, 1 sequence, T=20,
128×128, float32) with the compiled kernels vs MOTIONEXT_BACKEND=reference, interleaved. malloc
keeps freed memory as in training (motionext.malloc); MOTIONEXT_KEEP_FREED_MEMORY=0 measures without.

    python benchmarks/train_step.py [--frames 20] [--size 128] [--repeats 10] [--device cpu]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from motionext import ops
from motionext.malloc import keep_freed_memory
from motionext.data import make_phantom
from motionext.model import ModelConfig, MotionModel, motion_loss


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--frames", type=int, default=20)
    parser.add_argument("--size", type=int, default=128)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    args = parser.parse_args(argv)

    keep_freed_memory()
    device = torch.device(args.device)
    phantom = make_phantom(args.frames, (args.size, args.size), seed=0)
    frames = torch.from_numpy(phantom.frames)[None].to(device)
    torch.manual_seed(0)
    model = MotionModel(ModelConfig(image_size=(args.size, args.size))).to(device).train()
    optimizer = torch.optim.Adam(model.parameters(), lr=1.5e-4)

    def step():
        out = model(frames, phantom.spacing)
        terms = motion_loss(model, frames, out)
        optimizer.zero_grad(set_to_none=True)
        terms["loss"].backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()

    times = {"compiled": [], "reference": []}
    for backend in times:  # warm-up
        with ops.use_backend(backend):
            step()
    for _ in range(args.repeats):
        for backend in times:
            with ops.use_backend(backend):
                t0 = time.perf_counter()
                step()
                times[backend].append(time.perf_counter() - t0)
    med = {k: statistics.median(v) for k, v in times.items()}
    print(f"training step, T={args.frames}, {args.size}x{args.size}, {device}, torch {torch.__version__}, "
          f"threads={torch.get_num_threads()}, malloc keeps freed memory: {keep_freed_memory()}")
    print(f"compiled {med['compiled'] * 1e3:.0f} ms | reference {med['reference'] * 1e3:.0f} ms | "
          f"speed-up {med['reference'] / med['compiled']:.2f}x")
    return med


if __name__ == "__main__":
    main()
