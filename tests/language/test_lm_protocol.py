"""The calibration windows and the perplexity of prunebench.language equal the references' loops, restated here
step by step (not imported) from locuslab/wanda 8e8fc87 `lib/data.py`, `lib/eval.py` and IST-DASLab/sparsegpt
147d215 `datautils.py`, `llama.py`, on a tiny random LLaMA and byte-level tokens."""

from __future__ import annotations

import contextlib
import random

import pytest
import torch
from torch import nn

from prunebench.language import (
    c4_calibration,
    c4_validation_ids,
    check_seqlen,
    hf_logits,
    perplexity,
    wikitext2_calibration,
    wikitext2_ids,
    windows,
)


def reference_c4_calibration(documents, encode, nsamples, seed, seqlen):
    """`get_c4` (both repositories): seed Python's global generator; per sample, draw document indices until one
    tokenizes to more than seqlen ids, draw a start in [0, len - seqlen - 1], keep seqlen ids; the target is the
    window with all but its last id replaced by -100."""
    random.seed(seed)
    loader = []
    for _ in range(nsamples):
        while True:
            doc = random.randint(0, len(documents) - 1)
            ids = torch.tensor([encode(documents[doc])])
            if ids.shape[1] > seqlen:
                break
        start = random.randint(0, ids.shape[1] - seqlen - 1)
        inp = ids[:, start : start + seqlen]
        tar = inp.clone()
        tar[:, :-1] = -100
        loader.append((inp, tar))
    return loader


def test_c4_windows_are_the_references(encode, lines) -> None:
    documents = ["".join(lines[k : k + 9]) for k in range(0, len(lines), 9)]  # short and long documents mixed
    ours = c4_calibration(documents, encode, nsamples=16, seqlen=200, seed=3)
    reference = reference_c4_calibration(documents, encode, 16, 3, 200)
    assert torch.equal(ours.inputs, torch.cat([inp for inp, _ in reference]))
    assert torch.equal(ours.targets, torch.cat([tar for _, tar in reference]))


def test_wikitext2_windows_are_the_references(encode, lines) -> None:
    """`get_wikitext2`: the training lines joined by spaces, one tokenization, seeded starts in the whole text."""
    ids = torch.tensor([encode(" ".join(lines))])
    random.seed(5)
    starts = [random.randint(0, ids.shape[1] - 32 - 1) for _ in range(8)]
    ours = wikitext2_calibration(lines, encode, nsamples=8, seqlen=32, seed=5)
    assert torch.equal(ours.inputs, torch.cat([ids[:, s : s + 32] for s in starts]))
    assert (ours.targets[:, :-1] == -100).all() and torch.equal(ours.targets[:, -1], ours.inputs[:, -1])


def reference_ppl(model, testenc, seqlen, bs=1):
    """`eval_ppl_wikitext` (wanda lib/eval.py): n = numel // seqlen windows, `bs` at a time; a batch's mean shifted
    cross-entropy, as float, times seqlen times its windows; exp(sum / (n * seqlen))."""
    nsamples = testenc.numel() // seqlen
    nlls = []
    for i in range(0, nsamples, bs):
        j = min(i + bs, nsamples)
        inputs = testenc[:, (i * seqlen) : (j * seqlen)].reshape(j - i, seqlen)
        lm_logits = model(inputs).logits
        shift_logits = lm_logits[:, :-1, :].contiguous()
        loss = nn.CrossEntropyLoss()(shift_logits.reshape(-1, shift_logits.size(-1)), inputs[:, 1:].reshape(-1))
        nlls.append(loss.float() * seqlen * (j - i))
    return torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen)).item()


