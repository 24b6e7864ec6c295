"""Each adaptation loss on a hand-computed case."""

import math

import pytest
import torch

from socket_edge.adapt.bn_alignment import BNStatsLoss, group_by_layout
from socket_edge.adapt.information_max import InformationMaximization
from socket_edge.adapt.pseudo_labels import PseudoLabelLoss, cluster_pseudo_labels
from socket_edge.adapt.ti_alignment import TIAlignmentLoss
from socket_edge.models.zoo import ModelConfig, build


def test_information_maximization_by_hand():
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    loss, l_ent, l_div = InformationMaximization()(probs)
    ent = (0.0 + math.log(2)) / 2  # H([1,0]) = 0, H([.5,.5]) = ln 2
    mean = torch.tensor([0.75, 0.25])
    div = float(-(mean * mean.log()).sum())
    assert l_ent.item() == pytest.approx(ent, abs=1e-4)
    assert l_div.item() == pytest.approx(div, abs=1e-4)
    assert loss.item() == pytest.approx(ent - div, abs=1e-4)


def test_pseudo_label_loss_by_hand():
    probs = torch.tensor([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4]])
    labels = torch.tensor([0, 1, 1])
    expected = -(math.log(0.9) + math.log(0.8) + math.log(0.4)) / 3
    assert PseudoLabelLoss()(probs, labels).item() == pytest.approx(expected, abs=1e-4)


@pytest.mark.parametrize("distance, expected", [
    # member 1: rows differ by (3, 4) and (0, 0) → squared norms 25, 0; member 2: (1, 0, 0) → 1, 1
    ("sum_sq", 0.25 * (25 + 0) / 2 + 0.75 * (1 + 1) / 2),
    ("mean_sq", 0.25 * (25 / 2 + 0) / 2 + 0.75 * (1 / 3 + 1 / 3) / 2),
    ("norm", 0.25 * (5 + 0) / 2 + 0.75 * (1 + 1) / 2),
])
def test_ti_alignment_by_hand(distance, expected):
    target = [torch.tensor([[3.0, 4.0], [1.0, 1.0]]), torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0]])]
    source = [torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0, 0.0], [0.0, 1.0, 0.0]])]
    value = TIAlignmentLoss(distance)(target, source, torch.tensor([0.25, 0.75]))
    assert value.item() == pytest.approx(expected, abs=1e-4)


def test_bn_loss_combines_each_member_with_its_own_statistics():
    # one BN layer of 2 channels, two members of the same architecture
    batch = [[(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0]))], [(torch.tensor([3.0, 0.0]), torch.tensor([2.0, 4.0]))]]
    source = [[(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0]))], [(torch.tensor([4.0, 4.0]), torch.tensor([1.0, 2.0]))]]
    zeta = torch.tensor([0.25, 0.75])
    # combined target mean (2.5, 0.5) vs source (3, 3): 0.25 + 6.25; var (1.75, 3.25) vs (1, 1.75): 0.5625 + 2.25
    expected = 0.25 + 6.25 + 0.5625 + 2.25  # the squared form ("sq", not the paper's)
    assert BNStatsLoss([[0, 1]], distance="sq")(batch, source, zeta).item() == pytest.approx(expected, abs=1e-5)
    # the official code's defect compared every member with ONE shared list of statistics
    shared = [source[0], source[0]]
    assert BNStatsLoss([[0, 1]], distance="sq")(batch, shared, zeta).item() != pytest.approx(expected, abs=1e-3)
    # mean over layers: one layer here, so the same value
    assert BNStatsLoss([[0, 1]], "mean", distance="sq")(batch, source, zeta).item() == pytest.approx(expected, abs=1e-5)


def test_bn_loss_is_eq3_unsquared_norms_summed_over_layers():
    # two sources, two BN layers (2 and 1 channels)
    batch = [[(torch.tensor([1.0, 2.0]), torch.tensor([1.0, 1.0])), (torch.tensor([2.0]), torch.tensor([3.0]))],
             [(torch.tensor([3.0, 0.0]), torch.tensor([2.0, 4.0])), (torch.tensor([0.0]), torch.tensor([1.0]))]]
    source = [[(torch.tensor([0.0, 0.0]), torch.tensor([1.0, 1.0])), (torch.tensor([1.0]), torch.tensor([1.0]))],
              [(torch.tensor([4.0, 4.0]), torch.tensor([1.0, 2.0])), (torch.tensor([1.0]), torch.tensor([1.0]))]]
    zeta = torch.tensor([0.25, 0.75])
    # layer 1: ζ-mixed means (2.5, 0.5) vs (3, 3): ‖(−0.5, −2.5)‖; variances (1.75, 3.25) vs (1, 1.75): ‖(0.75, 1.5)‖
    layer1 = math.hypot(0.5, 2.5) + math.hypot(0.75, 1.5)
    # layer 2: mean 0.5 vs 1 → 0.5; variance 1.5 vs 1 → 0.5
    layer2 = 0.5 + 0.5
    loss = BNStatsLoss([[0, 1]])  # the default is Eq. 3
    assert loss.distance == "norm"
    assert loss(batch, source, zeta).item() == pytest.approx(layer1 + layer2, abs=1e-5)
    assert BNStatsLoss([[0, 1]], "mean")(batch, source, zeta).item() == pytest.approx((layer1 + layer2) / 2, abs=1e-5)
    # the squared form is another function: 2‖Δ‖ times the gradient
    squared = 0.5 ** 2 + 2.5 ** 2 + 0.75 ** 2 + 1.5 ** 2 + 0.25 + 0.25
    assert BNStatsLoss([[0, 1]], distance="sq")(batch, source, zeta).item() == pytest.approx(squared, abs=1e-5)


