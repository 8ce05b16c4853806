"""The splits a causal LM is evaluated on are the references' perplexity, through the engine's evaluation: the
non-overlapping windows of SparseGPT's and Wanda's code, and with `data.text.stride` the sliding windows of
transformers' guide (prunebench.language.perplexity, checked against both in test_lm_protocol.py)."""

from __future__ import annotations

import math

import pytest
import torch

from prunebench.data import TokenSplit
from prunebench.data.tokens import IGNORED, sliding_windows, token_windows
from prunebench.engine import evaluate
from prunebench.language import hf_logits, perplexity, wikitext2_ids
from prunebench.tasks import CAUSAL_LM


def engine_perplexity(model: torch.nn.Module, split: TokenSplit, batch_size: int) -> float:
    result = evaluate(model, split, num_classes=256, batch_size=batch_size, device=torch.device("cpu"), task=CAUSAL_LM)
    return math.exp(result.loss)


@pytest.mark.parametrize("batch_size", [1, 3])
def test_non_overlapping_windows_are_the_references_perplexity(tiny_llama, encode, lines, batch_size) -> None:
    ids = wikitext2_ids(lines[:30], encode)
    split = TokenSplit(token_windows(ids, 48), source="test")
    assert split.num_examples == ids.numel() // 48
    reference = perplexity(hf_logits(tiny_llama), ids, 48)
    assert engine_perplexity(tiny_llama, split, batch_size) == pytest.approx(reference, rel=1e-6)


@pytest.mark.parametrize("batch_size", [1, 4])
def test_sliding_windows_are_the_sliding_perplexity(tiny_llama, encode, lines, batch_size) -> None:
    ids = wikitext2_ids(lines[:30], encode)
    windows, targets = sliding_windows(ids, 48, 16)
    scored = targets[:, 1:] != IGNORED  # what the task scores: every token after the first, once
    assert int(scored.sum()) == ids.numel() - 1
    assert windows.shape[1] == 48 and ids.numel() % 16 != 0  # the last window is short: padded
    reference = perplexity(hf_logits(tiny_llama), ids, 48, stride=16)
    ours = engine_perplexity(tiny_llama, TokenSplit(windows, source="test", targets=targets), batch_size)
    assert ours == pytest.approx(reference, rel=1e-5)
    assert ours != pytest.approx(perplexity(hf_logits(tiny_llama), ids, 48), rel=1e-3)


def test_a_stride_is_refused_beyond_the_window() -> None:
    with pytest.raises(ValueError, match="stride must be between 1 and seqlen 8"):
        sliding_windows(torch.arange(20), 8, 9)


def test_a_protocols_stride_slides_the_evaluation_splits_only() -> None:
    from prunebench.data import load_data
    from prunebench.language import read_topics
    from prunebench.protocol import DataSpec

    plain = load_data(DataSpec.model_validate({"name": "python_topics", "text": {"seqlen": 64, "vocab_size": 300}}))
    spec = DataSpec.model_validate({"name": "python_topics", "text": {"seqlen": 64, "vocab_size": 300, "stride": 32}})
    sliding = load_data(spec)
    assert torch.equal(sliding.train.windows, plain.train.windows)  # training: non-overlapping windows, always
    text = sliding.text
    assert text is not None and sliding.test is not None and plain.test is not None
    windows, targets = sliding_windows(text.encode("\n\n".join(read_topics().documents["test"])), 64, 32)
    assert torch.equal(sliding.test.windows, windows) and torch.equal(sliding.test.targets, targets)
    assert sliding.test.num_examples > 2 * plain.test.num_examples - 2  # twice the windows, the tail included
