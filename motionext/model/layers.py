"""The three networks of the motion model: encoder q_w, temporal network p_g, decoder p_t."""

from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..ops._autocast import autocast_off
from .config import ModelConfig


INITIAL_LOG_VARIANCE = -4.0


def _conv(ndim):
    return nn.Conv2d if ndim == 2 else nn.Conv3d


def _deconv(ndim):
    return nn.ConvTranspose2d if ndim == 2 else nn.ConvTranspose3d


class Encoder(nn.Module):
    """q_w(z~_t | I_0, I_t): 4 convolutions with strides (2, 2, 2, 1), then dense layers giving
    the mean and log-variance of z~_t."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        conv = _conv(config.ndim)
        layers, channels = [], 2
        for out, stride in zip(config.encoder_channels, (2, 2, 2, 1)):
            layers += [conv(channels, out, 3, stride=stride, padding=1), nn.LeakyReLU(0.2)]
            channels = out
        self.features = nn.Sequential(*layers)
        flat = channels * math.prod(s // 8 for s in config.image_size)
        self.mean = nn.Linear(flat, config.latent_dim)
        self.log_var = nn.Linear(flat, config.latent_dim)
        # Start with a narrow posterior (std e^-2 = 0.14): with the prior's std of 1 the sampled code
        # would be noise, the decoder would learn to ignore it and the encoder would get no signal
        # (the posterior collapse measured in docs/model.md). The KL term widens it where the code
        # is not needed.
        nn.init.constant_(self.log_var.bias, INITIAL_LOG_VARIANCE)

    def forward(self, moving: torch.Tensor, fixed: torch.Tensor):
        h = self.features(torch.cat([moving, fixed], dim=1)).flatten(1)
        with autocast_off(h):  # the KL term's exp(log_var) and sums need more than half precision
            h = h.to(self.mean.weight.dtype)
            return self.mean(h), self.log_var(h)


class TemporalNetwork(nn.Module):
    """p_g: a non-causal temporal convolutional network over [z~_t, t/T]: dilated 1-D
    convolutions (kernel 3, dilations 1, 2, 4, 8) with residual and skip connections; its output
    is the motion matrix z (d x T).

    The paper's network reads z_t only from the skip sum, a mixture of every layer's temporal
    convolution: no path carries z~_t alone to z_t. `tcn_direct` adds one, a linear map of z~_t
    added to the output. It starts at zero, so weights trained without it compute what they did
    and can be fine-tuned with it (docs/model.md, "Whole cines": measured, not yet shown to help).
    """

    # Parameters a model may lack in a checkpoint: they start at zero, so the model then
    # computes what the checkpoint's weights did (see train._initial_weights).
    NEUTRAL_AT_INIT = ("direct.",)

    def __init__(self, config: ModelConfig):
        super().__init__()
        d = config.latent_dim
        self.kernel, self.dilations, self.cyclic = config.tcn_kernel, config.tcn_dilations, config.tcn_padding == "cyclic"
        self.input = nn.Conv1d(d + 1, d, 1)
        self.layers = nn.ModuleList(nn.Conv1d(d, d, config.tcn_kernel, dilation=k) for k in config.tcn_dilations)
        self.output = nn.Conv1d(d, d, 1)
        self.direct = nn.Conv1d(d, d, 1) if config.tcn_direct else None
        if self.direct is not None:
            nn.init.zeros_(self.direct.weight)
            nn.init.zeros_(self.direct.bias)

    def forward(self, z_tilde: torch.Tensor, times: torch.Tensor) -> torch.Tensor:
        """z_tilde (B, d, T), times (B, T) in [0, 1] -> z (B, d, T)."""
        h = self.input(torch.cat([z_tilde, times.unsqueeze(1)], dim=1))
        skip = torch.zeros_like(h)
        for layer, dilation in zip(self.layers, self.dilations):
            pad = dilation * (self.kernel - 1) // 2
            padded = F.pad(h, (pad, pad), mode="circular" if self.cyclic and h.shape[-1] > pad else "constant")
            out = F.leaky_relu(layer(padded), 0.2)
            skip = skip + out
            h = h + out
        z = self.output(skip)
        return z if self.direct is None else z + self.direct(z_tilde)


class Decoder(nn.Module):
    """p_t(I_t | z_t, I_0) up to the velocity: a dense seed, 3 deconvolutions and 1 convolution,
    with I_0 concatenated at every scale: down-sampled (the paper), or as the features of a small
    convolutional network of I_0 alone at each scale (`ed_feature_channels`). Only z carries the
    motion either way; the features tell the decoder where the anatomy is."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        conv, deconv = _conv(config.ndim), _deconv(config.ndim)
        c = config.decoder_channels
        self.seed_shape = (c[0],) + tuple(s // 8 for s in config.image_size)
        self.seed = nn.Linear(config.latent_dim, math.prod(self.seed_shape))
        self.ed_features = EDFeatures(config) if config.ed_feature_channels else None
        # channels of I_0 at scales 1/8, 1/4, 1/2, 1
        ed = tuple(reversed(config.ed_feature_channels)) if self.ed_features else (1, 1, 1, 1)
        self.up = nn.ModuleList(
            deconv(c[i] + ed[i], c[i + 1], 4, stride=2, padding=1) for i in range(3)
        )
        self.velocity = conv(c[3] + ed[3], config.ndim, 3, padding=1)
        # Real ED->ES motion is several voxels, and Adam moves each weight by about the learning
        # rate per step: scaling the output lets those steps reach it sooner.
        self.scale = float(config.velocity_scale)
        # Start near the identity transform so early training is stable.
        nn.init.normal_(self.velocity.weight, std=1e-5)
        nn.init.zeros_(self.velocity.bias)

    def forward(self, z: torch.Tensor, moving: torch.Tensor, repeats: int = 1) -> torch.Tensor:
        """z (N * repeats, d), moving I_0 (N, 1, *S), each I_0 serving `repeats` consecutive
        codes -> velocity (N * repeats, ndim, *S) in voxels."""
        h = F.leaky_relu(self.seed(z), 0.2).view(z.shape[0], *self.seed_shape)
        if self.ed_features is not None:
            scales = list(reversed(self.ed_features(moving)))
        else:  # the paper's: I_0 itself, averaged down to each scale (1/8 ... 1)
            scales = [_resize(moving, tuple(n * 2 ** k for n in h.shape[2:])) for k in range(4)]
        for layer, ed in zip(self.up, scales):
            h = F.leaky_relu(_on_concatenation(layer, h, ed, repeats), 0.2)
        if h.device.type == "cpu":
            # oneDNN's CPU convolution to so few channels (2 or 3) ran 2-3 times faster on
            # channels-last input, the same sums in another order (benchmarks/RESULTS.md)
            h = h.contiguous(memory_format=torch.channels_last if h.dim() == 4 else torch.channels_last_3d)
        # velocities of several voxels need more than half precision's 8 or 11 bits of mantissa
        with autocast_off(h):
            dtype = self.velocity.weight.dtype
            return (self.scale * _on_concatenation(self.velocity, h.to(dtype), scales[3].to(dtype), repeats)).contiguous()


def _on_concatenation(layer: nn.Module, h: torch.Tensor, ed: torch.Tensor, repeats: int) -> torch.Tensor:
    """layer(cat([h, ed repeated], dim=1)) for a convolution `layer`, h (N * repeats, c, *S) and
    ed (N, e, *S), each ed serving `repeats` consecutive items of h. A convolution is a sum over
    its input channels, so ed's share is convolved once per ED frame, not once per frame of its
    sequence, and added to h's; nothing is concatenated or repeated. Zero padding, as every
    convolution of the decoder has."""
    transposed = isinstance(layer, nn.modules.conv._ConvTransposeNd)
    split = h.shape[1]
    weight = layer.weight  # (in, out, ...) when transposed, (out, in, ...) otherwise
    own, shared = (weight[:split], weight[split:]) if transposed else (weight[:, :split], weight[:, split:])
    ndim = h.dim() - 2
    if transposed:
        convolve = (F.conv_transpose2d if ndim == 2 else F.conv_transpose3d)
        settings = (layer.stride, layer.padding, layer.output_padding, layer.groups, layer.dilation)
    else:
        convolve = (F.conv2d if ndim == 2 else F.conv3d)
        settings = (layer.stride, layer.padding, layer.dilation, layer.groups)
    out = convolve(h, own, None, *settings)
    common = convolve(ed, shared, layer.bias, *settings)
    return (out.unflatten(0, (-1, repeats)) + common.unsqueeze(1)).flatten(0, 1)


class EDFeatures(nn.Module):
    """Features of the ED frame alone at full, 1/2, 1/4 and 1/8 resolution (one convolution each,
    stride 1 then 2), for the decoder to condition on."""

    def __init__(self, config: ModelConfig):
        super().__init__()
        conv = _conv(config.ndim)
        channels, layers = 1, []
        for k, out in enumerate(config.ed_feature_channels):
            layers.append(conv(channels, out, 3, stride=1 if k == 0 else 2, padding=1))
            channels = out
        self.layers = nn.ModuleList(layers)

    def forward(self, image: torch.Tensor) -> list:
        features = []
        for layer in self.layers:
            image = F.leaky_relu(layer(image), 0.2)
            features.append(image)
        return features


def _resize(image: torch.Tensor, size) -> torch.Tensor:
    return F.adaptive_avg_pool2d(image, size) if image.dim() == 4 else F.adaptive_avg_pool3d(image, size)


def gaussian_kernel1d(sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    radius = max(1, int(math.ceil(3 * sigma)))
    x = torch.arange(-radius, radius + 1, dtype=dtype, device=device)
    kernel = torch.exp(-0.5 * (x / sigma) ** 2)
    return kernel / kernel.sum()


def smoothing_matrix(size: int, sigma: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """(size, size) matrix of Gaussian smoothing along one axis with border replication: row i
    holds the kernel centred on i, the taps that fall beyond an end added onto that end voxel."""
    kernel = gaussian_kernel1d(sigma, dtype, device)
    radius = kernel.numel() // 2
    rows = torch.arange(size, device=device).repeat_interleave(kernel.numel())
    columns = (rows + torch.arange(-radius, radius + 1, device=device).repeat(size)).clamp(0, size - 1)
    matrix = torch.zeros(size, size, dtype=dtype, device=device)
    return matrix.index_put_((rows, columns), kernel.repeat(size), accumulate=True)


def smooth_spatial(field: torch.Tensor, sigmas) -> torch.Tensor:
    """Separable Gaussian smoothing of (N, C, *S) with one sigma (voxels) per spatial axis;
    border-replicated so the field does not shrink toward zero at the image edge. Each axis is
    one matrix product: on a CPU it ran 5 times faster than the same smoothing as a grouped
    convolution of replicate-padded fields (benchmarks/RESULTS.md)."""
    for axis, sigma in enumerate(sigmas):
        if sigma <= 0:
            continue
        dim = 2 + axis
        matrix = smoothing_matrix(field.shape[dim], float(sigma), field.dtype, field.device)
        field = torch.movedim(torch.movedim(field, dim, -1) @ matrix.T, -1, dim)
    return field.contiguous()


def smooth_over_phase(sequence: torch.Tensor, times: torch.Tensor, sigma: float, cyclic: bool = False) -> torch.Tensor:
    """Gaussian smoothing over dim 1 (time) of (B, T, ...) by the frames' cycle phases `times`
    (B, T): each frame becomes the mean of its sequence's frames weighted by exp(-d^2 / 2 sigma^2),
    d their phase difference (around the cycle when `cyclic`). Frames far apart in the cycle, such
    as a sparse (ED, ES) pair, are not mixed; an even cine of T frames is smoothed as by sigma * T
    frames."""
    if sigma <= 0 or sequence.shape[1] < 2:
        return sequence
    b, t = sequence.shape[:2]
    times = times.to(sequence.device, torch.float32).expand(b, t)
    d = times[:, :, None] - times[:, None, :]
    if cyclic:
        d = d - torch.round(d)
    weights = torch.exp(-0.5 * (d / sigma) ** 2)
    weights = (weights / weights.sum(-1, keepdim=True)).to(sequence.dtype)
    return torch.bmm(weights, sequence.reshape(b, t, -1)).reshape(sequence.shape)


def smooth_temporal(sequence: torch.Tensor, sigma: float, cyclic: bool = False) -> torch.Tensor:
    """Gaussian smoothing over dim 1 (time) of (B, T, ...) by frame index."""
    if sigma <= 0 or sequence.shape[1] < 2:
        return sequence
    b, t = sequence.shape[:2]
    kernel = gaussian_kernel1d(sigma, sequence.dtype, sequence.device)
    radius = min(kernel.numel() // 2, t - 1)
    kernel = kernel[kernel.numel() // 2 - radius : kernel.numel() // 2 + radius + 1]
    kernel = kernel / kernel.sum()
    flat = sequence.reshape(b, t, -1).transpose(1, 2).reshape(-1, 1, t)
    flat = F.pad(flat, (radius, radius), mode="circular" if cyclic else "replicate")
    flat = F.conv1d(flat, kernel.view(1, 1, -1))
    return flat.reshape(b, -1, t).transpose(1, 2).reshape(sequence.shape)
