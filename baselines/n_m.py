"""N:M semi-structured magnitude pruning: in every group of M consecutive weights keep the N largest."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Literal

import torch
import torch.nn.functional as F
from pydantic import Field, model_validator
from torch import Tensor

from prunebench.methods import Masks, Method, MethodConfig, PruningContext, Reach, Target, Taxonomy

ConvGroups = Literal["kernel", "channels"]
TARGET_SLACK = 1e-3  # a protocol may write 1:3 as 0.667


def grouped_length(weight: Tensor, conv_groups: ConvGroups) -> int:
    """The length of the dimension N:M groups run along: input channels of a convolution in the channels
    layout, the flattened (in, *kernel) of a filter otherwise, in_features of a linear layer."""
    if weight.dim() > 2 and conv_groups == "channels":
        return int(weight.shape[1])
    return int(weight[0].numel()) if weight.dim() > 1 else int(weight.numel())


def n_m_mask(weight: Tensor, n: int, m: int, conv_groups: ConvGroups = "channels") -> Tensor:
    """Keep-mask that keeps the n largest |w| in every group of m consecutive weights along the input
    dimension of each output row (ties go to the earlier position).

    Linear (out, in): groups run along `in`. Convolution (out, in, *kernel): with "kernel", along the
    flattened (in, *kernel) of each filter; with "channels", along `in` at each kernel position (the
    channels-last layout of NVIDIA's sparse tensor cores). A trailing group of r < m weights counts as
    padded with zeros and keeps min(n, r), so only then is the density above n/m.
    """
    if not 0 < n < m:
        raise ValueError(f"N:M needs 0 < N < M, got {n}:{m}")
    magnitude = weight.detach().abs()
    channels_last = weight.dim() > 2 and conv_groups == "channels"
    if channels_last:
        moved = magnitude.movedim(1, -1)  # (out, *kernel, in)
        rows = moved.reshape(-1, moved.shape[-1])
    else:
        rows = magnitude.reshape(weight.shape[0] if weight.dim() > 1 else 1, -1)
    length = rows.shape[1]
    # Padding with -1 ranks below every |w|, so a trailing partial group of r keeps min(n, r) real weights.
    groups = F.pad(rows, (0, -length % m), value=-1.0).view(rows.shape[0], -1, m)
    # Stable sort of -|w|: among equal magnitudes the earlier position is kept, deterministically.
    top = torch.argsort(-groups, dim=2, stable=True)[..., :n]
    keep = torch.zeros_like(groups, dtype=torch.bool).scatter_(2, top, True).view(rows.shape[0], -1)[:, :length]
    if channels_last:
        return keep.view(moved.shape).movedim(-1, 1).contiguous()
    return keep.reshape(weight.shape).contiguous()


class NMMagnitudeConfig(MethodConfig):
    n: int = Field(2, ge=1, description="Weights kept in every group (N).")
    m: int = Field(4, ge=2, description="Size of a group of consecutive weights (M).")
    conv_groups: ConvGroups = Field(
        "channels",
        description="Convolutions: channels = groups of M input channels at each kernel position (the layout "
        "of NVIDIA's ASP and of sparse tensor cores); kernel = groups along each filter's flattened "
        "in_channels x kh x kw.",
    )
    indivisible: Literal["dense", "pad"] = Field(
        "dense",
        description="A layer whose grouped dimension is not a multiple of M: dense = left unpruned, as ASP skips "
        "the layers it cannot lay out (named in the result's notes); pad = its last partial group of r weights "
        "keeps min(N, r).",
    )

    @model_validator(mode="after")
    def _n_below_m(self) -> NMMagnitudeConfig:
        if self.n >= self.m:
            raise ValueError(f"n must be smaller than m (got {self.n}:{self.m})")
        return self


class NMMagnitude(Method[NMMagnitudeConfig]):
    """N:M semi-structured magnitude pruning after training (2:4 by default): every group of M
    consecutive weights along a layer's input dimension keeps its N largest magnitudes, the pattern
    that sparse tensor cores accelerate.

    Mishra et al. 2021, "Accelerating sparse deep neural networks" (arXiv:2104.08378: NVIDIA's
    2:4 recipe, magnitude pruning of a trained model, then retraining with the same schedule);
    Zhou et al. 2021, "Learning N:M fine-grained structured sparse neural networks from scratch"
    (ICLR) for general N:M.

    The sparsity of N:M is 1 - N/M whatever the protocol asks, so the method refuses a target that
    differs from it (by more than 0.001) with an error naming both, before any training (`reach`), rather
    than producing a model whose sparsity is not the one its row claims: list the method once per pattern,
    with a label, and the protocol's sparsities to match. Convolutions are grouped as NVIDIA's ASP groups them
    (apex/contrib/sparsity/sparse_masklib.py: M consecutive input channels at each kernel position).
    A layer whose grouped dimension is not a multiple of M (a first conv on one or three input channels)
    stays dense by default, as ASP skips it, and the result's notes name it. The weights pruned then fall
    short of 1 - N/M, by an amount the layers' shapes decide: a protocol whose tolerance that exceeds is
    refused before any training, naming the dense layers (on the quickstart's CNN, whose first conv sees
    one channel, 2:4 prunes 0.4950 of the weights). (ASP skips more: for its tensor cores it also needs
    out % 8 == 0 and in % 16 == 0.)
    """

    name = "nm_magnitude"
    version = "1.1"  # 1.1: ASP's channel grouping and dense indivisible layers by default (1.0: kernel, padded)
    citation = "Mishra et al. 2021 (arXiv:2104.08378); Zhou et al. 2021 (ICLR)"
    taxonomy = Taxonomy(
        when="after_training",
        granularity="n:m",
        scope="layerwise",
        schedule="one_shot",
        retraining="fine_tune",
    )

    def reach(self, shapes: Mapping[str, tuple[int, ...]], target: Target) -> Reach | None:
        """Before any training: the N:M pattern decides the weights pruned from the layers' shapes alone (M - N of
        every full group, what a trailing partial group holds beyond N, nothing in a layer left dense), so a target
        other than 1 - N/M is refused, and so is one those weights miss by more than the protocol's tolerance."""
        if target.kind != "sparsity":
            return None
        self._check_target(target.value)
        cfg = self.config
        total = sum(math.prod(shape) for shape in shapes.values())
        pruned, dense = 0, []
        for name, shape in shapes.items():
            length = shape[1] if len(shape) > 2 and cfg.conv_groups == "channels" else math.prod(shape[1:])
            if cfg.indivisible == "dense" and length % cfg.m:
                dense.append(name)
                continue
            tail = length % cfg.m
            pruned += math.prod(shape) // length * (length // cfg.m * (cfg.m - cfg.n) + max(0, tail - cfg.n))
        if dense:
            why = (
                f"{', '.join(dense)} stay{'s' if len(dense) == 1 else ''} dense (grouped dimension not a multiple of "
                f"M = {cfg.m}): leave {'it' if len(dense) == 1 else 'them'} out of pruning.prunable (include_first, "
                "exclude), or group along the kernel with a padded last group (conv_groups: kernel, indivisible: pad)"
            )
        else:
            why = f"a trailing partial group of r < M = {cfg.m} weights keeps min(N, r)"
        return Reach(pruned / total, why=why)

    def _check_target(self, target: float) -> None:
        cfg = self.config
        nominal = 1 - cfg.n / cfg.m
        if abs(target - nominal) > TARGET_SLACK:
            raise ValueError(
                f"{cfg.n}:{cfg.m} sparsity is {nominal:.4g}, but the target is {target:g}; "
                f"N:M pruning reaches only 1 - N/M (list the method with n and m to match each target)"
            )

    def prune(self, ctx: PruningContext) -> Masks:
        cfg = self.config
        self._check_target(ctx.target_sparsity)
        current = ctx.masks()
        masks: Masks = {}
        dense = []
        for name, w in ctx.weights().items():
            if cfg.indivisible == "dense" and grouped_length(w, cfg.conv_groups) % cfg.m:
                dense.append(name)
                masks[name] = current[name]
                continue
            # Weights already pruned stay pruned: that only removes more within a group, so the pattern holds.
            masks[name] = n_m_mask(w, cfg.n, cfg.m, cfg.conv_groups) & current[name]
        if dense:
            ctx.note("dense_layers", dense)
            ctx.note("why_dense", f"the grouped dimension is not a multiple of M = {cfg.m}")
        return masks
