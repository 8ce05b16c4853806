"""A tiny causal LM with random weights (LLaMA's architecture: 2 layers, hidden 64, 4 heads over 2 key-value heads,
grouped-query attention), a byte-level "tokenizer" (UTF-8 bytes, vocabulary 256) and WikiText-like lines, so that the
references' loops can be run beside ours without downloading anything."""

from __future__ import annotations

import random

import pytest
import torch

WORDS = ("the", "of", "and", "in", "to", "a", "was", "is", "for", "on", "as", "by", "with", "he", "at", "from")


def encode_bytes(text: str) -> list[int]:
    """Token ids of a byte-level vocabulary: the text's UTF-8 bytes."""
    return list(text.encode("utf-8"))


def wiki_lines(count: int, seed: int = 0) -> list[str]:
    """Lines laid out as the WikiText-2 dataset's: headings, sentences ending in "\\n", blank lines as ""."""
    rng = random.Random(seed)
    lines: list[str] = []
    for k in range(count):
        if k % 7 == 0:
            lines += ["", f" = Heading {k} = \n", ""]
        else:
            lines.append(" " + " ".join(rng.choice(WORDS) for _ in range(rng.randint(3, 30))) + " . \n")
    return lines


@pytest.fixture(scope="module")
def tiny_llama() -> torch.nn.Module:
    from transformers import LlamaConfig, LlamaForCausalLM

    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=256,
        hidden_size=64,
        intermediate_size=256,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=64,
    )
    return LlamaForCausalLM(config).eval()


@pytest.fixture(scope="session")
def encode() -> object:
    return encode_bytes


@pytest.fixture(scope="session")
def lines() -> list[str]:
    return wiki_lines(120)
