"""U-Net backbone for 1-D and 2-D fields, periodic or not, conditioned on a noise level.

Shapes: ``x`` is (batch, channels, x) for ``dims=1`` and (batch, channels, y, x) for
``dims=2``; ``c_noise`` is (batch,); ``cond`` is (batch, cond_channels, *space).
``net(x, c_noise, cond)`` has the shape of ``x``.

Design references (nothing copied):

- "U-Net: Convolutional Networks for Biomedical Image Segmentation", Ronneberger et al.
  2015, arXiv:1505.04597: an encoder-decoder with skip connections across levels.
- "Denoising Diffusion Probabilistic Models", Ho et al. 2020, arXiv:2006.11239: residual
  blocks with GroupNorm + SiLU, the noise level embedded into every block, self-attention
  at low resolution.
- "Elucidating the Design Space of Diffusion-Based Generative Models" (EDM), Karras et al.
  2022, arXiv:2206.00364: FiLM-style scale/shift from the embedding (its DhariwalUNet),
  residual sums scaled by 1/sqrt(2), a zero-initialised output layer.

On a periodic domain (the simulators') every convolution pads circularly and the
resampling is by exact factors of two, so a circular shift of the input by a multiple of
``2**(levels - 1)`` shifts the output identically: the network respects the periodic
domain. On a bounded one (``periodic=False``: a regional latitude-longitude grid) the
convolutions pad by repeating the edge value, so nothing wraps from one edge to the
other, and a field of any size is padded the same way up to the next multiple of
``2**(levels - 1)`` and cropped back. The backbone knows nothing of noise
schedules or preconditioning; ``c_noise`` is just a number per sample (DESIGN.md, ``nets/``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn import functional as F

from assimilate.nets.embedding import NoiseEmbedding

__all__ = ["UNET_SIZES", "ResidualBlock", "UNet", "build_unet", "count_parameters", "same_conv"]

UNET_SIZES: dict[str, dict[str, Any]] = {
    # Parameters for one channel without cond: 1-D / 2-D.
    # Tests and smoke runs: 7.8 k / 16 k.
    "tiny": {"base_channels": 8, "channel_mults": (1, 1), "embedding_dim": 16},
    # A 1-D forecaster trainable on a CPU: 0.29 M / 0.61 M.
    "small": {"base_channels": 24, "channel_mults": (1, 2, 2), "embedding_dim": 96},
    # GPU sizes, 4.2 M / 9.0 M and 16.8 M / 35.9 M; four levels, so sizes divisible by 8.
    "base": {
        "base_channels": 64,
        "channel_mults": (1, 2, 2, 2),
        "blocks_per_level": 2,
        "embedding_dim": 256,
        "attention": True,
    },
    "large": {
        "base_channels": 128,
        "channel_mults": (1, 2, 2, 2),
        "blocks_per_level": 2,
        "embedding_dim": 512,
        "dropout": 0.1,
        "attention": True,
    },
}

_BlockFactory = Callable[[int, int], "ResidualBlock"]  # (in_channels, out_channels) -> block

_SKIP_SCALE = 1.0 / math.sqrt(2.0)  # keeps the variance of a residual sum of two unit terms


def same_conv(dims: int, in_channels: int, out_channels: int, kernel_size: int = 3,
              periodic: bool = True) -> nn.Module:
    """Convolution keeping the spatial size: its padding wraps around a periodic domain, and
    repeats the edge value on a bounded one."""
    conv = nn.Conv1d if dims == 1 else nn.Conv2d
    if kernel_size == 1:
        return conv(in_channels, out_channels, 1)
    return conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2,
                padding_mode="circular" if periodic else "replicate")


def _group_norm(channels: int) -> nn.GroupNorm:
    """GroupNorm with the most groups (<= 32) dividing ``channels``, >= 4 channels each."""
    limit = max(1, min(32, channels // 4))
    groups = max(g for g in range(1, limit + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)


def _per_channel(values: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(batch, channels) -> (batch, channels, 1, ...) broadcastable against ``like``."""
    return values.reshape(*values.shape, *([1] * (like.ndim - 2)))


