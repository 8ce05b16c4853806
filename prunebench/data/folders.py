"""Image folders (ImageFolder layout): class folders, their files, and decoding chosen files."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from prunebench.data.registry import IMAGE_EXTENSIONS, DatasetInfo, read_error, root_error


def class_folders(info: DatasetInfo, root: Path, directory: Path, hint: str) -> list[str]:
    try:
        classes = sorted(e.name for e in os.scandir(directory) if e.is_dir() and not e.name.startswith("."))
    except OSError as exc:
        raise root_error(info, root, f"cannot list {directory}: {exc.strerror}", hint) from None
    if not classes:
        raise root_error(info, root, f"{directory.name}/ holds no class folders", hint)
    return classes


def folder_files(info: DatasetInfo, root: Path, directory: Path, classes: Sequence[str]) -> tuple[list[str], Tensor]:
    """Image paths relative to `directory` (class by class, sorted by name) and their labels."""
    paths: list[str] = []
    labels: list[int] = []
    for label, name in enumerate(classes):
        try:
            files = sorted(
                e.name
                for e in os.scandir(directory / name)
                if e.name.lower().endswith(IMAGE_EXTENSIONS) and not e.name.startswith(".") and e.is_file()
            )
        except OSError as exc:
            raise root_error(info, root, f"cannot list {directory / name}: {exc.strerror}") from None
        if not files:
            raise root_error(info, root, f"{directory.name}/{name}/ holds no images (.jpg, .jpeg, .png)")
        paths.extend(f"{name}/{f}" for f in files)
        labels.extend([label] * len(files))
    return paths, torch.tensor(labels, dtype=torch.int64)


def folder_pair(info: DatasetInfo, root: Path, train: str, test: str, hint: str) -> list[str]:
    """The class folders, the same under train/ and test/."""
    classes = class_folders(info, root, root / train, hint)
    test_classes = class_folders(info, root, root / test, hint)
    if classes != test_classes:
        only_train = sorted(set(classes) - set(test_classes))[:3]
        only_test = sorted(set(test_classes) - set(classes))[:3]
        raise root_error(
            info,
            root,
            f"{train}/ and {test}/ hold different class folders (only in {train}/: {only_train}, "
            f"only in {test}/: {only_test})",
            hint,
        )
    if info.num_classes is not None and len(classes) != info.num_classes:
        raise root_error(
            info,
            root,
            f"{train}/ holds {len(classes)} class folders, {info.title} has {info.num_classes}",
            hint,
        )
    return classes


def decode_files(
    info: DatasetInfo, directory: Path, paths: Sequence[str], positions: Tensor, shape: tuple[int, int, int]
) -> Tensor:
    """Decode the chosen files with PIL (the decoder of torchvision's own data sets) into uint8 C x H x W."""
    from PIL import Image

    channels, height, width = shape
    out = np.empty((positions.numel(), height, width, channels), dtype=np.uint8)
    for k, i in enumerate(positions.tolist()):
        path = directory / paths[i]
        try:
            with Image.open(path) as image:
                image.load()
                pixels = np.asarray(image if image.mode == "RGB" else image.convert("RGB"))
        except (OSError, ValueError, Image.DecompressionBombError) as exc:
            raise read_error(info, path, f"not a readable image ({exc})") from None
        if pixels.shape != out.shape[1:]:
            raise read_error(info, path, f"the image is {pixels.shape[1]}x{pixels.shape[0]}, expected {width}x{height}")
        out[k] = pixels
    return torch.from_numpy(out).permute(0, 3, 1, 2).contiguous()
