"""prunebench.language.tiny: the quickstart's corpus (Python's pydoc_data/topics.py) reads and splits the same way
every time, its tokenizer trains to the same file twice and gives text back exactly, and the tiny LLaMA
configuration builds a grouped-query-attention model that runs."""

from __future__ import annotations

import hashlib
import sys

import pytest
import torch

from prunebench.language import perplexity, wikitext2_ids
from prunebench.language.tiny import (
    SEPARATOR,
    SPLITS,
    TOPICS_3_11_7,
    read_topics,
    split_of,
    tiny_llama_config,
    tokenizer_sha256,
    topics_mismatch,
    train_tokenizer,
)

pytest.importorskip("transformers")


@pytest.fixture(scope="module")
def topics():
    return read_topics()


@pytest.fixture(scope="module")
def tokenizer(topics):
    return train_tokenizer(topics.documents["train"], vocab_size=1024)


def test_the_corpus_is_every_topic_once_split_by_a_hash_of_its_key(topics) -> None:
    from pydoc_data.topics import topics as raw

    assert read_topics() == topics
    keys = sorted(raw)
    assert sorted(k for split in SPLITS for k in topics.keys[split]) == keys
    for split in SPLITS:
        assert topics.keys[split] == sorted(topics.keys[split]) and topics.keys[split]
        assert topics.documents[split] == [raw[k] for k in topics.keys[split]]
        assert all(split_of(k) == split for k in topics.keys[split])
    bucket = {k: int(hashlib.sha256(k.encode()).hexdigest(), 16) % 10 for k in keys}
    assert topics.keys["test"] == [k for k in keys if bucket[k] == 0]
    assert topics.keys["validation"] == [k for k in keys if bucket[k] == 1]
    joined = SEPARATOR.join(raw[k] for k in keys)
    assert topics.characters == len(joined) and topics.sha256 == hashlib.sha256(joined.encode()).hexdigest()
    assert topics.text("test") == "\n\n".join(raw[k] for k in topics.keys["test"])
    assert topics.file.name == "topics.py" and topics.file.parent.name == "pydoc_data"
    if sys.version_info[:3] == (3, 11, 7):
        assert topics.sha256 == TOPICS_3_11_7 and topics.characters == 465_126
        assert [len(topics.keys[s]) for s in SPLITS] == [64, 5, 10]


def test_a_pinned_hash_that_differs_is_one_line(topics) -> None:
    assert topics_mismatch(topics.sha256, topics) is None
    line = topics_mismatch("0" * 64, topics)
    assert line is not None and "\n" not in line
    assert f"text sha256 {topics.sha256[:12]}, not the protocol's 000000000000" in line
    assert str(topics.file) in line


def test_the_tokenizer_trains_deterministically_and_round_trips(topics, tokenizer) -> None:
    assert tokenizer_sha256(train_tokenizer(topics.documents["train"], vocab_size=1024)) == tokenizer_sha256(tokenizer)
    assert tokenizer_sha256(train_tokenizer(topics.documents["train"], vocab_size=512)) != tokenizer_sha256(tokenizer)
    assert len(tokenizer) == 1024 and (tokenizer.bos_token_id, tokenizer.eos_token_id) == (0, 1)
    for split in SPLITS:
        text = topics.text(split)
        ids = tokenizer(text)["input_ids"]
        assert ids[0] == 0 and 0 not in ids[1:] and len(ids) < len(text) / 2  # BOS once; merges compress
        assert tokenizer.decode(ids, skip_special_tokens=True) == text
    odd = "  café — 名前\t\r\n\x00 ok "
    assert tokenizer.decode(tokenizer(odd)["input_ids"], skip_special_tokens=True) == odd
    with pytest.raises(
        ValueError, match=r"^vocab_size must hold the 256 bytes and BOS and EOS, at least 258, got 100$"
    ):
        train_tokenizer(["x"], vocab_size=100)


def test_the_tiny_config_builds_a_grouped_query_llama_that_runs(topics, tokenizer) -> None:
    from transformers import LlamaForCausalLM

    config = tiny_llama_config(len(tokenizer))
    assert config.num_key_value_heads < config.num_attention_heads and not config.tie_word_embeddings
    torch.manual_seed(0)
    model = LlamaForCausalLM(config).eval()
    attention = model.model.layers[0].self_attn
    assert (
        attention.k_proj.out_features == config.num_key_value_heads * config.hidden_size // config.num_attention_heads
    )
    ids = wikitext2_ids(topics.documents["validation"], lambda text: tokenizer(text)["input_ids"])
    assert torch.equal(ids, torch.tensor(tokenizer(topics.text("validation"))["input_ids"]))
    with torch.no_grad():
        logits = model(ids[None, :64]).logits
    assert logits.shape == (1, 64, 1024) and torch.isfinite(logits).all()
    untrained = perplexity(lambda batch: model(batch).logits, ids[:1024], 128)
    assert 500 < untrained < 2000  # about the vocabulary's size at initialization
