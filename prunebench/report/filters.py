"""The record filter of the report commands (--protocol, --methods, --sparsities, --variants): which records, and
which rows of a board, a report shows. None or an empty list asks for everything."""

from __future__ import annotations

from collections.abc import Sequence

from prunebench.report.audit import same_target, target_of
from prunebench.results import ResultSummary


def among(name: str, wanted: Sequence[str] | None) -> bool:
    """Whether a name is one of those asked for (None or empty: every name)."""
    return not wanted or name in wanted


def among_sparsities(target: float | None, wanted: Sequence[float] | None) -> bool:
    """Whether a target sparsity is one of those asked for, as written in a protocol (None or empty: every
    target, a record without one included)."""
    return not wanted or any(same_target(target, s) for s in wanted)


def variant_name(record: ResultSummary) -> str:
    """The retraining variant a record ran under, as --variants names it ("protocol": the protocol's own recipe)."""
    return record.variant.name if record.variant is not None else "protocol"


def passes_filters(
    record: ResultSummary,
    *,
    protocols: Sequence[str] | None = None,
    methods: Sequence[str] | None = None,
    sparsities: Sequence[float] | None = None,
    variants: Sequence[str] | None = None,
) -> bool:
    """Whether a record's protocol, method label, target sparsity and retraining variant are each among those
    asked for."""
    return (
        among(record.protocol.name, protocols)
        and among(record.method.label, methods)
        and among_sparsities(target_of(record), sparsities)
        and among(variant_name(record), variants)
    )
