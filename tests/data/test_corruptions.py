"""The corruptions of prunebench.data.corruptions against values computed by hand from the definitions of
Hendrycks & Dietterich's CIFAR-10-C code (hendrycks/robustness, ImageNet-C/create_c/make_cifar_c.py: parameters per
severity, restated), on fixed tiny images; the random ones by the moments their parameters give."""

from __future__ import annotations

import colorsys
import io
import math

import numpy as np
import pytest
import torch
from PIL import Image

from prunebench.data import Normalization, TensorSplit
from prunebench.data.corruptions import CORRUPTIONS, corrupted_split, corruption_rng
from prunebench.protocol.evaluations import CORRUPTIONS as PROTOCOL_NAMES


def image(*rows: list[float], channels: int = 1) -> np.ndarray:
    """One image (1 x C x H x W) of the rows given, the same in every channel."""
    return np.repeat(np.array(rows, dtype=np.float64)[None, None], channels, axis=1)


def apply(name: str, x: np.ndarray, severity: int, seed: int = 0) -> np.ndarray:
    return CORRUPTIONS[name](x, severity, corruption_rng(name, severity, seed))


def test_the_protocol_names_every_corruption_there_is_and_no_other() -> None:
    assert tuple(CORRUPTIONS) == PROTOCOL_NAMES


def test_gaussian_blur_of_a_point_is_the_kernel_cut_at_four_sigma() -> None:
    # Severity 5: sigma 1, radius int(4 * 1 + 0.5) = 4; weights exp(-k^2 / 2) over k = -4..4, normalized.
    x = np.zeros((1, 1, 9, 9))
    x[0, 0, 4, 4] = 1.0
    w0 = 1 / (1 + 2 * (math.exp(-0.5) + math.exp(-2) + math.exp(-4.5) + math.exp(-8)))
    out = apply("gaussian_blur", x, 5)[0, 0]
    assert out[4, 4] == pytest.approx(w0 * w0, rel=1e-12)
    assert out[4, 5] == pytest.approx(w0 * w0 * math.exp(-0.5), rel=1e-12)
    assert out[0, 0] == pytest.approx((w0 * math.exp(-8)) ** 2, rel=1e-12)


def test_gaussian_blur_extends_the_edges_by_their_nearest_pixel() -> None:
    # Severity 1: sigma 0.4, radius int(1.6 + 0.5) = 2; a bright first column, rows alike (no vertical change).
    a, b = math.exp(-0.5 / 0.16), math.exp(-2 / 0.16)
    w0 = 1 / (1 + 2 * a + 2 * b)
    w1, w2 = a * w0, b * w0
    x = image(*[[1.0, 0, 0, 0, 0]] * 5)
    out = apply("gaussian_blur", x, 1)[0, 0]
    expected = [w0 + w1 + w2, w1 + w2, w2, 0.0, 0.0]  # offsets -1 and -2 of column 0 are column 0 again
    for row in out:
        assert row == pytest.approx(expected, abs=1e-15)


def test_contrast_scales_the_deviations_from_each_channels_mean() -> None:
    x = np.concatenate([image([0.0, 1.0], [0.5, 0.5]), image([0.2, 0.2], [0.2, 0.6])], axis=1)  # means 0.5, 0.3
    out = apply("contrast", x, 2)  # c = 0.5
    assert out[0, 0] == pytest.approx(np.array([[0.25, 0.75], [0.5, 0.5]]))
    assert out[0, 1] == pytest.approx(np.array([[0.25, 0.25], [0.25, 0.45]]))
    assert apply("contrast", image([0.0, 1.0]), 5)[0, 0, 0] == pytest.approx([0.425, 0.575])  # c = 0.15


def test_brightness_raises_the_hsv_value() -> None:
    grey = apply("brightness", image([100 / 255, 0.9]), 5)[0, 0, 0]  # + 0.3, cut at 1
    assert grey == pytest.approx([100 / 255 + 0.3, 1.0])
    rgb = np.array([100, 50, 0], dtype=np.float64).reshape(1, 3, 1, 1) / 255
    out = apply("brightness", rgb, 1)[0, :, 0, 0] * 255  # V 100/255 + 0.05 = 112.75/255: every channel x 1.1275
    assert out == pytest.approx([112.75, 56.375, 0.0])
    black = apply("brightness", np.zeros((1, 3, 1, 1)), 3)[0, :, 0, 0]  # no hue: grey at 0.15
    assert black == pytest.approx([0.15, 0.15, 0.15])
    # The same as the HSV round trip (colorsys: the conversions scikit-image's rgb2hsv/hsv2rgb compute).
    pixels = np.random.default_rng(0).random((1, 3, 4, 4))
    out = apply("brightness", pixels, 4)
    for i in range(4):
        for j in range(4):
            h, s, v = colorsys.rgb_to_hsv(*pixels[0, :, i, j])
            assert out[0, :, i, j] == pytest.approx(colorsys.hsv_to_rgb(h, s, min(v + 0.2, 1.0)))


