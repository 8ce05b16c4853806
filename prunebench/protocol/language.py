"""The protocol fields of the language-model track (task `causal_lm`): how text becomes token windows
(`data.text`), what one-shot pruning calibrates on (`pruning.calibration`), and the dense model's expected
perplexity (`base.expect`).

The defaults are the definitions of the references, SparseGPT (Frantar & Alistarh 2023, IST-DASLab/sparsegpt
`datautils.py`) and Wanda (Sun et al. 2024, locuslab/wanda `lib/data.py`, `lib/eval.py`): 128 calibration windows
drawn from C4's first training shard with the job's seed, windows as long as the model's context; perplexity over
the test text joined by blank lines, tokenized once, cut into non-overlapping windows with the tail dropped, the
loss averaged over every predicted token (prunebench.language.perplexity).
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field, model_validator

from prunebench.protocol.base import MAX_EXAMPLES, StrictModel
from prunebench.protocol.identity import HASHED_WHEN_SET, NOT_HASHED

MAX_SEQLEN = 1 << 20


class TextSpec(StrictModel):
    """How a text data set becomes the windows of token ids a causal LM trains and is evaluated on."""

    @model_validator(mode="after")
    def _stride_within(self) -> TextSpec:
        if self.stride is not None and self.stride > self.seqlen:
            raise ValueError(f"stride {self.stride} exceeds seqlen {self.seqlen}: windows would skip tokens")
        return self

    seqlen: int = Field(
        ge=2,
        le=MAX_SEQLEN,
        description="Tokens per window, in training and evaluation: the references use the model's "
        "max_position_embeddings (2048 for LLaMA-1 and OPT, 4096 for LLaMA-2).",
    )
    tokenizer: str | None = Field(
        None,
        max_length=4096,
        description="A local directory with a Hugging Face tokenizer (the model's own; `${VAR}` reads an environment "
        "variable); never downloaded. None: a byte-level BPE trained on the training split (vocab_size). Not hashed: "
        "its sha256 goes into every record.",
        json_schema_extra=NOT_HASHED,
    )
    vocab_size: int = Field(
        1024, ge=260, le=1_000_000, description="Vocabulary of the trained tokenizer (ignored with `tokenizer`)."
    )
    stride: int | None = Field(
        None,
        ge=1,
        le=MAX_SEQLEN,
        description="Evaluation (validation and test): none, the references' perplexity (non-overlapping windows, the "
        "tail dropped); a number, sliding windows every `stride` tokens, each scoring the tokens no earlier one did, "
        "the tail included (transformers' 'Perplexity of fixed-length models'): another number, lower for a trained "
        "model (more context). Training always takes non-overlapping windows.",
        json_schema_extra=HASHED_WHEN_SET,
    )
    sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="The sha256 the data set's text must have (its files', prunebench.language.corpus; Python's "
        "topics: of the joined text): another text is refused in one line. None: recorded, not checked.",
    )


class CalibrationSpec(StrictModel):
    """The calibration windows one-shot pruning of a causal LM sees: `nsamples` windows of `seqlen` tokens, drawn
    with the job's seed (the references' `--seed`), counted in the ledger as scoring examples."""

    source: Literal["c4", "train"] = Field(
        "c4",
        description="c4: C4 documents (the references' `get_c4`: a random document longer than a window, a random "
        "start in it), read from `files`; train: the data set's training text joined by spaces, tokenized once, a "
        "random start for each window (the references' `get_wikitext2`).",
    )
    files: list[str] = Field(
        default_factory=list,
        max_length=1024,
        description="c4: the local C4 json.gz shards (the references: en/c4-train.00000-of-01024.json.gz); "
        "`${VAR}` reads an environment variable. Not hashed: their sha256 goes into every record.",
        json_schema_extra=NOT_HASHED,
    )
    nsamples: int = Field(128, ge=1, le=MAX_EXAMPLES, description="Calibration windows.")
    seqlen: int | None = Field(
        None, ge=2, le=MAX_SEQLEN, description="Tokens per calibration window; none: data.text.seqlen."
    )

    @model_validator(mode="after")
    def _files_for_c4(self) -> CalibrationSpec:
        if self.source == "c4" and not self.files:
            raise ValueError(
                "C4 calibration needs its local shards in `files` (nothing is downloaded); or calibrate on the data "
                "set's training text: source: train"
            )
        return self


class ExpectSpec(StrictModel):
    """What the dense model must measure before any pruned result of it is accepted: the first sign of a wrong
    data file, tokenizer, context length or library version (users of the references find it last)."""

    test_perplexity: float = Field(gt=1, le=1e9, description="The dense model's published test perplexity.")
    tolerance: float = Field(
        0.02, gt=0, lt=1, description="How far the measured perplexity may be from it, as a fraction of it."
    )

    def mismatch(self, measured: float) -> str | None:
        """Why `measured` is not the expected perplexity, or None when it is within the tolerance."""
        if abs(measured / self.test_perplexity - 1) <= self.tolerance:
            return None
        return (
            f"the dense model's test perplexity is {measured:.2f}, not the {self.test_perplexity:g} that base.expect "
            f"states (tolerance {self.tolerance:.0%}): check the model files, the tokenizer, the data files and "
            "data.text.seqlen before pruning it"
        )
