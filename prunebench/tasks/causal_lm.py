"""Causal language modelling: a prediction per position after the first, ranked by perplexity (lower is better).

A batch's inputs are windows of token ids (batch, seqlen) and its targets the same windows (the Hugging Face
convention, `labels = input_ids`): the logits at positions 0 .. seqlen-2 are scored against the tokens at 1 ..
seqlen-1, and a target of -100 is not scored (calibration windows of the references score only their last token).
The engine's mean cross-entropy over those units is the windows' mean token loss, and perplexity its exponential:
the references' WikiText-2 perplexity (prunebench.language.perplexity: windows of equal length, so the mean of the
windows' means is the mean over their tokens), to float rounding.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from torch import Tensor, nn


from prunebench.tasks.base import Metric, Task

IGNORED = -100  # a target position no prediction is scored at (torch's and Hugging Face's ignore_index)


class CausalLM(Task):
    """Next-token prediction: the outputs of a Hugging Face causal LM (`.logits`) or a plain module's logits."""

    name = "causal_lm"
    title = "causal language modelling"
    ranking = Metric("test_perplexity", "perplexity", higher_is_better=False)

    def outputs(self, model: nn.Module, x: Tensor) -> Tensor:
        out = model(x)
        logits: Tensor = getattr(out, "logits", out)  # a transformers ModelOutput, or the logits themselves
        return logits

    def predictions(self, out: Tensor, y: Tensor) -> tuple[Tensor, Tensor]:
        scores = out[:, :-1].reshape(-1, out.shape[-1])
        labels = y[:, 1:].reshape(-1)
        kept = labels != IGNORED
        return scores[kept], labels[kept]


CAUSAL_LM = CausalLM()
