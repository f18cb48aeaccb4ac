"""Second-order gradients of the compiled ops. Their backward kernels have no derivative of their
own, so when autograd records a backward (create_graph=True: grad mode is on inside it) the
gradients are taken through the pure-PyTorch reference instead. The values are the same, and the
graph they come with can be differentiated again (Hessian-vector products, gradient penalties)."""

from __future__ import annotations

import torch


def recorded() -> bool:
    """Whether autograd records the backward being run (create_graph=True)."""
    return torch.is_grad_enabled()


def reference_gradients(forward, inputs, needs, grad) -> list:
    """The gradient of <grad, forward(*inputs)> by each input that `needs` marks (None for the
    others), with its graph. `inputs` are the saved tensors, still joined to the caller's graph.
    Each enters through a view of its own, so that one input derived from another (a warp of a
    field by itself) gets its own partial derivative, not the other's as well."""
    inputs = [x.view_as(x) for x in inputs]
    wanted = [x for x, need in zip(inputs, needs) if need]
    found = iter(torch.autograd.grad(forward(*inputs), wanted, grad, create_graph=True, allow_unused=True))
    return [next(found) if need else None for need in needs]
