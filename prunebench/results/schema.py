"""The result record's schema: one JSON file per job, versioned.

Every number in a record was measured by the engine: sparsity from the final weights, the budget
from the ledger it kept while training. Nothing here is taken from what a method says about itself.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import ConfigDict, Field, model_validator

from prunebench.results.base import Amount, Count, Fraction, Loss, Rate, Record
from prunebench.results.connectivity import ConnectivityRecord
from prunebench.results.efficiency import CompactionRecord, EfficiencyRecord
from prunebench.results.evaluation import EvaluationRecord
from prunebench.results.targets import CostKind, Target
from prunebench.results.taxonomy import Regime, Taxonomy

SCHEMA_VERSION = 1
Status = Literal["ok", "violation", "failed"]
Stage = Literal["base", "pruning", "retrain"]


class StageLedger(Record):
    epochs: Amount = Field(0.0, description="Training examples seen divided by the training-split size.")
    steps: Count = Field(0, description="Optimizer steps.")
    examples: Count = Field(0, description="Training examples seen (forward and backward).")
    train_flops: Amount = Field(
        0.0, description="FLOPs of training: 3 x forward FLOPs of the masked model per example."
    )
    forward_examples: Count = Field(0, description="Examples passed forward outside training (scoring weights).")
    forward_flops: Amount = Field(0.0, description="FLOPs of those passes (3x when they also ran backward).")
    runs: Count = Field(0, description="Training runs in this stage (the rounds of an iterative method).")

    def add(self, other: StageLedger) -> StageLedger:
        return StageLedger(**{k: getattr(self, k) + getattr(other, k) for k in StageLedger.model_fields})

    # How the engine counts, in one place: the engine counts as it trains, and the runner counts again from what
    # the engine reported, with the same arithmetic, so that the two agree to the last bit.
    def count_step(self, examples: int, flops: float) -> None:
        """One optimizer step over `examples` examples costing `flops` (3 x forward FLOPs x examples)."""
        self.steps += 1
        self.examples += examples
        self.train_flops += flops

    def count_scoring(self, examples: int, flops: float) -> None:
        """A forward (or forward and backward) pass of `examples` examples outside training."""
        self.forward_examples += examples
        self.forward_flops += flops

    def close_epoch(self, train_examples: int) -> None:
        """Epochs are examples seen over the training split's size."""
        self.epochs = self.examples / train_examples


class Ledger(Record):
    base: StageLedger = Field(default_factory=StageLedger, description="Dense training of the shared base model.")
    pruning: StageLedger = Field(default_factory=StageLedger, description="What the method spent while pruning.")
    retrain: StageLedger = Field(default_factory=StageLedger, description="Retraining after pruning.")

    def after_base(self) -> StageLedger:
        """Pruning plus retraining: what the comparison setups count."""
        return self.pruning.add(self.retrain)


class EpochRecord(Record):
    stage: Stage
    epoch: Count = Field(description="1-based epoch within the stage (a multi-round stage counts on).")
    lr: Rate
    train_loss: Loss
    train_top1: Fraction
    val_loss: Loss
    val_top1: Fraction
    test_top1: Fraction | None = Field(
        None, description="Only when the protocol asks for test curves; never selected on."
    )
    sparsity: Fraction = Field(description="Zeros among the prunable weights at the end of the epoch.")
    analyses: dict[str, Any] = Field(default_factory=dict, description="Per-epoch analyses the protocol asked for.")


class LayerSparsity(Record):
    numel: Count
    zeros: Count
    effective_zeros: Count | None = Field(
        None,
        exclude_if=lambda n: n is None,  # records written before it was measured have none
        description="Zeros plus kept weights on no path from the input to the output (docs/analyses.md).",
    )

    @model_validator(mode="after")
    def _within(self) -> LayerSparsity:
        if self.zeros > self.numel:
            raise ValueError(f"{self.zeros} zeros among {self.numel} weights")
        if self.effective_zeros is not None and not self.zeros <= self.effective_zeros <= self.numel:
            raise ValueError(f"{self.effective_zeros} effective zeros, {self.zeros} zeros among {self.numel} weights")
        return self

    @property
    def sparsity(self) -> float:
        return self.zeros / self.numel if self.numel else 0.0


