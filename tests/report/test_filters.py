"""The record filter every report command shares: --protocol, --methods, --sparsities and --variants."""

from __future__ import annotations

from prunebench.report.filters import among_sparsities, passes_filters, variant_name
from prunebench.results import VariantRecord
from prunebench.testing import make_protocol, make_record


def test_each_filter_keeps_its_records_and_none_keeps_all() -> None:
    proto = make_protocol()
    record = make_record(proto, "a", 0.9, 0, 0.9)
    swept = record.model_copy(update={"variant": VariantRecord(name="lr-0.3", kind="sweep", recipe={})})
    assert passes_filters(record) and passes_filters(record, protocols=[], methods=[], sparsities=[], variants=[])
    assert passes_filters(record, protocols=[proto.name], methods=["b", "a"], sparsities=[0.5, 0.9000000001])
    assert not passes_filters(record, protocols=["other"])
    assert not passes_filters(record, methods=["b"])
    assert not passes_filters(record, sparsities=[0.5])
    assert (variant_name(record), variant_name(swept)) == ("protocol", "lr-0.3")
    assert passes_filters(record, variants=["protocol"]) and not passes_filters(swept, variants=["protocol"])


def test_a_record_without_a_target_passes_only_when_no_sparsity_is_asked_for() -> None:
    assert among_sparsities(None, None) and among_sparsities(None, [])
    assert not among_sparsities(None, [0.9])
