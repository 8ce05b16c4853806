"""A tiny causal LM with random weights (LLaMA's architecture: 2 layers, hidden 64, 4 heads over 2 key-value heads,
grouped-query attention), a byte-level "tokenizer" (UTF-8 bytes, vocabulary 256), WikiText-like lines and what the
linear layers of its first decoder layer see of calibration windows (`captured`), so that the references' loops can
be run beside ours without downloading anything."""

from __future__ import annotations

import random

import pytest
import torch
from torch import Tensor, nn

from prunebench.language import wikitext2_calibration

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


@pytest.fixture(scope="module")
def captured(tiny_llama, encode, lines) -> dict[str, tuple[Tensor, list[Tensor]]]:
    """Each linear layer of decoder layer 0: its weight and its input on each of 8 windows of 64 bytes, run one window
    at a time, as the references' forward hooks see them."""
    calibration = wikitext2_calibration(lines, encode, nsamples=8, seqlen=64, seed=0)
    layer = tiny_llama.model.layers[0]
    linears = {name: m for name, m in layer.named_modules() if isinstance(m, nn.Linear)}
    inputs: dict[str, list[Tensor]] = {name: [] for name in linears}
    hooks = [m.register_forward_hook(lambda _m, inp, _out, n=n: inputs[n].append(inp[0])) for n, m in linears.items()]
    with torch.no_grad():
        for window in calibration.inputs:
            tiny_llama(window[None], use_cache=False)
    for hook in hooks:
        hook.remove()
    return {name: (m.weight.detach().clone(), inputs[name]) for name, m in linears.items()}


def in_batches(inputs: list[Tensor]) -> list[Tensor]:
    """The 8 samples' inputs as batches of 1, 3 and 2 samples, one 2-D sample (tokens x features) and 1 sample."""
    return [inputs[0], torch.cat(inputs[1:4]), torch.cat(inputs[4:6]), inputs[6][0], inputs[7]]


@pytest.fixture(scope="session")
def batches() -> object:
    return in_batches
