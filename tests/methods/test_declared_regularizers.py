"""The declared regularizers as data: strict, located errors, one JSON round trip without loss."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from prunebench.methods import BatchNormL1, GroupLasso, SoftMasks, validate_regularizers


def test_a_declaration_survives_json_and_is_validated_again() -> None:
    declared = (
        SoftMasks(temperatures=[1.0, 14.1, 200.0], initial=-0.5, penalty=1e-6, lr=0.01, reset="last"),
        BatchNormL1(coefficient=1e-4),
        GroupLasso(coefficient=1e-3),
    )
    wire = json.loads(json.dumps([r.model_dump(mode="json") for r in declared]))
    assert validate_regularizers(wire) == declared
    assert validate_regularizers(declared) == declared


@pytest.mark.parametrize(
    ("declared", "where"),
    [
        ({"kind": "soft_masks", "temperatures": [1.0], "penalti": 1e-8}, "0.soft_masks.penalti"),
        ({"kind": "group_lasso", "coeficient": 1e-3}, "0.group_lasso.coeficient"),
        ({"kind": "batch_norm_l1", "coefficient": -1.0}, "0.batch_norm_l1.coefficient"),
        ({"kind": "soft_masks", "temperatures": []}, "0.soft_masks.temperatures"),
        ({"kind": "soft_masks", "temperatures": [1.0, 0.0]}, "0.soft_masks.temperatures.1"),
        ({"kind": "l2", "coefficient": 1.0}, "does not match any of the expected tags"),
    ],
)
def test_a_wrong_field_is_refused_where_it_is(declared: dict[str, object], where: str) -> None:
    with pytest.raises(ValidationError) as exc:
        validate_regularizers([declared])
    assert where in str(exc.value)


def test_declarations_are_frozen_strict_and_one_of_a_kind() -> None:
    with pytest.raises(ValidationError, match="coefficent"):
        BatchNormL1(coefficent=1e-4)  # type: ignore[call-arg]
    r = GroupLasso(coefficient=1e-3)
    with pytest.raises(ValidationError):
        r.coefficient = 1.0  # type: ignore[misc]
    with pytest.raises(ValueError, match="at most one regularizer of each kind"):
        validate_regularizers([r, GroupLasso(coefficient=1.0)])
