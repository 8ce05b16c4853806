"""The causal LM task (prunebench.tasks.causal_lm) scored by the engine's one evaluation: its loss is the model's
own (transformers' shifted cross-entropy), and the exponential of its mean over the references' windows is their
WikiText-2 perplexity (prunebench.language.perplexity, equal to wanda's eval_ppl_wikitext in test_lm_protocol)."""

from __future__ import annotations

import math
from collections.abc import Iterator
from typing import Any

import torch
import torch.nn.functional as F
from torch import Tensor

from prunebench.engine.evaluate import evaluate
from prunebench.language import hf_logits, perplexity, wikitext2_ids
from prunebench.tasks import CAUSAL_LM, IGNORED, TASKS


class Windows:
    """A split of token windows, x and y the same windows (the task shifts them)."""

    def __init__(self, windows: Tensor) -> None:
        self.windows = windows

    def batches(self, batch_size: int, **_: Any) -> Iterator[tuple[Tensor, Tensor]]:
        for start in range(0, len(self.windows), batch_size):
            chunk = self.windows[start : start + batch_size]
            yield chunk, chunk


def test_its_loss_is_the_models_own(tiny_llama: torch.nn.Module) -> None:
    assert TASKS["causal_lm"] is CAUSAL_LM and not CAUSAL_LM.ranking.higher_is_better
    ids = torch.randint(0, 256, (3, 32), generator=torch.Generator().manual_seed(1))
    labels = ids.clone()
    labels[0, :10] = IGNORED  # positions a window does not score
    with torch.no_grad():
        expected = tiny_llama(ids, labels=labels, use_cache=False).loss
        scores, targets = CAUSAL_LM.predictions(CAUSAL_LM.outputs(tiny_llama, ids), labels)
    assert targets.numel() == 3 * 31 - 9  # every position after the first, the ignored ones left out
    assert torch.allclose(F.cross_entropy(scores, targets), expected, atol=1e-6)


def test_the_engines_evaluation_gives_the_references_perplexity(tiny_llama: torch.nn.Module, encode, lines) -> None:  # type: ignore[no-untyped-def]
    ids = wikitext2_ids(lines, encode)
    seqlen = 64
    n = ids.numel() // seqlen
    windows = ids.reshape(-1)[: n * seqlen].reshape(n, seqlen)  # non-overlapping, the tail dropped
    result = evaluate(
        tiny_llama,
        Windows(windows),
        num_classes=256,
        batch_size=4,
        device=torch.device("cpu"),
        task=CAUSAL_LM,  # type: ignore[arg-type]
    )
    reference = perplexity(hf_logits(tiny_llama), ids, seqlen=seqlen)
    assert n > 5 and math.isclose(math.exp(result.loss), reference, rel_tol=1e-5)