def test_ti_alignment_default_is_the_frobenius_norm_of_the_zeta_mixed_batch_residual():
    # two sources, a TI batch of two pairs, 2-d features
    target = [torch.tensor([[3.0, 4.0], [1.0, 1.0]], requires_grad=True), torch.tensor([[1.0, 0.0], [0.0, 0.0]])]
    source = [torch.tensor([[0.0, 0.0], [1.0, 1.0]]), torch.tensor([[0.0, 0.0], [0.0, 1.0]])]
    zeta = torch.tensor([0.25, 0.75])
    # r_1 = 0.25·(3, 4) + 0.75·(1, 0) = (1.5, 1); r_2 = 0.25·(0, 0) + 0.75·(0, −1) = (0, −0.75)
    expected = math.sqrt(1.5 ** 2 + 1 ** 2 + 0.75 ** 2)
    loss = TIAlignmentLoss()
    assert loss.distance == "frobenius"
    value = loss(target, source, zeta)
    assert value.item() == pytest.approx(expected, abs=1e-5)
    # the gradient w.r.t. the ζ-mixed residual has norm 1 whatever its size: ζ_1·R/‖R‖_F on member 1
    value.backward()
    residual = torch.tensor([[1.5, 1.0], [0.0, -0.75]])
    assert torch.allclose(target[0].grad, 0.25 * residual / expected, atol=1e-5)
    # ten times the residual: the same gradient (bounded by λ), where a squared form grows tenfold
    big = [t.detach() * 10 for t in target]
    assert loss(big, [s * 10 for s in source], zeta).item() == pytest.approx(10 * expected, rel=1e-5)


def test_bn_loss_groups_other_architectures_separately():
    members = [build(ModelConfig("mobilenet_v3_small", 3)), build(ModelConfig("resnet18", 3)),
               build(ModelConfig("mobilenet_v3_small", 3))]
    assert group_by_layout([m.encoder for m in members]) == [[0, 2], [1]]
    batch = [[(torch.ones(2), torch.ones(2))], [(torch.zeros(2), torch.ones(2))]]
    source = [[(torch.zeros(2), torch.ones(2))], [(torch.zeros(2), torch.ones(2))]]
    # member 0 alone in its group: its mismatch (2 channels × 1²) weighted by its ζ share 0.4
    value = BNStatsLoss([[0], [1]], distance="sq")(batch, source, torch.tensor([0.4, 0.6]))
    assert value.item() == pytest.approx(0.4 * 2.0, abs=1e-6)


def test_cluster_pseudo_labels_fix_wrong_but_separable_predictions():
    # two tight clusters; the classifier is unsure about the points near the second cluster
    feats = torch.tensor([[1.0, 0.0], [0.9, 0.1], [0.0, 1.0], [0.1, 0.9], [0.05, 1.0]])
    probs = torch.tensor([[0.9, 0.1], [0.8, 0.2], [0.3, 0.7], [0.55, 0.45], [0.6, 0.4]])
    labels = cluster_pseudo_labels([feats], probs, torch.tensor([1.0]))
    assert labels.tolist() == [0, 0, 1, 1, 1]
    assert probs.argmax(1).tolist() == [0, 0, 1, 0, 0]  # what the classifier alone would say


def test_cluster_pseudo_labels_weigh_members_by_zeta():
    # member 1 separates {0,1} from {2,3}; member 2 separates {0,2} from {1,3}
    f1 = torch.tensor([[1.0, 0.0], [1.0, 0.1], [0.0, 1.0], [0.1, 1.0]])
    f2 = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.1], [0.1, 1.0]])
    probs = torch.full((4, 2), 0.5)
    probs[0] = torch.tensor([0.9, 0.1])
    probs[3] = torch.tensor([0.1, 0.9])
    by_first = cluster_pseudo_labels([f1, f2], probs, torch.tensor([0.95, 0.05]))
    by_second = cluster_pseudo_labels([f1, f2], probs, torch.tensor([0.05, 0.95]))
    assert by_first.tolist() == [0, 0, 1, 1]
    assert by_second.tolist() == [0, 1, 0, 1]