class ResidualBlock(nn.Module):
    """(batch, in_channels, *space), emb (batch, embedding_dim) -> (batch, out_channels, *space).

    h = conv(silu(norm(x))); h = norm(h) * (1 + scale) + shift with (scale, shift) a linear
    map of the embedding; h = conv(dropout(silu(h))); out = (skip(x) + h) / sqrt(2).
    """

    def __init__(self, dims: int, in_channels: int, out_channels: int, embedding_dim: int,
                 dropout: float, periodic: bool = True) -> None:
        super().__init__()
        self.norm1 = _group_norm(in_channels)
        self.conv1 = same_conv(dims, in_channels, out_channels, periodic=periodic)
        self.film = nn.Linear(embedding_dim, 2 * out_channels)
        self.norm2 = _group_norm(out_channels)
        self.dropout = nn.Dropout(dropout)
        self.conv2 = same_conv(dims, out_channels, out_channels, periodic=periodic)
        self.skip = (
            nn.Identity()
            if in_channels == out_channels
            else same_conv(dims, in_channels, out_channels, 1)
        )

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        h = self.conv1(F.silu(self.norm1(x)))
        scale, shift = self.film(emb).chunk(2, dim=1)
        h = self.norm2(h) * (1.0 + _per_channel(scale, h)) + _per_channel(shift, h)
        h = self.conv2(self.dropout(F.silu(h)))
        return (self.skip(x) + h) * _SKIP_SCALE