class SparsityRecord(Record):
    target: Fraction | None = Field(description="The target sparsity; None when the job's target is a cost (`target`).")
    achieved: Fraction = Field(description="Zeros among all prunable weights of the final model.")
    tolerance: Fraction
    per_layer: dict[str, LayerSparsity]
    effective: Fraction | None = Field(
        None,
        exclude_if=lambda e: e is None,  # records written before it was measured have none
        description="Effective sparsity (Vysogorets & Kempe 2023): zeros plus kept weights on no path from the input "
        "to the output, among all prunable weights. None: not computed (`connectivity.not_computed` says why).",
    )
    effective_margin: Fraction | None = Field(
        None,
        exclude_if=lambda m: m is None,
        description="The protocol's pruning.effective_margin: the audit flags an effective sparsity above the "
        "target by more than this. None: not judged.",
    )
    connectivity: ConnectivityRecord | None = Field(
        None,
        exclude_if=lambda c: c is None,  # records written before it was measured have none
        description="Collapsed and cut-off layers, cut blocks, a disconnected network (prunebench.connectivity).",
    )


class Metrics(Record):
    test_top1: Fraction
    test_top5: Fraction | None
    test_loss: Loss
    val_top1: Fraction
    val_loss: Loss
    test_examples: Count | None = Field(
        None, description="Examples in the test split: one of them is the resolution of the test accuracy."
    )
    # A causal LM's (task causal_lm): top-1 is next-token accuracy, the loss the mean token cross-entropy.
    test_perplexity: Annotated[float, Field(ge=1)] | None = Field(
        None,
        exclude_if=lambda ppl: ppl is None,  # a classification record stays as it was
        description="exp(test_loss), the references' perplexity (prunebench.tasks.causal_lm); causal LMs only.",
    )
    val_perplexity: Annotated[float, Field(ge=1)] | None = Field(
        None, exclude_if=lambda ppl: ppl is None, description="exp(val_loss); causal LMs only."
    )
    chance: Fraction | None = Field(
        None,
        exclude_if=lambda c: c is None,
        description="Top-1 of a uniform guess, 1 / classes; classification only, absent in older records.",
    )
    degenerate: bool | None = Field(
        None,
        exclude_if=lambda d: d is None,
        description="Test top-1 no higher than chance plus the protocol's evaluation.chance_margin "
        "(prunebench.fairness.near_chance): a collapsed model. Kept in its method's mean. None: not judged.",
    )


class BaseModelRecord(Record):
    checkpoint_sha256: str = Field(description="Hash of the dense weights every method of this seed started from.")
    key: str = Field(description="Hash of what determined the checkpoint (data, model, base training, seed).")
    pretrained_sha256: str | None = Field(
        None, description="sha256 of the file given as base.checkpoint, when the dense model was loaded, not trained."
    )
    test_top1: Fraction
    test_top5: Fraction | None
    val_top1: Fraction
    test_perplexity: Annotated[float, Field(ge=1)] | None = Field(
        None, exclude_if=lambda ppl: ppl is None, description="The dense model's test perplexity; causal LMs only."
    )


class CostRecord(Record):
    params_dense: Count = Field(description="All parameters of the dense model.")
    params_effective: Count = Field(description="Parameters left after pruning (non-prunable ones all count).")
    flops_dense: Amount = Field(description="Forward FLOPs per example of the dense model (2 x conv/linear MACs).")
    flops_effective: Amount = Field(
        description="Forward FLOPs per example with pruned weights skipped; counted from the compacted model "
        "when `counted` is compacted."
    )
    counted: Literal["masked", "compacted"] = Field(
        "masked",
        description="masked: each layer's MACs scaled by its kept fraction of weights; compacted: parameters and "
        "MACs of the physically compacted module (a filter-granularity method's, see `compaction`).",
    )
    compaction: CompactionRecord | None = Field(None, description="A filter-granularity method's compacted model.")