def test_pixelate_box_samples_down_to_three_quarters_and_back() -> None:
    # Severity 4: 20 x 20 -> int(20 * 0.75) = 15 -> 20 with PIL's box filter, which averages the input pixels whose
    # centres fall in an output pixel's box: each 4 pixels [x0, x1, x2, x3] become [x0, (x1 + x2) / 2, x3] going
    # down, and each output pixel copies the one under its centre going up. (0.85 or 0.65 would give 17 or 13.)
    x = image(*[[0, 60, 100, 240] * 5] * 20) / 255
    out = apply("pixelate", x, 4)[0, 0] * 255
    for row in out:
        assert row == pytest.approx([0, 80, 80, 240] * 5)


def test_jpeg_compression_is_pils_jpeg_at_the_severitys_quality() -> None:
    rng = np.random.default_rng(1)
    pixels = rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)
    for severity, quality in ((1, 80), (5, 40)):
        buffer = io.BytesIO()
        Image.fromarray(pixels, "RGB").save(buffer, format="JPEG", quality=quality)
        expected = np.asarray(Image.open(buffer).convert("RGB")).transpose(2, 0, 1)
        out = apply("jpeg_compression", pixels.transpose(2, 0, 1)[None] / 255, severity)[0] * 255
        assert np.array_equal(np.rint(out).astype(np.uint8), expected)
    flat = apply("jpeg_compression", np.full((1, 1, 8, 8), 128 / 255), 5)  # a flat block keeps its value
    assert np.allclose(flat, 128 / 255)


@pytest.mark.parametrize(
    ("name", "severity", "level", "mean", "std"),
    [
        ("gaussian_noise", 1, 0.5, 0.5, 0.04),  # x + N(0, 0.04)
        ("gaussian_noise", 5, 0.5, 0.5, 0.10),
        ("shot_noise", 1, 0.5, 0.5, math.sqrt(250) / 500),  # Poisson(0.5 * 500) / 500
        ("shot_noise", 5, 0.5, 0.5, math.sqrt(25) / 50),
        ("speckle_noise", 1, 0.5, 0.5, 0.5 * 0.06),  # x + x N(0, 0.06)
        ("speckle_noise", 5, 0.5, 0.5, 0.5 * 0.20),
    ],
)
def test_noise_has_the_moments_of_its_severity(name: str, severity: int, level: float, mean: float, std: float) -> None:
    out = apply(name, np.full((1, 1, 200, 200), level), severity)
    assert out.mean() == pytest.approx(mean, abs=4 * std / 200)
    assert out.std() == pytest.approx(std, rel=0.03)


@pytest.mark.parametrize(("severity", "amount"), [(1, 0.01), (5, 0.07)])
def test_impulse_noise_sets_its_share_of_values_to_zero_or_one(severity: int, amount: float) -> None:
    out = apply("impulse_noise", np.full((1, 3, 100, 100), 0.5), severity)
    hit = out != 0.5
    assert hit.mean() == pytest.approx(amount, rel=0.1)
    assert set(np.unique(out[hit])) == {0.0, 1.0} and (out[hit] == 1).mean() == pytest.approx(0.5, abs=0.05)


def test_random_corruptions_are_fixed_by_their_seed_and_nothing_else() -> None:
    x = np.full((2, 1, 8, 8), 0.5)
    assert np.array_equal(apply("gaussian_noise", x, 3, seed=7), apply("gaussian_noise", x, 3, seed=7))
    assert not np.array_equal(apply("gaussian_noise", x, 3, seed=7), apply("gaussian_noise", x, 3, seed=8))
    assert not np.array_equal(apply("gaussian_noise", x, 3), apply("gaussian_noise", x, 4))


def test_a_corrupted_split_holds_the_corrupted_pixels_floored_and_normalizes_as_the_clean_one() -> None:
    # Digits' scale: 0..16. Contrast 0.75 of [0, 16, 8, 8] / 16 (mean 0.5): [0.125, 0.875, 0.5, 0.5] x 255, floored.
    norm = Normalization((0.3,), (0.4,), 16.0)
    clean = TensorSplit(
        images=torch.tensor([[[[0, 16], [8, 8]]]], dtype=torch.uint8),
        labels=torch.tensor([3]),
        indices=torch.tensor([0]),
        source="test",
        augmentation="none",
        normalization=norm,
    )
    out = corrupted_split(clean, "contrast", 1, seed=0)
    assert out.images.dtype == torch.uint8 and out.images.flatten().tolist() == [31, 223, 127, 127]
    assert out.labels.tolist() == [3] and out.normalization.scale == 255.0
    x, _ = next(iter(out.batches(4, shuffle=False, train=False, generator=None, device=torch.device("cpu"))))
    assert x.flatten().tolist() == pytest.approx([(v / 255 - 0.3) / 0.4 for v in (31, 223, 127, 127)], abs=1e-6)
    same = corrupted_split(clean, "brightness", 1, seed=0)  # 0 -> 0.05, 1 stays, 0.5 -> 0.55
    assert same.images.flatten().tolist() == [12, 255, 140, 140]
