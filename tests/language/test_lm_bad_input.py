"""Bad input of the language-model track: one line naming the file, line and field, exit 2, nothing written."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from prunebench.testing import TINY

LM = textwrap.dedent(
    """\
    name: tiny_lm
    task: causal_lm
    data:
      name: python_topics
      text: {seqlen: 32, vocab_size: 300}
    model: {name: tiny_llama, args: {layers: 1, hidden: 32, heads: 2, kv_heads: 1, intermediate: 64, positions: 32}}
    base: {epochs: 0, batch_size: 64, optimizer: {name: adamw, lr: 0.003}}
    pruning:
      sparsities: [0.5, 0.7]
      prunable: {layer_types: [linear], include_last: false}
      calibration: {source: train, nsamples: 8}
    retrain: {epochs: 0, batch_size: 64}
    comparison: S4.1
    seeds: [0]
    methods:
      - name: wanda
    """
)
BAD = [
    # (protocol, replace this, with this, expected fragment of the one-line error)
    (LM, "  text: {seqlen: 32, vocab_size: 300}\n", "", ":3:1: data: a causal_lm protocol needs data.text"),
    (TINY, "{name: digits}", "{name: digits, text: {seqlen: 8}}", "data.text: only a causal_lm protocol has it"),
    (
        LM,
        "  - name: wanda\n",
        "  - name: wanda\n    config: {n_m: '2:4'}\n",
        "methods[0].name: wanda cannot prune tiny_llama to sparsity 0.7: N:M 2:4 prunes 0.5 of the weights",
    ),
    (
        LM,
        "  - name: wanda\n",
        "  - name: wanda\n    sparsities: [0.3]\n",
        "methods[0].sparsities: 0.3: a method's sparsities are some of pruning.sparsities (0.5, 0.7)",
    ),
    (LM, "{source: train, nsamples: 8}", "{source: c4, nsamples: 8}", "C4 calibration needs its local shards"),
    (
        LM,
        "{name: tiny_llama, args: {layers: 1, hidden: 32, heads: 2, kv_heads: 1, intermediate: 64, positions: 32}}",
        "{name: hf_causal_lm, args: {path: /nonexistent/llama-2-7b}}",
        "model.args.path: the model directory /nonexistent/llama-2-7b does not exist",
    ),
    (
        LM,
        "vocab_size: 300}",
        f"vocab_size: 300, sha256: '{'0' * 64}'}}",
        "data.text.sha256: Python's pydoc topics here",
    ),
    (LM, "seqlen: 32,", "seqlen: 64,", "seqlen 64 exceeds the model's max_position_embeddings 32"),
    (
        LM,
        "{name: tiny_llama, args: {layers: 1, hidden: 32, heads: 2, kv_heads: 1, intermediate: 64, positions: 32}}",
        "{name: small_cnn}",
        "model.name: model 'small_cnn' takes images, and the data set gives token windows",
    ),
    (LM, "vocab_size: 300}", "vocab_size: 300, tokenizer: /nonexistent/tok}", "the tokenizer directory /nonexistent"),
]


@pytest.mark.parametrize(("text", "old", "new", "fragment"), BAD, ids=[b[3][:40] for b in BAD])
def test_bad_language_input_is_one_line(cli, tmp_path: Path, text: str, old: str, new: str, fragment: str) -> None:
    assert old in text
    path = tmp_path / "bad.yaml"
    path.write_text(text.replace(old, new))
    results = tmp_path / "results"
    results.mkdir()
    res = cli("run", path, "--results", results, "--cache", tmp_path / "c")
    lines = res.err.strip().splitlines()
    assert res.code == 2 and len(lines) == 1 and "Traceback" not in res.err, res
    assert lines[0].startswith(f"error: {path}:") and fragment in lines[0], lines[0]
    assert list(results.iterdir()) == []


def test_without_the_language_libraries_the_protocol_says_how_to_get_them(cli, tmp_path: Path, monkeypatch) -> None:
    import sys

    path = tmp_path / "lm.yaml"
    path.write_text(LM)
    monkeypatch.setitem(sys.modules, "transformers", None)  # as if it were not installed: importing it fails
    res = cli("validate", path)
    assert res.code == 2 and len(res.err.strip().splitlines()) == 1, res
    assert f"error: {path}:2:" in res.err and "task: a causal_lm protocol needs transformers and tokenizers" in res.err
    assert "pip install 'prunebench[lm]'" in res.err