class CostTargetRecord(Record):
    """A cost target and what the runner counted of it, from the physically compacted final model."""

    kind: CostKind
    value: Annotated[float, Field(gt=1, le=1e6)] = Field(description="The target: dense over pruned cost.")
    tolerance: Fraction = Field(description="How far the reduction may land from the target, as a fraction of it.")
    achieved: Annotated[float, Field(gt=0, le=1e12)] | None = Field(
        None, description="The reduction counted from the compacted model; None when it could not be compacted."
    )

    @property
    def met(self) -> bool:
        return self.achieved is not None and abs(self.achieved / self.value - 1) <= self.tolerance + 1e-12


class MethodRecord(Record):
    name: str
    label: str
    version: str
    source: str = Field(description="Where the method was loaded from (entry point, module or file).")
    config: dict[str, Any]
    taxonomy: Taxonomy = Field(description="Where the method stands among pruning methods (as this job's instance).")
    citation: str
    notes: dict[str, Any] = Field(
        default_factory=dict,
        description="What the method reported about this job (e.g. how its final mask was chosen); "
        "informational, never used as a measurement.",
    )
    notes_cut: str | None = Field(
        None,
        exclude_if=lambda cut: cut is None,  # written only when notes were cut: every other record stays as it was
        description="What the runner cut of the method's notes to keep them within its bound (a cut note's value "
        "is a marker saying how large it was); absent when nothing was cut.",
    )


class RetrainingRecord(Record):
    regime: Regime = Field(description="The method's retraining regime (taxonomy.retraining).")
    epochs: Count = Field(description="Retraining epochs actually run (a method may ask for others; the audit judges).")
    optimizer: dict[str, Any]
    schedule: dict[str, Any]
    recipe: str | None = Field(
        None,
        description="The protocol recipe the regime ran: `retrain` (the protocol's retraining recipe) or "
        "`base_tail` (base training's recipe over its last epochs: learning-rate rewinding).",
    )
    batch_size: int | None = Field(None, description="Batch size of the retraining recipe.")


class VariantRecord(Record):
    """The retraining variant a job ran (docs/analyses.md); absent for the protocol's own recipe."""

    name: str = Field(description="Variant name: lr-0.1, cosine, ext-10, lr-0.1_ext-10, recipe-<method>, ...")
    kind: Literal["sweep", "extension", "swap", "sanity"] = Field(
        description="sweep: a candidate of the retraining-LR sweep (at any extension); extension: the protocol's "
        "recipe over more epochs; swap: a method's own recipe in the swap test; sanity: an ablation of the method's "
        "masks under the protocol's own recipe."
    )
    recipe: dict[str, Any] = Field(
        description="The retraining recipe the variant puts in place of the protocol's `retrain` (a TrainingSpec); "
        "the job's budget audit judged it against this recipe."
    )
    extra_epochs: Count = Field(0, description="Retraining epochs added to the protocol's.")
    lr: Rate | None = Field(None, description="Sweep: the candidate's peak LR (None: the protocol's).")
    schedule: str | None = Field(None, description="Sweep: the candidate's schedule name (None: the protocol's).")
    recipe_of: str | None = Field(None, description="Swap test: the method whose own recipe this is.")
    ablation: Literal["layer_shuffle", "reinit", "invert"] | None = Field(
        None,
        exclude_if=lambda ablation: ablation is None,  # sanity ablations only: other records stay as they were
        description="Sanity ablation (docs/analyses.md): layer_shuffle (the method's masks shuffled within each "
        "layer by the engine), reinit (its masks on a fresh initialization), invert (its lowest scores kept).",
    )


