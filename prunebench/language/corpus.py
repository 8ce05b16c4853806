"""Local text in the layouts the language-model references read, as lists of documents, each with the sha256 of the
files it came from.

- WikiText-2 raw (Merity et al. 2016): `read_wikitext2` gives a split's lines exactly as the Hugging Face dataset
  `wikitext`/`wikitext-2-raw-v1` holds them, which is what locuslab/wanda's `lib/data.py` and IST-DASLab/sparsegpt's
  `datautils.py` join (`get_wikitext2`). From the release's `wiki.{train,valid,test}.raw`, the lines are those of
  the dataset's builder (huggingface/datasets, `datasets/wikitext/wikitext.py`, `_generate_examples`): the file
  read as UTF-8 text line by line (universal newlines), a line keeping its "\\n", a blank or whitespace-only line
  given as "". From the dataset's parquet files (`{split}-*.parquet`, e.g. `wikitext-2-raw-v1/test-00000-of-00001
  .parquet`), the `text` column as stored; reading them needs pyarrow.
- C4 (Raffel et al. 2020): `read_c4` gives the `text` of every line of `c4-*.json.gz` shards (one JSON object a
  line), in file order: the rows `datasets.load_dataset('allenai/c4', data_files=...)` indexes in `get_c4`.
- Plain text: `read_text`, a file's lines without their line breaks (the `text` builder's default) or the whole
  file as one document.

The digest of one file is its `sha256sum`; of several, the sha256 of their `sha256sum` listing (digest, two
spaces, file name, newline; in reading order).
"""

from __future__ import annotations

import gzip
import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

WikiSplit = Literal["train", "valid", "test"]
PARQUET_SPLITS = {"train": "train", "valid": "validation", "test": "test"}


@dataclass(frozen=True)
class Corpus:
    """Documents (or lines) in reading order, the files they came from and the digest of those files."""

    texts: list[str]
    files: tuple[Path, ...]
    sha256: str


def file_digests(files: Sequence[Path]) -> str:
    """`sha256sum` of one file; of several, the sha256 of their `sha256sum` listing."""
    digests = []
    for path in files:
        h = hashlib.sha256()
        with path.open("rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                h.update(block)
        digests.append(h.hexdigest())
    if len(files) == 1:
        return digests[0]
    listing = "".join(f"{digest}  {path.name}\n" for digest, path in zip(digests, files, strict=True))
    return hashlib.sha256(listing.encode()).hexdigest()


def require_file(path: Path, what: str) -> Path:
    if not path.is_file():
        raise ValueError(f"{what} {path} does not exist or is not a file")
    return path


def read_wikitext2(root: Path | str, split: WikiSplit = "test") -> Corpus:
    """One split of WikiText-2 raw from `root`: the release's `wiki.{split}.raw`, else the Hugging Face dataset's
    parquet files `{split}-*.parquet` in `root` or `root/wikitext-2-raw-v1` (split `valid` is named `validation`
    there)."""
    root = Path(root)
    if split not in PARQUET_SPLITS:
        raise ValueError(f"the WikiText-2 split must be train, valid or test, not {split!r}")
    raw = root / f"wiki.{split}.raw"
    if raw.is_file():
        with raw.open(encoding="utf-8") as f:
            lines = [line if line.strip() else "" for line in f]
        return Corpus(lines, (raw,), file_digests([raw]))
    pattern = f"{PARQUET_SPLITS[split]}-*.parquet"
    shards = sorted(root.glob(pattern)) or sorted((root / "wikitext-2-raw-v1").glob(pattern))
    if not shards:
        raise ValueError(f"WikiText-2's {split} split is not in {root}: neither {raw.name} nor {pattern} is there")
    return Corpus(read_parquet_text(shards), tuple(shards), file_digests(shards))


def read_parquet_text(shards: Sequence[Path]) -> list[str]:
    """The `text` column of parquet files, in order (pyarrow, imported only here)."""
    try:
        import pyarrow.parquet as pq
    except ImportError as e:
        raise ImportError(
            "reading the Hugging Face parquet files of WikiText-2 needs pyarrow, which is not installed: "
            "pip install pyarrow (the release's wiki.*.raw files need nothing)"
        ) from e
    texts: list[str] = []
    for shard in shards:
        texts.extend(pq.read_table(shard, columns=["text"]).column("text").to_pylist())
    return texts


def read_c4(shards: Sequence[Path | str]) -> Corpus:
    """The `text` of every JSON line of C4 shards (`.json.gz`, or plain `.json`), shard after shard."""
    paths = tuple(require_file(Path(p), "the C4 shard") for p in shards)
    if not paths:
        raise ValueError("read_c4 needs at least one shard file")
    texts: list[str] = []
    for path in paths:
        with gzip.open(path, "rt", encoding="utf-8") if path.suffix == ".gz" else path.open(encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():  # none in C4's shards; a trailing newline in a hand-made one
                    continue
                record = json.loads(line)
                if not isinstance(record, dict) or not isinstance(record.get("text"), str):
                    raise ValueError(f"line {number} of {path} is not a JSON object with a string `text` field")
                texts.append(record["text"])
    return Corpus(texts, paths, file_digests(paths))


def read_text(path: Path | str, by: Literal["line", "document"] = "line") -> Corpus:
    """A UTF-8 text file's lines without their line breaks (`str.splitlines`, as the Hugging Face `text` builder
    by default), or the whole file as one document (`by="document"`)."""
    if by not in ("line", "document"):
        raise ValueError(f"read_text reads by line or document, not {by!r}")
    file = require_file(Path(path), "the text file")
    text = file.read_text(encoding="utf-8")
    return Corpus(text.splitlines() if by == "line" else [text], (file,), file_digests([file]))
