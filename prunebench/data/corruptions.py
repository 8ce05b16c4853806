"""Corrupted copies of a test split: the noise, blur and digital corruptions of Hendrycks & Dietterich 2019
("Benchmarking Neural Network Robustness to Common Corruptions and Perturbations"), restated from their
CIFAR-10-C code (`hendrycks/robustness`, ImageNet-C/create_c/make_cifar_c.py) with its parameters per severity,
in numpy and PIL. These are not CIFAR-10-C's published files (which cannot be downloaded here): the same
definitions applied to whatever test split a protocol has, so their numbers are not CIFAR-10-C's.

Each corruption maps pixels in [0, 1] (the stored pixels over the data set's scale) to [0, 1]; the result is stored
as uint8 on 0..255, cut down (floored) as the reference stores its files, and normalized as the clean split is.
Every random draw comes from one numpy generator per (corruption, severity, seed) over the whole split in its
order, so a corrupted split is the same in every process and for every model evaluated on it.
"""

from __future__ import annotations

import dataclasses
import io
import zlib
from collections.abc import Callable

import numpy as np
import torch
from PIL import Image

from prunebench.data.splits import Split, TensorSplit

Corrupt = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]  # (N, C, H, W) in [0, 1], severity 1..5

# Parameters per severity 1..5, as the CIFAR-10-C code has them.
GAUSSIAN_NOISE = (0.04, 0.06, 0.08, 0.09, 0.10)  # standard deviation of additive noise
SHOT_NOISE = (500, 250, 100, 75, 50)  # photons at full intensity: Poisson(x * c) / c
IMPULSE_NOISE = (0.01, 0.02, 0.03, 0.05, 0.07)  # share of values set to 0 or 1 (half each)
SPECKLE_NOISE = (0.06, 0.10, 0.12, 0.16, 0.20)  # standard deviation of multiplicative noise: x + x * N(0, c)
GAUSSIAN_BLUR = (0.4, 0.6, 0.7, 0.8, 1.0)  # sigma in pixels; the kernel cut at 4 sigma, edges repeated
CONTRAST = (0.75, 0.5, 0.4, 0.3, 0.15)  # deviations from each image's channel mean scaled by c
BRIGHTNESS = (0.05, 0.10, 0.15, 0.20, 0.30)  # added to the HSV value, cut at 1
JPEG_QUALITY = (80, 65, 58, 50, 40)  # PIL's JPEG quality
PIXELATE = (0.95, 0.90, 0.85, 0.75, 0.65)  # box-downsampled to int(side * c), box-upsampled back


def gaussian_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x + rng.normal(size=x.shape, scale=GAUSSIAN_NOISE[severity - 1]), 0, 1)


def shot_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = SHOT_NOISE[severity - 1]
    return np.clip(rng.poisson(x * c) / c, 0, 1)


def impulse_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """Salt and pepper on every value (channel of a pixel) independently, as scikit-image's `s&p` mode draws it."""
    hit = rng.random(x.shape) < IMPULSE_NOISE[severity - 1]
    salt = rng.random(x.shape) < 0.5
    return np.where(hit, salt.astype(x.dtype), x)