class BudgetRecord(Record):
    comparison: str
    stated_by: Literal["protocol", "method"] = Field(
        description="Whether the limits are the protocol's or a budget the protocol states for this method."
    )
    limits: dict[str, Amount | None]
    violations: list[str]


class ProtocolRef(Record):
    name: str
    hash: str
    comparison: str
    source: str | None


class Provenance(Record):
    prunebench_version: str
    python: str
    torch: str
    torchvision: str
    platform: str
    device: str
    threads: int | None = Field(None, ge=1, le=4096, description="torch's CPU threads in the job's process.")
    processes: int | None = Field(
        None, ge=1, le=65536, description="Processes (DDP ranks) the job trained on; none: one."
    )
    code_revision: str | None
    command: str
    overrides: list[str] = Field(
        default_factory=list, description="Command-line overrides of the protocol's fields (FIELD=VALUE), in order."
    )
    started_at: str
    finished_at: str
    duration_s: Amount
    in_process: bool = Field(
        False,
        exclude_if=lambda on: not on,  # written only when true: every other record stays as it was
        description="`run --in-process`: the method's code ran in the runner's own process (for a debugger); "
        "never ranked.",
    )
    confined: bool | None = Field(
        None,
        exclude_if=lambda known: known is None,  # records written before the field have none: not known
        description="Whether the job's process ran confined by the operating system (no network, no write outside "
        "its scratch, no read of the results, cache or data; prunebench.confine). False: not ranked.",
    )
    method_process: bool | None = Field(
        None,
        exclude_if=lambda known: known is None,  # records written before the field have none: not known
        description="Whether the method's code ran in a process of its own, apart from the engine that trained, "
        "counted and handed back the weights. False: it shared the engine's process (a method with code inside the "
        "training step, loss_term or own_parameters), shown apart and refused by `check` unless allowed.",
    )


class LanguageRecord(Record):
    """What a causal LM's numbers depend on beyond the protocol's hash: the tokenizer, the data files, the calibration
    windows' source, and the libraries that tokenize and run the model (the references' users' pitfalls)."""

    tokenizer_sha256: str = Field(description="sha256 of the tokenizer's tokenizer.json serialization.")
    data_sha256: str = Field(description="sha256 of the data set's files (prunebench.language.corpus).")
    calibration: dict[str, Any] | None = Field(
        None, description="The calibration windows' source, count and length, and its files' sha256 (C4's shards)."
    )
    transformers: str = Field(description="transformers' version.")
    tokenizers: str = Field(description="tokenizers' version.")
    model_sha256: str | None = Field(
        None,
        exclude_if=lambda digest: digest is None,
        description="sha256 of the local model directory's files the model was loaded from (hf_causal_lm; "
        "prunebench.language.model_sha256); none for a model trained here, whose weights' hash is in `base`.",
    )


