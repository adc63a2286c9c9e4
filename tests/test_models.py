"""kdlab.models: output shapes, feature access by name, parameter/MAC counts."""
import pytest
import torch
from torch import nn

import kdlab as kd


@pytest.mark.parametrize("cls", [kd.models.Teacher, kd.models.TinyCNN, kd.models.HintonMLP,
                                 kd.models.ThinDeepCNN])
def test_logit_shapes(cls):
    assert cls()(torch.zeros(3, 1, 28, 28)).shape == (3, 10)


def test_teacher_feature_maps_by_name():
    t = kd.models.Teacher().eval()
    ext = kd.models.features(t, ["layer1", "layer2", "layer3"])
    out = ext(torch.zeros(2, 1, 28, 28))
    w = t.width
    assert out["layer1"].shape == (2, w, 14, 14)
    assert out["layer2"].shape == (2, 2 * w, 7, 7)
    assert out["layer3"].shape == (2, 4 * w, 4, 4)
    assert "layer2" in kd.models.layer_names(t)


def test_features_share_weights_and_unknown_name():
    s = kd.models.ThinDeepCNN()
    ext = kd.models.features(s, "stage2")
    x = torch.randn(2, 1, 28, 28)
    before = ext(x)["stage2"].clone()
    with torch.no_grad():
        s.stage1[0].weight.mul_(2)
    assert not torch.allclose(before, ext(x)["stage2"])
    with pytest.raises(ValueError, match="unknown layer name.*layer_names"):
        kd.models.features(s, "layer9")


def test_cost_counts_known_layers():
    lin = nn.Sequential(nn.Flatten(), nn.Linear(784, 10))
    assert kd.models.cost(lin) == {"params": 7850, "macs": 7840}
    conv = nn.Conv2d(1, 4, 3, padding=1)
    assert kd.models.cost(conv)["macs"] == 4 * 28 * 28 * 9
    mlp = kd.models.cost(kd.models.HintonMLP())
    assert mlp["params"] == 784 * 800 + 800 + 800 * 800 + 800 + 800 * 10 + 10
    assert mlp["macs"] == 784 * 800 + 800 * 800 + 800 * 10


def test_compression_ratio_teacher_vs_tiny_student():
    r = kd.models.compression(kd.models.Teacher(), kd.models.TinyCNN())
    assert r["params"] > 10 and r["macs"] > 10


def test_cost_restores_training_mode():
    m = kd.models.Teacher().train()  # has batch norm: a forward in train mode would move its stats
    stats = {k: v.clone() for k, v in m.state_dict().items() if "running" in k}
    assert stats
    kd.models.cost(m)
    assert m.training
    assert all(torch.equal(m.state_dict()[k], v) for k, v in stats.items())


def test_tiny_cnn_widths_and_depth():
    base = kd.models.TinyCNN()
    assert list(base.state_dict()) == ["conv1.weight", "conv1.bias", "conv2.weight",
                                       "conv2.bias", "fc.weight", "fc.bias"]
    deep = kd.models.TinyCNN(4, 8, depth=3)
    convs = [m for m in deep.modules() if isinstance(m, nn.Conv2d)]
    assert len(convs) == 6 and deep(torch.zeros(2, 1, 28, 28)).shape == (2, 10)
    c = kd.models.cost(kd.models.TinyCNN(8, 16, depth=2))
    assert c["macs"] == base_macs(8, 16) + 8 * 8 * 9 * 28 * 28 + 16 * 16 * 9 * 14 * 14
    with pytest.raises(ValueError, match="depth"):
        kd.models.TinyCNN(depth=0)


def base_macs(c1, c2):
    """MACs of the depth-1 TinyCNN: conv1 at 28x28, conv2 at 14x14, the linear layer."""
    return c1 * 9 * 28 * 28 + c2 * c1 * 9 * 14 * 14 + c2 * 7 * 7 * 10