def speckle_noise(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    return np.clip(x + x * rng.normal(size=x.shape, scale=SPECKLE_NOISE[severity - 1]), 0, 1)


def gaussian_blur(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """scipy.ndimage.gaussian_filter over height and width (what scikit-image's `gaussian` calls): a kernel of
    radius int(4 sigma + 0.5), edges extended by their nearest pixel."""
    sigma = GAUSSIAN_BLUR[severity - 1]
    radius = int(4.0 * sigma + 0.5)
    offsets = np.arange(-radius, radius + 1)
    weights = np.exp(-0.5 * (offsets / sigma) ** 2)
    weights /= weights.sum()
    out = x
    for axis in (2, 3):
        pad = [(0, 0)] * 4
        pad[axis] = (radius, radius)
        padded = np.pad(out, pad, mode="edge")
        size = out.shape[axis]
        out = sum(w * np.take(padded, np.arange(k, k + size), axis=axis) for k, w in enumerate(weights))
    return np.clip(out, 0, 1)


def contrast(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    means = x.mean(axis=(2, 3), keepdims=True)
    return np.clip((x - means) * CONTRAST[severity - 1] + means, 0, 1)


def brightness(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    """The HSV value (a pixel's largest channel) raised by c and cut at 1, hue and saturation kept: each channel
    scales by new value / old value, and a black pixel becomes grey at c (a grey image: every pixel + c, cut)."""
    value = x.max(axis=1, keepdims=True)
    raised = np.minimum(value + BRIGHTNESS[severity - 1], 1.0)
    scale = np.divide(raised, value, out=np.zeros_like(value), where=value > 0)
    return np.where(value > 0, x * scale, raised)


def jpeg_compression(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    def compress(image: Image.Image) -> Image.Image:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=JPEG_QUALITY[severity - 1])
        return Image.open(buffer)

    return _through_pil(x, compress)


def pixelate(x: np.ndarray, severity: int, rng: np.random.Generator) -> np.ndarray:
    c = PIXELATE[severity - 1]

    def blocks(image: Image.Image) -> Image.Image:
        small = (max(1, int(image.width * c)), max(1, int(image.height * c)))
        return image.resize(small, Image.Resampling.BOX).resize(image.size, Image.Resampling.BOX)

    return _through_pil(x, blocks)


def _through_pil(x: np.ndarray, apply: Callable[[Image.Image], Image.Image]) -> np.ndarray:
    """Each image as a PIL image of 0..255 (grey with one channel, RGB with three, else channel by channel)."""
    pixels = np.floor(np.clip(x, 0, 1) * 255 + 0.5).astype(np.uint8).transpose(0, 2, 3, 1)  # N, H, W, C
    out = np.empty_like(pixels)
    for i, image in enumerate(pixels):
        if image.shape[2] == 3:
            out[i] = np.asarray(apply(Image.fromarray(image, "RGB")).convert("RGB"))
        else:
            for ch in range(image.shape[2]):
                out[i, :, :, ch] = np.asarray(apply(Image.fromarray(image[:, :, ch], "L")).convert("L"))
    return out.transpose(0, 3, 1, 2).astype(np.float64) / 255


CORRUPTIONS: dict[str, Corrupt] = {
    f.__name__: f
    for f in (
        gaussian_noise,
        shot_noise,
        impulse_noise,
        speckle_noise,
        gaussian_blur,
        contrast,
        brightness,
        jpeg_compression,
        pixelate,
    )
}


def corruption_rng(name: str, severity: int, seed: int) -> np.random.Generator:
    """The generator of one (corruption, severity, seed): independent of which others a protocol asks for."""
    return np.random.default_rng([seed, zlib.crc32(name.encode()), severity])


def corrupted_split(split: Split, name: str, severity: int, seed: int) -> TensorSplit:
    """A copy of `split` with corruption `name` at `severity` applied to its stored pixels (see the module's
    docstring); its batches normalize as the clean split's do."""
    if not isinstance(split, TensorSplit):
        raise ValueError("corruptions need a split held in memory: a data set streamed from disk is not supported")
    scale = split.normalization.scale
    clean = split.images.double().numpy() / scale
    out = CORRUPTIONS[name](clean, severity, corruption_rng(name, severity, seed))
    # floored as the reference stores its files; 1e-7 keeps a value that is whole but for float rounding whole
    pixels = torch.from_numpy(np.floor(np.clip(out, 0, 1) * 255 + 1e-7).astype(np.uint8))
    return TensorSplit(
        images=pixels,
        labels=split.labels,
        indices=split.indices,
        source=f"{split.source} ({name}, severity {severity})",
        augmentation="none",
        normalization=dataclasses.replace(split.normalization, scale=255.0),
    )
