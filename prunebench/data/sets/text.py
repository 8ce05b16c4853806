"""Text data sets of causal language modelling (task causal_lm): Python's own `pydoc_data/topics.py` (the
embedded language-model quickstart's corpus, in every CPython) and WikiText-2 raw (the references' perplexity
set), tokenized into windows (prunebench.data.tokens).

The splits are the data sets' own (topics: by a fixed hash of the topic's key, prunebench.language.tiny;
WikiText-2: its train, valid and test files), so `val_fraction`, `split_seed` and the subsets do not apply. The
tokenizer is a local directory's (`data.text.tokenizer`, a model's own) or a byte-level BPE trained on the training
split (`data.text.vocab_size`); its sha256 and the data files' go into every record.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path

from prunebench.data.registry import (
    DataBundle,
    DatasetInfo,
    data_root,
    read_error,
    register_dataset,
    root_error,
)
from prunebench.data.tokens import TextData
from prunebench.errors import FieldError
from prunebench.language import load_tokenizer, read_topics, read_wikitext2, tokenizer_sha256, train_tokenizer
from prunebench.language.corpus import PARQUET_SPLITS, file_digests
from prunebench.language.tiny import Topics
from prunebench.protocol import DataSpec
from prunebench.protocol.sections import expand_path

TEXT = ("data", "text")
Documents = dict[str, Sequence[str]]  # by split: train, val, test


def _check_spec(info: DatasetInfo, spec: DataSpec) -> None:
    if spec.text is None:
        raise FieldError(TEXT, f"{info.title} is text: data.text (seqlen, tokenizer) says how it becomes token windows")
    for name in ("train_subset", "test_subset"):
        if getattr(spec, name) is not None:
            raise FieldError(("data", name), f"{info.title} has fixed splits: a subset of its windows is not offered")
    if spec.text.tokenizer is not None:
        path = expand_path(spec.text.tokenizer, (*TEXT, "tokenizer"), "the tokenizer directory")
        if not path.is_dir():
            raise FieldError((*TEXT, "tokenizer"), f"the tokenizer directory {path} does not exist")


def _check_sha256(info: DatasetInfo, spec: DataSpec, data_sha256: str) -> None:
    assert spec.text is not None
    if spec.text.sha256 is not None and spec.text.sha256 != data_sha256:
        raise FieldError(
            (*TEXT, "sha256"),
            f"{info.title} here has sha256 {data_sha256[:12]}, not the protocol's {spec.text.sha256[:12]}: its "
            "perplexities would not be comparable with those of the pinned text",
        )


def _tokenizer(spec: DataSpec, train: Sequence[str]) -> object:
    assert spec.text is not None
    if spec.text.tokenizer is None:
        return train_tokenizer(train, spec.text.vocab_size)
    path = expand_path(spec.text.tokenizer, (*TEXT, "tokenizer"), "the tokenizer directory")
    try:
        return load_tokenizer(path)
    except ValueError as exc:
        raise FieldError((*TEXT, "tokenizer"), str(exc)) from None


def text_bundle(info: DatasetInfo, spec: DataSpec, documents: Documents, data_sha256: str) -> DataBundle:
    """The token-window splits of a text data set's documents."""
    assert spec.text is not None
    _check_sha256(info, spec, data_sha256)
    tokenizer = _tokenizer(spec, documents["train"])
    text = TextData(tokenizer, tokenizer_sha256(tokenizer), data_sha256, tuple(documents["train"]))
    seqlen = spec.text.seqlen
    splits = {
        name: text.split(docs, seqlen, None if name == "train" else spec.text.stride, source=f"{info.name}:{name}")
        for name, docs in documents.items()
    }
    for name, split in splits.items():
        if split.num_examples == 0:
            raise FieldError((*TEXT, "seqlen"), f"{seqlen} tokens: the {name} split of {info.title} has fewer tokens")
    return DataBundle(
        name=info.name,
        train=splits["train"],
        val=splits["val"],
        test=splits["test"],
        num_classes=len(tokenizer),  # type: ignore[arg-type]
        input_shape=(seqlen,),
        text=text,
    )


