import json

import pytest

from socket_edge.contract import CONTRACT_VERSION, InputContract, modalities_match
from socket_edge.errors import ContractError


def test_depth_contract_defaults_and_roundtrip():
    c = InputContract.for_modality("depth", ["a", "b"], 64)
    assert (c.raw_dtype, c.unit, c.invalid_zero, c.size, c.raw_channels) == ("uint16", 0.001, True, (64, 64), 1)
    assert c.input_shape == (1, 64, 64)
    again = InputContract.from_json(c.to_json())
    assert again == c and hash(again) == hash(c)
    assert json.loads(c.to_json())["class_names"] == ["a", "b"]


def test_ir_contract_follows_bit_depth():
    assert InputContract.for_modality("ir", ["a", "b"], raw_dtype="uint16").unit == pytest.approx(1 / 65535)
    assert InputContract.for_modality("nir", ["a", "b"]).unit == pytest.approx(1 / 255)


@pytest.mark.parametrize("change, words", [
    ({"modality": "thermal"}, "modality 'thermal'"),
    ({"valid_range": [2.0, 1.0]}, "max > min"),
    ({"class_names": []}, "class_names is empty"),
    ({"class_names": ["a", "a"]}, "duplicates"),
    ({"version": CONTRACT_VERSION + 1}, "upgrade socket-edge"),
    ({"mean": [0.5]}, "mean/std"),
])
def test_invalid_contracts_are_refused(change, words):
    base = InputContract.for_modality("rgb", ["a", "b"]).to_dict()
    with pytest.raises(ContractError, match=words):
        InputContract.from_dict({**base, **change})


def test_unknown_field_and_bad_json_are_refused():
    base = InputContract.for_modality("rgb", ["a", "b"]).to_dict()
    with pytest.raises(ContractError, match="unknown fields"):
        InputContract.from_dict({**base, "gamma": 2.2})
    with pytest.raises(ContractError, match="not valid JSON"):
        InputContract.from_json("{not json")


def test_contract_is_frozen():
    c = InputContract.for_modality("rgb", ["a", "b"])
    with pytest.raises(AttributeError):
        c.modality = "depth"  # type: ignore[misc]


def test_modality_check():
    depth = InputContract.for_modality("depth", ["a", "b"])
    depth.check_modality("depth")
    with pytest.raises(ContractError, match="expects depth frames but the input is ir"):
        depth.check_modality("ir")
    assert modalities_match("ir", "nir") and not modalities_match("rgb", "depth")


def test_describe_names_units_and_classes():
    text = "\n".join(InputContract.for_modality("depth", ["chair", "table"], 96).describe())
    assert "1 mm per unit" in text and "96×96" in text and "chair, table" in text
