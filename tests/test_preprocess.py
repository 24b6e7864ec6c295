"""The host-side and in-graph halves of the contract, checked against hand-computed values."""

import numpy as np
import pytest
import torch

from socket_edge.contract import IMAGENET_MEAN, IMAGENET_STD, InputContract
from socket_edge.data.preprocess import prepare
from socket_edge.errors import DataError
from socket_edge.models.input_module import InputNormalizer


def test_depth_unit_conversion_and_nearest_resize_keeps_holes():
    c = InputContract.for_modality("depth", ["a", "b"], 4)
    frame = np.full((8, 8), 2000, np.uint16)
    frame[:4, :4] = 0  # a hole in one quadrant
    out = prepare(frame, c)
    assert out.shape == (1, 4, 4) and out.dtype == np.float32
    assert set(np.unique(out).tolist()) == {0.0, 2000.0}  # no blended values at the hole's edge
    # the same scene recorded in 0.1 mm units becomes millimetres
    tenth = prepare((frame.astype(np.uint32) * 10).astype(np.uint16), c, source_unit=0.0001)
    np.testing.assert_allclose(tenth, out)


def test_intensity_bit_depth_is_rescaled_to_the_contract():
    c8 = InputContract.for_modality("ir", ["a", "b"], 2)
    frame16 = np.full((2, 2), 65535, np.uint16)
    np.testing.assert_allclose(prepare(frame16, c8), 255.0)
    c16 = InputContract.for_modality("ir", ["a", "b"], 2, raw_dtype="uint16")
    np.testing.assert_allclose(prepare(np.full((2, 2), 255, np.uint8), c16), 65535.0)


def test_rgb_is_channel_first_and_center_crop_keeps_aspect():
    c = InputContract.for_modality("rgb", ["a", "b"], (4, 4), resize="center_crop")
    frame = np.zeros((4, 8, 3), np.uint8)
    frame[:, 2:6] = (10, 20, 30)  # the centre 4 columns
    out = prepare(frame, c)
    assert out.shape == (3, 4, 4)
    np.testing.assert_allclose(out[:, 0, 0], [10, 20, 30])


@pytest.mark.parametrize("modality, frame, words", [
    ("depth", np.zeros((4, 4), np.uint8), "8-bit; depth must be 16-bit"),
    ("ir", np.zeros((4, 4, 3), np.uint8), "Is this an RGB file"),
    ("rgb", np.zeros((4, 4), np.uint8), "rgb needs 3-channel"),
    ("rgb", np.zeros((0, 4, 3), np.uint8), "empty"),
])
def test_wrong_frames_are_refused(modality, frame, words):
    with pytest.raises(DataError, match=words):
        prepare(frame, InputContract.for_modality(modality, ["a", "b"], 4))


def test_in_graph_depth_normalisation_matches_hand_computation():
    c = InputContract.for_modality("depth", ["a", "b"], 2, depth_range=(0.0, 4.0))
    raw = torch.tensor([[[[0.0, 1000.0], [4000.0, 9000.0]]]])  # mm: hole, 1 m, 4 m, beyond range
    out = InputNormalizer(c)(raw)
    assert out.shape == (1, 3, 2, 2)
    value = torch.tensor([[0.0, 0.25], [1.0, 1.0]])  # hole → fill 0, 1/4, clipped to 1
    for ch in range(3):
        expected = (value - IMAGENET_MEAN[ch]) / IMAGENET_STD[ch]
        torch.testing.assert_close(out[0, ch], expected)


def test_in_graph_rgb_normalisation_matches_torchvision_convention():
    c = InputContract.for_modality("rgb", ["a", "b"], 2)
    raw = torch.full((1, 3, 2, 2), 255.0)
    out = InputNormalizer(c)(raw)
    expected = (1.0 - torch.tensor(IMAGENET_MEAN)) / torch.tensor(IMAGENET_STD)
    torch.testing.assert_close(out[0, :, 0, 0], expected)
