"""The batched random resized crop and flip of train-source, adapt and distill (models/torch_utils.py)."""

from __future__ import annotations

import torch

from socket_edge.models.torch_utils import augment


def frames(n: int = 6) -> torch.Tensor:
    return torch.rand((n, 1, 20, 24), generator=torch.Generator().manual_seed(1)) * 4000


def test_the_same_draws_give_the_same_views() -> None:
    raw = frames()
    first = augment(raw, torch.Generator().manual_seed(3), nearest=False)
    again = augment(raw, torch.Generator().manual_seed(3), nearest=False)
    assert first.shape == raw.shape and first.dtype == raw.dtype
    torch.testing.assert_close(first, again)


def test_nearest_views_hold_only_values_of_their_own_frame() -> None:
    raw = frames()
    raw[:, :, ::3] = 0  # depth holes must not blend into readings
    views = augment(raw, torch.Generator().manual_seed(0), nearest=True)
    for view, frame in zip(views, raw):
        assert torch.isin(view, frame).all()


def test_pairs_with_one_seed_share_crop_and_flip() -> None:
    """--ti-augment: an RGB and a depth frame of one pair get the same geometry."""
    depth = frames(4)
    rgb = depth.repeat(1, 3, 1, 1)
    rgb_view = augment(rgb, torch.Generator().manual_seed(5), nearest=False)
    depth_view = augment(depth, torch.Generator().manual_seed(5), nearest=False)
    for channel in range(3):
        torch.testing.assert_close(rgb_view[:, channel:channel + 1], depth_view)


def test_a_view_is_a_resized_crop_of_its_frame() -> None:
    """A view of a frame that varies along one axis keeps its range and its monotone profile."""
    ramp = torch.linspace(0, 1, 24).expand(4, 1, 20, 24).clone()
    views = augment(ramp, torch.Generator().manual_seed(2), nearest=False)
    rows = views[:, 0, 10]
    steps = rows.diff(dim=1)
    assert ((steps >= -1e-6).all(dim=1) | (steps <= 1e-6).all(dim=1)).all()  # a crop, flipped or not
    assert (views >= 0).all() and (views <= 1).all()
    assert (rows.amax(dim=1) - rows.amin(dim=1) < 0.99).any()  # crops, not only the whole width
