"""Perplexity of a causal language model, as the pruning references measure it, and a sliding-window variant kept
apart from it.

The references' protocol (`perplexity`, the default): locuslab/wanda `lib/eval.py` `eval_ppl_wikitext`, and
IST-DASLab/sparsegpt `opt.py`/`llama.py` `opt_eval`/`llama_eval` (the same arithmetic, run layer by layer there).
The test text is tokenized once (`wikitext2_ids`: WikiText-2's test lines joined with "\\n\\n", `get_wikitext2`)
and cut into n = len // seqlen non-overlapping windows of `seqlen` tokens, the tail dropped. Each window's loss is
the mean cross-entropy of its logits at positions 0 .. seqlen-2 against its tokens 1 .. seqlen-1, turned to float
and multiplied by seqlen; perplexity = exp(sum of those / (n * seqlen)), i.e. the exponential of the windows' mean
loss. Windows go through the model one at a time (`batch_size`=1, both references); Wanda's `bs` is
`batch_size`: a batch's mean loss times seqlen times its windows. The first token of every window is never
predicted.

`stride` (sliding windows, like lm-evaluation-harness's rolling log-likelihood and Hugging Face transformers'
"Perplexity of fixed-length models" guide): windows of up to `seqlen` tokens start every `stride` tokens until one
reaches the end, each scores only the tokens no earlier window scored (so every token after the first is scored
once, with up to seqlen - 1 tokens of context, the tail included), and perplexity is exp(total NLL / tokens
scored). It is a different number from the references' (for a trained model lower: more context); a result says
which it used.

SparseGPT's C4 perplexity (`c4_validation_ids`): the first 1100 validation documents joined with single spaces,
tokenized, cut to 256 * seqlen tokens (`get_c4`'s `valenc`); then the same windows.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from prunebench.language.calibration import Encode

Logits = Callable[[Tensor], Tensor]


def hf_logits(model: Any) -> Logits:
    """Logits of a Hugging Face causal LM for (batch, seqlen) input ids, without a key-value cache."""
    return lambda ids: model(input_ids=ids, use_cache=False).logits


def wikitext2_ids(lines: Sequence[str], encode: Encode) -> Tensor:
    """The references' WikiText-2 test tokens: the lines joined with "\\n\\n", tokenized once (1-D, int64)."""
    return torch.tensor(list(encode("\n\n".join(lines))), dtype=torch.long)


def c4_validation_ids(documents: Sequence[str], encode: Encode, seqlen: int) -> Tensor:
    """SparseGPT's C4 validation tokens: the first 1100 documents joined with spaces, the first 256 * seqlen ids."""
    ids = torch.tensor(list(encode(" ".join(documents[:1100]))), dtype=torch.long)
    return ids[: 256 * seqlen]


def windows(ids: Tensor, seqlen: int) -> Tensor:
    """The non-overlapping windows of `seqlen` tokens of a 1-D token sequence, the tail dropped: (n, seqlen)."""
    ids = ids.reshape(-1)
    count = ids.numel() // seqlen
    if count == 0:
        raise ValueError(f"the evaluation text has {ids.numel()} tokens, fewer than one window of {seqlen}")
    return ids[: count * seqlen].reshape(count, seqlen)


@torch.no_grad()
def perplexity(
    logits: Logits,
    ids: Tensor,
    seqlen: int,
    *,
    stride: int | None = None,
    batch_size: int = 1,
    device: torch.device | str | None = None,
) -> float:
    """Perplexity of the model whose `logits` function maps (batch, seqlen) ids to (batch, seqlen, vocab) logits:
    the references' non-overlapping windows, or sliding windows every `stride` tokens."""
    if seqlen < 2:
        raise ValueError(f"seqlen must be at least 2 tokens, got {seqlen}")
    if stride is not None:
        return sliding_perplexity(logits, ids, seqlen, stride, device=device)
    if batch_size < 1:
        raise ValueError(f"batch_size must be at least 1, got {batch_size}")
    cut = windows(ids, seqlen)
    nlls = []
    for first in range(0, cut.shape[0], batch_size):
        batch = cut[first : first + batch_size].to(device)
        out = logits(batch)
        loss = F.cross_entropy(out[:, :-1, :].reshape(-1, out.shape[-1]), batch[:, 1:].reshape(-1))
        nlls.append(loss.float() * seqlen * batch.shape[0])
    return torch.exp(torch.stack(nlls).sum() / (cut.shape[0] * seqlen)).item()


@torch.no_grad()
def sliding_perplexity(
    logits: Logits, ids: Tensor, seqlen: int, stride: int, *, device: torch.device | str | None = None
) -> float:
    """exp(mean NLL) of every token after the first, each scored once in the window that first reaches it."""
    ids = ids.reshape(-1)
    if not 1 <= stride <= seqlen:
        raise ValueError(f"stride must be between 1 and seqlen {seqlen}, got {stride}")
    if ids.numel() < 2:
        raise ValueError(f"the evaluation text has {ids.numel()} tokens, fewer than the 2 a prediction needs")
    total, scored, done = 0.0, 0, 0
    for begin in range(0, ids.numel(), stride):
        end = min(begin + seqlen, ids.numel())
        window = ids[begin:end].to(device)[None]
        nll = F.cross_entropy(logits(window)[0, :-1].float(), window[0, 1:], reduction="none")
        new = nll[max(done, begin + 1) - begin - 1 :]
        total += float(new.double().sum())
        scored += new.numel()
        done = end
        if end == ids.numel():
            break
    return math.exp(total / scored)