# ---- Python's topics --------------------------------------------------------------------------------
def _topics(info: DatasetInfo) -> Topics:
    try:
        return read_topics()
    except ValueError as exc:
        raise read_error(info, "pydoc_data", str(exc)) from None


def _topics_probe(info: DatasetInfo, spec: DataSpec) -> None:
    _check_spec(info, spec)
    _check_sha256(info, spec, _topics(info).sha256)


def _topics_read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    _check_spec(info, spec)
    topics = _topics(info)
    documents = {"train": topics.documents["train"], "val": topics.documents["validation"]}
    return text_bundle(info, spec, {**documents, "test": topics.documents["test"]}, topics.sha256)


def _topics_files() -> tuple[Path, ...]:
    """The corpus file: its test topics are the test split, so no job process may read it."""
    import importlib.util

    found = importlib.util.find_spec("pydoc_data.topics")
    return (Path(found.origin),) if found is not None and found.origin else ()


register_dataset(
    DatasetInfo(
        name="python_topics",
        title="Python's pydoc topics",
        description="the text of Python's help() topics (pydoc_data/topics.py, in every CPython; 465 K characters "
        "on 3.11.7), split by topic: 64 train, 5 validation, 10 test; the protocol pins its sha256",
        layout="nothing: the text ships with Python (data.root is ignored)",
        augmentations=("none",),
        num_classes=None,
        input_shape=(0,),
        text=True,
        probe=_topics_probe,
        read=_topics_read,
        needs_root=False,
        files=_topics_files,
    )
)


# ---- WikiText-2 ---------------------------------------------------------------------------------------
def _wikitext_reader(info: DatasetInfo, spec: DataSpec) -> Callable[[str], tuple[list[str], tuple[Path, ...]]]:
    root, hint = data_root(info, spec)

    def read(split: str) -> tuple[list[str], tuple[Path, ...]]:
        try:
            corpus = read_wikitext2(root, split)  # type: ignore[arg-type]
        except ValueError as exc:
            raise root_error(info, root, str(exc), hint) from None
        return corpus.texts, corpus.files

    return read


def _wikitext_probe(info: DatasetInfo, spec: DataSpec) -> None:
    _check_spec(info, spec)
    root, hint = data_root(info, spec)
    for split, stored in PARQUET_SPLITS.items():
        pattern = f"{stored}-*.parquet"
        if not (root / f"wiki.{split}.raw").is_file() and not any(
            (*root.glob(pattern), *(root / "wikitext-2-raw-v1").glob(pattern))
        ):
            raise root_error(info, root, f"neither wiki.{split}.raw nor {pattern} is there", hint)


def _wikitext_read(info: DatasetInfo, spec: DataSpec) -> DataBundle:
    _check_spec(info, spec)
    read = _wikitext_reader(info, spec)
    (train, f1), (val, f2), (test, f3) = (read(split) for split in ("train", "valid", "test"))
    return text_bundle(info, spec, {"train": train, "val": val, "test": test}, file_digests([*f1, *f2, *f3]))


register_dataset(
    DatasetInfo(
        name="wikitext2",
        title="WikiText-2 raw",
        description="WikiText-2 raw (Merity et al. 2016), the references' perplexity set: train, valid and test as "
        "released; perplexity as SparseGPT's and Wanda's code computes it",
        layout="wiki.train.raw, wiki.valid.raw and wiki.test.raw (the release), or the Hugging Face dataset's "
        "{train,validation,test}-*.parquet",
        augmentations=("none",),
        num_classes=None,
        input_shape=(0,),
        text=True,
        probe=_wikitext_probe,
        read=_wikitext_read,
        root_hint="set data.root to the folder of the release's wiki.*.raw files",
    )
)
