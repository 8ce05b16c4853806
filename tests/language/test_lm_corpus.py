"""Local corpora read as the references read them (WikiText-2 raw as the Hugging Face dataset's rows, C4 shards'
`text` in file order, plain text), with the sha256 of the files, and one clear sentence for a missing file."""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
from pathlib import Path

import pytest

from prunebench.language import read_c4, read_text, read_wikitext2

RAW = " \n = Valkyria Chronicles III = \n \n Senjō no Valkyria 3 : 1 @,@ 000 \u2028 units .\n\n = = Plot = = \n"


def reference_rows(path: Path) -> list[str]:
    """huggingface/datasets `datasets/wikitext/wikitext.py` `_generate_examples`: every line of the file opened as
    UTF-8 text, kept with its newline, or "" where it is blank."""
    with open(path, encoding="utf-8") as f:
        return [row if row.strip() else "" for row in f]


def test_wikitext2_raw_reads_the_datasets_rows(tmp_path: Path) -> None:
    (tmp_path / "wiki.test.raw").write_text(RAW, encoding="utf-8")
    corpus = read_wikitext2(tmp_path, "test")
    assert corpus.texts == reference_rows(tmp_path / "wiki.test.raw")
    assert corpus.texts[:3] == ["", " = Valkyria Chronicles III = \n", ""]
    assert "\u2028" in corpus.texts[3]  # lines end at "\n" only, not at every str.splitlines boundary
    assert corpus.sha256 == hashlib.sha256(RAW.encode()).hexdigest()
    assert corpus.files == (tmp_path / "wiki.test.raw",)


def test_wikitext2_parquet_needs_pyarrow(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "wikitext-2-raw-v1").mkdir()
    (tmp_path / "wikitext-2-raw-v1" / "validation-00000-of-00001.parquet").write_bytes(b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)
    with pytest.raises(ImportError, match="needs pyarrow, which is not installed"):
        read_wikitext2(tmp_path, "valid")


def test_wikitext2_parquet_is_read_in_order(tmp_path: Path) -> None:
    pa = pytest.importorskip("pyarrow")  # not a dependency: the raw release needs nothing
    import pyarrow.parquet as pq

    (tmp_path / "wiki.valid.raw").write_text(RAW, encoding="utf-8")
    rows = reference_rows(tmp_path / "wiki.valid.raw")  # the parquet files hold the builder's rows
    pq.write_table(pa.table({"text": rows[:2]}), tmp_path / "test-00000-of-00002.parquet")
    pq.write_table(pa.table({"text": rows[2:]}), tmp_path / "test-00001-of-00002.parquet")
    corpus = read_wikitext2(tmp_path, "test")
    assert corpus.texts == rows and len(corpus.files) == 2


def test_c4_shards_give_every_text_in_order(tmp_path: Path) -> None:
    shards = [tmp_path / "c4-train.00000-of-01024.json.gz", tmp_path / "c4-train.00001-of-01024.json.gz"]
    docs = [["first document\nof two lines", "second"], ["third, with \u00e9"]]
    for shard, texts in zip(shards, docs, strict=True):
        with gzip.open(shard, "wt", encoding="utf-8") as f:
            f.writelines(json.dumps({"text": t, "timestamp": "2019-04-25", "url": "u"}) + "\n" for t in texts)
    corpus = read_c4(shards)
    assert corpus.texts == ["first document\nof two lines", "second", "third, with \u00e9"]
    listing = "".join(f"{hashlib.sha256(s.read_bytes()).hexdigest()}  {s.name}\n" for s in shards)
    assert corpus.sha256 == hashlib.sha256(listing.encode()).hexdigest()
    bad = tmp_path / "bad.json"
    bad.write_text('{"text": "fine"}\n["no text"]\n')
    with pytest.raises(ValueError, match=r"line 2 of .*bad\.json is not a JSON object with a string `text` field"):
        read_c4([bad])


def test_plain_text_by_line_or_document(tmp_path: Path) -> None:
    path = tmp_path / "notes.txt"
    path.write_text("one\r\ntwo\n\nthree", encoding="utf-8", newline="")
    assert read_text(path).texts == ["one", "two", "", "three"]
    assert read_text(path, by="document").texts == ["one\ntwo\n\nthree"]  # universal newlines, as open() reads


def test_a_missing_file_is_one_sentence_naming_it(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match=f"WikiText-2's test split is not in {tmp_path}: neither wiki.test.raw nor"):
        read_wikitext2(tmp_path, "test")
    with pytest.raises(ValueError, match=r"the C4 shard .*c4-train\.00000-of-01024\.json\.gz does not exist"):
        read_c4([tmp_path / "c4-train.00000-of-01024.json.gz"])
    with pytest.raises(ValueError, match=r"the text file .*missing\.txt does not exist or is not a file"):
        read_text(tmp_path / "missing.txt")