def reference_layerwise_ppl(model, testenc, seqlen):
    """`llama_eval` (sparsegpt llama.py): catch each window's input to the first decoder layer, run the layers one
    after the other on all windows, then the final norm and head; the same loss arithmetic. Its Catcher keeps only
    `attention_mask`; transformers 4.57 also passes `position_embeddings`, so every keyword is kept here."""
    nsamples = testenc.numel() // seqlen
    inps, kwargs = [], {}

    def catch(_module, args, kw):
        inps.append(args[0])
        kwargs.update(kw)
        raise ValueError

    handle = model.model.layers[0].register_forward_pre_hook(catch, with_kwargs=True)
    for i in range(nsamples):
        with contextlib.suppress(ValueError):  # the Catcher's way out of the model
            model(testenc[:, i * seqlen : (i + 1) * seqlen], use_cache=False)  # as model.config.use_cache = False
    handle.remove()
    for layer in model.model.layers:
        inps = [layer(inp, **kwargs) for inp in inps]
    nlls = []
    for i, hidden in enumerate(inps):
        lm_logits = model.lm_head(model.model.norm(hidden))
        shift_labels = testenc[:, i * seqlen : (i + 1) * seqlen][:, 1:]
        loss = nn.CrossEntropyLoss()(lm_logits[:, :-1, :].reshape(-1, lm_logits.shape[-1]), shift_labels.reshape(-1))
        nlls.append(loss.float() * seqlen)
    return torch.exp(torch.stack(nlls).sum() / (nsamples * seqlen)).item()


@torch.no_grad()
def test_wikitext2_perplexity_is_the_references(tiny_llama, encode, lines) -> None:
    ids = wikitext2_ids(lines, encode)
    assert torch.equal(ids, torch.tensor(encode("\n\n".join(lines))))
    cut = windows(ids, 48)
    assert cut.shape == (ids.numel() // 48, 48) and ids.numel() % 48  # a tail, dropped
    assert torch.equal(cut.flatten(), ids[: cut.numel()])
    ours = perplexity(hf_logits(tiny_llama), ids, 48)
    assert ours == reference_ppl(tiny_llama, ids[None], 48)
    assert perplexity(hf_logits(tiny_llama), ids, 48, batch_size=4) == reference_ppl(tiny_llama, ids[None], 48, 4)
    assert ours == reference_layerwise_ppl(tiny_llama, ids[None], 48)  # the same operations, layer by layer
    assert 200 < ours < 400  # random weights over 256 bytes: near the vocabulary size


@torch.no_grad()
def test_sliding_windows_are_the_transformers_guide(tiny_llama, encode, lines) -> None:
    """Restated from transformers' "Perplexity of fixed-length models": windows every `stride` tokens, labels -100
    but for the tokens no earlier window scored, the model's own loss times its count of scored tokens, summed."""
    ids = wikitext2_ids(lines[:30], encode)
    seqlen, stride = 48, 16
    total, count, previous = 0.0, 0, 0
    for begin in range(0, ids.numel(), stride):
        end = min(begin + seqlen, ids.numel())
        inputs = ids[begin:end][None]
        labels = inputs.clone()
        labels[:, : -(end - previous)] = -100
        scored = int((labels[:, 1:] != -100).sum())
        total += float(tiny_llama(input_ids=inputs, labels=labels).loss) * scored
        count += scored
        previous = end
        if end == ids.numel():
            break
    assert count == ids.numel() - 1
    ours = perplexity(hf_logits(tiny_llama), ids, seqlen, stride=stride)
    assert ours == pytest.approx(torch.tensor(total / count).exp().item(), rel=1e-5)
    assert ours != perplexity(hf_logits(tiny_llama), ids, seqlen)


def test_c4_validation_tokens_are_sparsegpts(encode) -> None:
    documents = [f"document {k} " * 3 for k in range(1200)]
    ids = c4_validation_ids(documents, encode, 4)
    assert torch.equal(ids, torch.tensor(encode(" ".join(documents[:1100]))[: 256 * 4]))


def test_bad_input_is_one_clear_sentence(tiny_llama, encode) -> None:
    with pytest.raises(ValueError, match="no document of the calibration corpus is longer than one window of 64"):
        c4_calibration(["short", "x" * 64], encode, nsamples=1, seqlen=64)
    with pytest.raises(ValueError, match="not more than one window of 64"):
        wikitext2_calibration(["x" * 64], encode, nsamples=1, seqlen=64)
    with pytest.raises(ValueError, match="fewer than one window of 64"):
        perplexity(hf_logits(tiny_llama), torch.arange(63), 64)
    with pytest.raises(ValueError, match="seqlen 65 exceeds the model's max_position_embeddings 64"):
        check_seqlen(tiny_llama.config, 65)
    assert check_seqlen(tiny_llama.config, 64) == 64