class SelfAttention(nn.Module):
    """Multi-head self-attention over all positions: (batch, channels, *space) -> same.

    No positional encoding, so it commutes with any permutation of positions and in
    particular with circular shifts. Heads of 64 channels when ``channels`` allows.
    """

    def __init__(self, dims: int, channels: int) -> None:
        super().__init__()
        self.heads = channels // 64 if channels % 64 == 0 else 1
        self.norm = _group_norm(channels)
        self.qkv = same_conv(dims, channels, 3 * channels, 1)
        self.proj = same_conv(dims, channels, channels, 1)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        batch, channels, *space = x.shape
        qkv = self.qkv(self.norm(x)).reshape(batch, 3, self.heads, channels // self.heads, -1)
        q, k, v = (t.transpose(-1, -2) for t in qkv.unbind(1))  # (batch, heads, positions, head)
        h = F.scaled_dot_product_attention(q, k, v).transpose(-1, -2)
        return (x + self.proj(h.reshape(batch, channels, *space))) * _SKIP_SCALE


class Downsample(nn.Module):
    """Average pairs (1-D) or 2x2 squares (2-D): halves each spatial size."""

    def __init__(self, dims: int) -> None:
        super().__init__()
        self.pool = nn.AvgPool1d(2) if dims == 1 else nn.AvgPool2d(2)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.pool(x)


class Upsample(nn.Module):
    """Nearest-neighbour doubling of each spatial size, then a 3-point conv."""

    def __init__(self, dims: int, channels: int, periodic: bool = True) -> None:
        super().__init__()
        self.conv = same_conv(dims, channels, channels, periodic=periodic)

    def forward(self, x: torch.Tensor, emb: torch.Tensor) -> torch.Tensor:
        return self.conv(F.interpolate(x, scale_factor=2.0, mode="nearest"))


class UNet(nn.Module):
    """U-Net on fields: ``net(x, c_noise, cond=None)`` has the shape of ``x``.

    ``x``: (batch, channels, x) for ``dims=1`` or (batch, channels, y, x) for ``dims=2``;
    ``c_noise``: (batch,) (a 0-d tensor is broadcast); ``cond``: (batch, cond_channels,
    *space), concatenated to ``x`` at the input, required iff ``cond_channels > 0``.

    One level per entry of ``channel_mults`` (width ``base_channels * mult``), each with
    ``blocks_per_level`` residual blocks; levels are separated by a factor-2 resampling,
    so on a periodic domain each spatial size must be divisible by
    ``2**(len(channel_mults) - 1)`` (a bounded one is padded up to it). Every
    encoder output is passed to the decoder (skip connections); the middle has two
    residual blocks with optional self-attention between them. The output layer is
    zero-initialised, so a fresh network returns zeros.
    """

    def __init__(
        self,
        dims: int,
        channels: int,
        cond_channels: int = 0,
        base_channels: int = 32,
        channel_mults: tuple[int, ...] = (1, 2, 2),
        blocks_per_level: int = 1,
        embedding_dim: int = 128,
        dropout: float = 0.0,
        attention: bool = False,
        periodic: bool = True,
    ) -> None:
        super().__init__()
        self.config: dict[str, Any] = {
            "dims": dims,
            "channels": channels,
            "cond_channels": cond_channels,
            "base_channels": base_channels,
            "channel_mults": tuple(channel_mults),
            "blocks_per_level": blocks_per_level,
            "embedding_dim": embedding_dim,
            "dropout": dropout,
            "attention": attention,
            "periodic": periodic,
        }
        _validate_config(self.config)
        self.dims, self.channels, self.cond_channels = dims, channels, cond_channels
        self.periodic = periodic
        self.divisor = 2 ** (len(channel_mults) - 1)
        self.embedding = NoiseEmbedding(embedding_dim)
        self.input = same_conv(dims, channels + cond_channels, base_channels, periodic=periodic)
        widths = [base_channels * mult for mult in channel_mults]
        block = _block_factory(dims, embedding_dim, dropout, periodic)
        self.encoder, skip_widths = _build_encoder(
            dims, base_channels, widths, blocks_per_level, block
        )
        self.middle = nn.ModuleList([block(widths[-1], widths[-1])])
        if attention:
            self.middle.append(SelfAttention(dims, widths[-1]))
        self.middle.append(block(widths[-1], widths[-1]))
        self.decoder = _build_decoder(dims, widths, blocks_per_level, skip_widths, block,
                                      periodic)
        self.output = nn.Sequential(_group_norm(base_channels), nn.SiLU(),
                                    same_conv(dims, base_channels, channels, periodic=periodic))
        nn.init.zeros_(self.output[-1].weight)
        nn.init.zeros_(self.output[-1].bias)

    def forward(
        self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None = None
    ) -> torch.Tensor:
        c_noise = self._check_inputs(x, c_noise, cond)
        if cond is not None:
            x = torch.cat([x, cond.to(x.dtype)], dim=1)
        space = x.shape[2:]
        short = [-size % self.divisor for size in space]
        if any(short):  # bounded only (checked): repeat the far edges up to the multiple
            x = F.pad(x, [p for s in reversed(short) for p in (0, s)], mode="replicate")
        emb = self.embedding(c_noise)
        h = self.input(x)
        skips = [h]
        for layer in self.encoder:
            h = layer(h, emb)
            skips.append(h)
        for layer in self.middle:
            h = layer(h, emb)
        for layer in self.decoder:
            if isinstance(layer, ResidualBlock):
                h = torch.cat([h, skips.pop()], dim=1)
            h = layer(h, emb)
        return self.output(h)[(..., *(slice(0, size) for size in space))]

    def _check_inputs(
        self, x: torch.Tensor, c_noise: torch.Tensor, cond: torch.Tensor | None
    ) -> torch.Tensor:
        """Raise ValueError naming expected and actual shapes; return c_noise as (batch,)."""
        layout = "(batch, channels, x)" if self.dims == 1 else "(batch, channels, y, x)"
        if x.ndim != self.dims + 2 or x.shape[1] != self.channels:
            raise ValueError(
                f"UNet(dims={self.dims}, channels={self.channels}): x must be {layout} with "
                f"channels={self.channels}, got shape {tuple(x.shape)}"
            )
        space = tuple(x.shape[2:])
        if self.periodic and any(size % self.divisor for size in space):
            raise ValueError(
                f"UNet with {len(self.config['channel_mults'])} levels: every spatial size must "
                f"be divisible by {self.divisor}, got spatial shape {space}"
            )
        batch = x.shape[0]
        if c_noise.ndim == 0:
            c_noise = c_noise.expand(batch)
        if c_noise.shape != (batch,):
            raise ValueError(
                f"UNet: c_noise must have shape ({batch},), got {tuple(c_noise.shape)}"
            )
        _check_cond(cond, self.cond_channels, (batch, self.cond_channels, *space))
        return c_noise


def _check_cond(cond: torch.Tensor | None, cond_channels: int, expected: tuple[int, ...]) -> None:
    if cond is None:
        if cond_channels:
            raise ValueError(
                f"UNet(cond_channels={cond_channels}): cond is required, expected shape {expected}"
            )
        return
    if not cond_channels:
        raise ValueError(
            f"UNet(cond_channels=0) takes no cond, got cond of shape {tuple(cond.shape)}; "
            "build the network with cond_channels > 0 to condition on extra fields"
        )
    if tuple(cond.shape) != expected:
        raise ValueError(
            f"UNet: cond must have shape (batch, cond_channels, *space) = {expected}, "
            f"got {tuple(cond.shape)}"
        )


def _validate_config(config: dict[str, Any]) -> None:
    """Raise ValueError naming the first bad constructor argument and what is allowed."""
    checks = [
        ("dims", config["dims"] in (1, 2), "must be 1 or 2"),
        ("channels", config["channels"] >= 1, "must be >= 1"),
        ("cond_channels", config["cond_channels"] >= 0, "must be >= 0"),
        ("base_channels", config["base_channels"] >= 1, "must be >= 1"),
        (
            "channel_mults",
            len(config["channel_mults"]) >= 1 and min(config["channel_mults"]) >= 1,
            "must be a non-empty tuple of integers >= 1",
        ),
        ("blocks_per_level", config["blocks_per_level"] >= 1, "must be >= 1"),
        (
            "embedding_dim",
            config["embedding_dim"] >= 2 and config["embedding_dim"] % 2 == 0,
            "must be an even integer >= 2",
        ),
        ("dropout", 0.0 <= config["dropout"] < 1.0, "must lie in [0, 1)"),
    ]
    for name, ok, allowed in checks:
        if not ok:
            raise ValueError(f"UNet: {name}={config[name]!r} {allowed}")


def _block_factory(dims: int, embedding_dim: int, dropout: float,
                   periodic: bool) -> _BlockFactory:
    def block(in_channels: int, out_channels: int) -> ResidualBlock:
        return ResidualBlock(dims, in_channels, out_channels, embedding_dim, dropout, periodic)

    return block


def _build_encoder(
    dims: int, base_channels: int, widths: list[int], blocks_per_level: int, block: _BlockFactory
) -> tuple[nn.ModuleList, list[int]]:
    """Encoder layers and the widths of the skips they leave (input conv's first)."""
    layers, skip_widths, width = nn.ModuleList(), [base_channels], base_channels
    for level, level_width in enumerate(widths):
        for _ in range(blocks_per_level):
            layers.append(block(width, level_width))
            width = level_width
            skip_widths.append(width)
        if level < len(widths) - 1:
            layers.append(Downsample(dims))
            skip_widths.append(width)
    return layers, skip_widths


def _build_decoder(
    dims: int,
    widths: list[int],
    blocks_per_level: int,
    skip_widths: list[int],
    block: _BlockFactory,
    periodic: bool = True,
) -> nn.ModuleList:
    """Decoder layers; each residual block consumes one skip, last in first out."""
    layers, skip_widths, width = nn.ModuleList(), list(skip_widths), widths[-1]
    for level in reversed(range(len(widths))):
        for _ in range(blocks_per_level + 1):
            layers.append(block(width + skip_widths.pop(), widths[level]))
            width = widths[level]
        if level > 0:
            layers.append(Upsample(dims, width, periodic))
    return layers


def count_parameters(module: nn.Module) -> int:
    """Number of trainable scalars in ``module``."""
    return sum(p.numel() for p in module.parameters() if p.requires_grad)


def build_unet(size: str, dims: int, channels: int, cond_channels: int = 0,
               periodic: bool = True) -> UNet:
    """A :class:`UNet` with the keyword set ``UNET_SIZES[size]``."""
    if size not in UNET_SIZES:
        raise ValueError(f"unknown UNet size {size!r}; allowed sizes: {', '.join(UNET_SIZES)}")
    return UNet(dims=dims, channels=channels, cond_channels=cond_channels, periodic=periodic,
                **UNET_SIZES[size])