class ResultSummary(Record):
    """Every field of a result record but the per-epoch curves: what a leaderboard reads.

    The curves are most of a record's bytes; a summary ignores unknown top-level keys so that the JSON
    parser skips them, which halves the time to load thousands of records. (A file that is not a whole
    valid record still fails: the loader validates a full record whenever the summary does not parse.)
    """

    model_config = ConfigDict(extra="ignore")

    schema_version: Literal[1] = SCHEMA_VERSION
    job_id: str
    task: str = Field(
        "classification",
        exclude_if=lambda task: task == "classification",  # written for other tasks: older records stay as they were
        description="The protocol's task (prunebench.tasks): what the metrics mean and which one ranks, in which "
        "direction.",
    )
    protocol: ProtocolRef
    method: MethodRecord
    seed: Count
    target_sparsity: Fraction | None = Field(
        description="The job's target sparsity (also when it failed); None when its target is a cost (`target`)."
    )
    target: CostTargetRecord | None = Field(
        None,
        exclude_if=lambda cost: cost is None,  # a sparsity target is target_sparsity: those records stay as they were
        description="The job's target when it is a reduction of the compacted model's FLOPs or parameters, and the "
        "reduction the runner counted.",
    )
    status: Status
    reasons: list[str] = Field(default_factory=list, description="Why a job is a violation or failed.")
    sparsity: SparsityRecord | None = None
    metrics: Metrics | None = None
    base: BaseModelRecord | None = None
    cost: CostRecord | None = None
    retraining: RetrainingRecord
    ledger: Ledger
    budget: BudgetRecord | None = None
    provenance: Provenance
    variant: VariantRecord | None = Field(
        None, description="The retraining variant this job ran; None: the protocol's own retraining recipe."
    )
    analyses: dict[str, Any] = Field(
        default_factory=dict,
        description="Analyses of the whole job the protocol asked for (trainability accuracy, the analyses of "
        "the weights retraining starts from); see docs/analyses.md.",
    )
    limit: Count | None = Field(
        None,
        description="A smoke run (`run --limit N`, for testing only): every stage trained, and every evaluation "
        "ran, on this many batches. Never ranked, never a result.",
    )
    efficiency: EfficiencyRecord | None = Field(
        None, description="Measured speed and memory, when the protocol has an `efficiency:` section."
    )
    language: LanguageRecord | None = Field(
        None,
        exclude_if=lambda language: language is None,  # a classification record stays as it was
        description="A causal LM's tokenizer, data and library versions (task causal_lm).",
    )
    evaluation: EvaluationRecord | None = Field(
        None,
        exclude_if=lambda evaluation: evaluation is None,  # only when asked for: other records stay as they were
        description="The optional evaluations the protocol asked for (evaluation.robustness, calibration, forgetting), "
        "of the pruned model beside its dense base model (docs/analyses.md).",
    )
    weights_file: str | None = Field(
        None,
        max_length=4096,
        pattern=r"^models/[A-Za-z0-9_][A-Za-z0-9_.+/-]*\.pt$",
        description="Where `run --save-models` kept those weights, relative to the run directory; their sha256 is "
        "`weights_sha256`. Committed references leave them out of git.",
    )
    weights_sha256: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        description="sha256 of the final weights the metrics were measured on (prunebench.run.weights_sha256), so "
        "that `prunebench check --verify` can evaluate saved weights again; None in records written before it was "
        "recorded.",
    )
    digest: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        exclude_if=lambda digest: digest is None,  # records written before digests stay as they were
        description="sha256 of the record's content without this field (prunebench.results.record_digest), written "
        "by the runner: a record edited afterwards no longer matches it and is re-run. Absent in records written "
        "before it was recorded.",
    )
    mac: str | None = Field(
        None,
        pattern=r"^[0-9a-f]{64}$",
        exclude_if=lambda mac: mac is None,  # records written before MACs stay as they were
        description="HMAC-SHA256 of `digest` (with the job's run and name), keyed with the cache's integrity key "
        "(prunebench.results.integrity), written by the runner: a record whose MAC does not verify with the run's "
        "key (written by a job's code, forged, or written before MACs) is re-run. Absent in records written before "
        "it was recorded.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> ResultSummary:
        if (self.target_sparsity is None) == (self.target is None):
            raise ValueError("a record states one target: target_sparsity, or target (a cost)")
        return self

    def target_of(self) -> Target:
        """The job's target (prunebench.results.targets)."""
        if self.target is not None:
            return Target(self.target.kind, self.target.value)
        assert self.target_sparsity is not None
        return Target("sparsity", self.target_sparsity)


class ResultRecord(ResultSummary):
    """One job's result, as written to its JSON file."""

    model_config = ConfigDict(extra="forbid")

    curves: list[EpochRecord] = Field(default_factory=list)
