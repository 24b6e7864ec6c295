import pytest
import torch
import torchvision

from conftest import needs_imagenet, offline_imagenet_mobilenet_v2
from socket_edge.errors import ArtifactError, UsageError
from socket_edge.models.zoo import ARCHITECTURES, ModelConfig, build, load_pretrained, parameter_groups


@pytest.mark.parametrize("arch, feature_dim", [
    ("resnet18", 512), ("resnet50", 2048), ("mobilenet_v2", 1280),
    ("mobilenet_v3_small", 1024), ("mobilenet_v3_large", 1280),
])
def test_native_split_uses_the_last_linear(arch, feature_dim):
    model = build(ModelConfig(arch, 5, head="native")).eval()
    x = torch.randn(2, 3, 32, 32)
    features = model.encoder(x)
    assert features.shape == (2, feature_dim)
    assert isinstance(model.classifier, torch.nn.Linear) and model.classifier.in_features == feature_dim
    torch.testing.assert_close(model(x), model.classifier(features))


def test_paper_head_is_bottleneck_bn_weightnormed_linear():
    model = build(ModelConfig("resnet18", 4)).eval()
    linear, bn = model.encoder[1], model.encoder[2]
    assert (linear.in_features, linear.out_features) == (512, 256)
    assert isinstance(bn, torch.nn.BatchNorm1d) and bn.num_features == 256
    assert model.encoder(torch.randn(2, 3, 32, 32)).shape == (2, 256)
    # weight norm: the weight is g · v/‖v‖ per output row
    g = model.classifier.parametrizations.weight.original0
    v = model.classifier.parametrizations.weight.original1
    torch.testing.assert_close(model.classifier.weight, g * v / v.norm(dim=1, keepdim=True))


def test_parameter_groups_give_the_backbone_a_tenth():
    model = build(ModelConfig("mobilenet_v3_small", 3))
    groups = parameter_groups(model, 0.01)
    assert [g["lr"] for g in groups] == [pytest.approx(0.001), 0.01]
    backbone = sum(p.numel() for p in model.encoder[0].parameters())
    assert sum(p.numel() for p in groups[0]["params"]) == backbone
    assert sum(p.numel() for g in groups for p in g["params"]) == sum(p.numel() for p in model.parameters())


def test_state_dict_weights_load_into_the_backbone(tmp_path):
    reference = torchvision.models.resnet18(num_classes=1000).eval()
    path = tmp_path / "r18.pth"
    torch.save(reference.state_dict(), path)
    model = build(ModelConfig("resnet18", 3), load_pretrained("resnet18", str(path))).eval()
    x = torch.randn(1, 3, 64, 64)
    reference.fc = torch.nn.Identity()
    torch.testing.assert_close(model.encoder[0](x), reference(x))


@needs_imagenet
def test_imagenet_mobilenet_v2_file_gives_imagenet_predictions():
    state = load_pretrained("mobilenet_v2", str(offline_imagenet_mobilenet_v2()))
    model = build(ModelConfig("mobilenet_v2", 1000, head="native"), state).eval()
    # the f/g split computes exactly torchvision's own model on the same weights
    reference = torchvision.models.mobilenet_v2()
    reference.load_state_dict(state)
    x = torch.randn(2, 3, 96, 96)
    torch.testing.assert_close(model(x), reference.eval()(x))


def test_bad_weights_and_names(tmp_path):
    with pytest.raises(UsageError, match="unknown architecture 'vgg99'"):
        ModelConfig("vgg99", 3)
    with pytest.raises(ArtifactError, match="does not exist"):
        load_pretrained("resnet18", str(tmp_path / "missing.pth"))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(ArtifactError, match="is not a PyTorch file, so it is not a state dict"):
        load_pretrained("resnet18", str(tmp_path / "junk.pth"))
    torch.save(torchvision.models.resnet18().state_dict(), tmp_path / "r18.pth")
    with pytest.raises(ArtifactError, match="do not fit mobilenet_v2"):
        build(ModelConfig("mobilenet_v2", 3), load_pretrained("mobilenet_v2", str(tmp_path / "r18.pth")))
    with pytest.raises(UsageError, match="1000 outputs but the data has 3"):
        build(ModelConfig("resnet18", 3, head="native"), load_pretrained("resnet18", str(tmp_path / "r18.pth")))
    assert ARCHITECTURES[:3] == ("resnet18", "resnet34", "resnet50")
