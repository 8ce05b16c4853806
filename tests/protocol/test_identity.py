"""The one identity rule: every field's part in the protocol's hash and in its setup, declared on the field."""

from __future__ import annotations

import pytest

from prunebench.errors import ProtocolError
from prunebench.protocol import Protocol, content_hash, parse_protocol, setup_content, setup_hash
from prunebench.protocol.identity import outside_setup
from prunebench.testing import MINIMAL

PINNED = "minimal"  # the pinned hash itself is in test_protocol.py


def with_(text: str, where: str, addition: str) -> str:
    return text.replace(where, where + addition, 1)


def test_fields_marked_not_hashed_leave_the_hash_alone() -> None:
    base = parse_protocol(MINIMAL)
    moved = parse_protocol(
        with_(MINIMAL, "  name: digits\n", "  root: /elsewhere\n  eval_batch_size: 64\n  num_workers: 8\n")
        + "description: the same protocol, somewhere else\n"
    )
    assert moved.hash == base.hash


def test_fields_hashed_when_set_change_it_only_when_set() -> None:
    base = parse_protocol(MINIMAL)
    default_window = parse_protocol(with_(MINIMAL, "  epochs: 2\n", "  schedule: {name: constant, start_epoch: 0}\n"))
    assert default_window.hash == base.hash
    window = parse_protocol(with_(MINIMAL, "  epochs: 2\n", "  schedule: {name: cosine, span_epochs: 4}\n"))
    assert "span_epochs" in window.hashed_content()["retrain"]["schedule"] and window.hash != base.hash
    assert "variants" not in base.hashed_content() and "analyses" not in base.hashed_content()


def test_every_other_field_is_hashed() -> None:
    base = parse_protocol(MINIMAL)
    for where, addition in [
        ("  epochs: 2\n", "  batch_size: 64\n"),
        ("  name: digits\n", "  val_fraction: 0.2\n"),
        ("  sparsities: [0.9, 0.5]\n", "  tolerance: 0.01\n"),
        ("  - name: global_magnitude\n", "    label: gm\n"),
    ]:
        assert parse_protocol(with_(MINIMAL, where, addition)).hash != base.hash, addition


def test_the_setup_leaves_out_methods_analyses_variants_and_efficiency() -> None:
    assert outside_setup(Protocol) == ("methods", "analyses", "variants", "efficiency")
    base = parse_protocol(MINIMAL)
    more = parse_protocol(
        MINIMAL + "  - name: random\nanalyses: {shedding: {enabled: true}}\nefficiency: {batch_sizes: [8]}\n"
    )
    assert more.hash != base.hash
    assert setup_hash(more.hashed_content()) == setup_hash(base.hashed_content())
    assert setup_content(base.hashed_content()).keys() == base.hashed_content().keys() - {"methods"}
    retrained = parse_protocol(MINIMAL.replace("  epochs: 2\n", "  epochs: 3\n"))
    assert setup_hash(retrained.hashed_content()) != setup_hash(base.hashed_content())
    assert content_hash(base.hashed_content()) == base.hash


@pytest.mark.parametrize("top_k", ["[0, -1, 1000]", "[1, 3]"])
def test_only_the_top_k_that_are_measured_are_accepted(top_k: str) -> None:
    with pytest.raises(ProtocolError, match=r"evaluation.top_k\[\d\]: Input should be 1 or 5"):
        parse_protocol(MINIMAL + f"evaluation: {{top_k: {top_k}}}\n", "p.yaml")
