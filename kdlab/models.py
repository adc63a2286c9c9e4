"""The course's networks: the teacher ResNet, three students, feature access and cost counts.

- ``Teacher``: a small ResNet for 28x28 digits (three stages of two residual blocks).
- ``TinyCNN``: a ~9k-parameter CNN (two conv stages); widths and depth are arguments.
- ``HintonMLP``: the 784-800-800-10 ReLU MLP of Hinton, Vinyals & Dean (2015).
- ``ThinDeepCNN``: a deep, thin plain CNN (no residuals, no batch norm), the kind of student
  FitNets (Romero et al. 2015) guide with hints.

``features(model, names)`` reads intermediate feature maps by name (torchvision's
``create_feature_extractor``); ``layer_names(model)`` lists the names; ``cost(model)``
reports parameters and multiply-accumulates per image.
"""
from __future__ import annotations

import torch
from torch import nn
import torch.nn.functional as F


class BasicBlock(nn.Module):
    """Residual block: two 3x3 conv-BN layers and a skip connection (1x1 conv if shapes differ).

    Input (N, c_in, H, W) -> output (N, c_out, H/stride, W/stride).
    """

    def __init__(self, c_in: int, c_out: int, stride: int = 1):
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, 1, 1, bias=False)
        self.bn2 = nn.BatchNorm2d(c_out)
        self.skip = nn.Identity()
        if stride != 1 or c_in != c_out:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride, bias=False),
                                      nn.BatchNorm2d(c_out))

    def forward(self, x):
        out = F.relu(self.bn1(self.conv1(x)))
        out = self.bn2(self.conv2(out))
        return F.relu(out + self.skip(x))


class Teacher(nn.Module):
    """Small ResNet for MNIST: stem, three stages (14x14, 7x7, 4x4), global pool, linear.

    Named stages for hints (width w = 24): ``stem`` (N, w, 28, 28), ``layer1`` (N, w, 14, 14),
    ``layer2`` (N, 2w, 7, 7), ``layer3`` (N, 4w, 4, 4).
    Input x: (N, 1, 28, 28) normalised images. Returns logits (N, 10).
    """

    def __init__(self, width: int = 24, num_classes: int = 10):
        super().__init__()
        w = width
        self.width = width
        self.stem = nn.Sequential(nn.Conv2d(1, w, 3, 1, 1, bias=False), nn.BatchNorm2d(w), nn.ReLU())
        self.layer1 = nn.Sequential(BasicBlock(w, w, 2), BasicBlock(w, w))
        self.layer2 = nn.Sequential(BasicBlock(w, 2 * w, 2), BasicBlock(2 * w, 2 * w))
        self.layer3 = nn.Sequential(BasicBlock(2 * w, 4 * w, 2), BasicBlock(4 * w, 4 * w))
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(4 * w, num_classes)

    def forward(self, x):
        x = self.layer3(self.layer2(self.layer1(self.stem(x))))
        return self.fc(torch.flatten(self.pool(x), 1))


class TinyCNN(nn.Module):
    """A small CNN: two stages of 3x3 conv + ReLU, each ending in a 2x2 max-pool, then linear.

    Inputs: c1, c2: channels of the two stages; depth: conv layers per stage (default 1: the
    ~9k-parameter student of Lab 03; Lab 05 searches widths and depths).
    Input x: (N, 1, 28, 28). Returns logits (N, 10).
    """

    def __init__(self, c1: int = 8, c2: int = 16, num_classes: int = 10, depth: int = 1):
        super().__init__()
        if depth < 1:
            raise ValueError(f"depth (conv layers per stage) must be >= 1, got {depth}")
        self.conv1 = nn.Conv2d(1, c1, 3, padding=1)
        self.conv2 = nn.Conv2d(c1, c2, 3, padding=1)
        if depth > 1:  # the same widths, more layers; depth 1 keeps the modules of Lab 03's student
            self.more1 = nn.Sequential(*[m for _ in range(depth - 1)
                                         for m in (nn.Conv2d(c1, c1, 3, padding=1), nn.ReLU())])
            self.more2 = nn.Sequential(*[m for _ in range(depth - 1)
                                         for m in (nn.Conv2d(c2, c2, 3, padding=1), nn.ReLU())])
        self.fc = nn.Linear(c2 * 7 * 7, num_classes)

    def forward(self, x):
        x = F.relu(self.conv1(x))
        x = F.max_pool2d(self.more1(x) if hasattr(self, "more1") else x, 2)
        x = F.relu(self.conv2(x))
        x = F.max_pool2d(self.more2(x) if hasattr(self, "more2") else x, 2)
        return self.fc(torch.flatten(x, 1))


class HintonMLP(nn.Module):
    """The ReLU MLPs of Hinton et al. (2015): 784-800-800-10 student, 784-1200-1200-10 teacher.

    Inputs: hidden units per layer; dropout_in / dropout: drop probabilities of the input
    pixels and of the hidden units (0: none, the paper's unregularised student).
    Forward: x (N, 1, 28, 28) or (N, 784) -> logits (N, 10).
    """

    def __init__(self, hidden: int = 800, num_classes: int = 10, dropout_in: float = 0.0,
                 dropout: float = 0.0):
        super().__init__()
        self.fc1 = nn.Linear(784, hidden)
        self.fc2 = nn.Linear(hidden, hidden)
        self.fc3 = nn.Linear(hidden, num_classes)
        # no Dropout module at p = 0, so the student draws no random numbers for it
        self.drop_in = nn.Dropout(dropout_in) if dropout_in > 0 else nn.Identity()
        self.drop = nn.Dropout(dropout) if dropout > 0 else nn.Identity()

    def forward(self, x):
        x = self.drop_in(torch.flatten(x, 1))
        x = self.drop(F.relu(self.fc1(x)))
        return self.fc3(self.drop(F.relu(self.fc2(x))))

    @torch.no_grad()
    def max_norm_(self, c: float) -> None:
        """Rescale every unit's incoming weight vector to norm at most c (Srivastava et al. 2014).

        Applied after each optimizer step, e.g. with
        ``opt.register_step_post_hook(lambda *_: model.max_norm_(c))``.
        """
        if c <= 0:
            raise ValueError(f"the max-norm bound c must be > 0, got {c}")
        for fc in (self.fc1, self.fc2, self.fc3):
            norms = fc.weight.norm(dim=1, keepdim=True)
            fc.weight.mul_(c / norms.clamp(min=c))


class ThinDeepCNN(nn.Module):
    """A deep, thin plain CNN (no skips, no batch norm): hard to train from labels alone.

    Three stages of ``depth`` 3x3 conv+ReLU layers each, ``width``, 2*width and 2*width
    channels, the 2nd and 3rd starting with stride 2; then global pool and a linear layer.
    Named stages: ``stage1`` (N, w, 28, 28), ``stage2`` (N, 2w, 14, 14), ``stage3`` (N, 2w, 7, 7).
    Input x: (N, 1, 28, 28). Returns logits (N, 10).
    """

    def __init__(self, width: int = 8, depth: int = 3, num_classes: int = 10):
        super().__init__()

        def stage(c_in, c_out, stride):
            layers = []
            for i in range(depth):
                layers += [nn.Conv2d(c_in if i == 0 else c_out, c_out, 3, stride if i == 0 else 1, 1),
                           nn.ReLU()]
            return nn.Sequential(*layers)

        self.stage1 = stage(1, width, 1)
        self.stage2 = stage(width, 2 * width, 2)
        self.stage3 = stage(2 * width, 2 * width, 2)
        self.pool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(2 * width, num_classes)

    def forward(self, x):
        x = self.stage3(self.stage2(self.stage1(x)))
        return self.fc(torch.flatten(self.pool(x), 1))


def layer_names(model: nn.Module) -> list[str]:
    """The names that ``features`` accepts: submodules (e.g. "layer2") and graph nodes."""
    from torchvision.models.feature_extraction import get_graph_node_names

    modules = [n for n, _ in model.named_modules() if n]
    nodes = get_graph_node_names(model)[1]
    return modules + [n for n in nodes if n not in set(modules)]


def features(model: nn.Module, names) -> nn.Module:
    """A module that returns the named intermediate feature maps of `model` as a dict.

    Inputs: model; names: a str or a list of node names (see ``layer_names``), e.g.
    ``"layer2"`` for the teacher. Returns a module mapping x (N, 1, 28, 28) to
    {name: feature map (N, C, H, W)}. It shares the weights of `model`.
    """
    from torchvision.models.feature_extraction import create_feature_extractor

    names = [names] if isinstance(names, str) else list(names)
    modules = {n for n, _ in model.named_modules() if n}
    # submodule names are valid as they are; only other names need the traced graph's nodes
    valid = modules if set(names) <= modules else set(layer_names(model))
    bad = [n for n in names if n not in valid]
    if bad:
        raise ValueError(f"unknown layer name(s) {bad} for {type(model).__name__}; "
                         f"choose from kd.models.layer_names(model), e.g. {[n for n in layer_names(model) if '.' not in n]}")
    return create_feature_extractor(model, return_nodes=names)


def num_params(model: nn.Module, trainable_only: bool = False) -> int:
    """Number of parameters (optionally only those with requires_grad)."""
    return sum(p.numel() for p in model.parameters() if p.requires_grad or not trainable_only)


@torch.no_grad()
def cost(model: nn.Module, input_shape=(1, 1, 28, 28)) -> dict:
    """Parameters and multiply-accumulates (MACs) per image of conv and linear layers.

    Inputs: model; input_shape: (1, C, H, W) of one example.
    Returns: {"params": int, "macs": int} (MACs for one image, biases not counted).
    """
    macs = 0

    def hook(mod, inp, out):
        nonlocal macs
        if isinstance(mod, nn.Conv2d):
            k = mod.kernel_size[0] * mod.kernel_size[1] * (mod.in_channels // mod.groups)
            macs += out.numel() // out.shape[0] * k
        elif isinstance(mod, nn.Linear):
            macs += out.numel() // out.shape[0] * mod.in_features

    handles = [m.register_forward_hook(hook) for m in model.modules()
               if isinstance(m, (nn.Conv2d, nn.Linear))]
    was_training = model.training
    model.eval()
    try:
        p = next(model.parameters(), None)
        model(torch.zeros(input_shape, device=p.device if p is not None else "cpu"))
    finally:
        model.train(was_training)
        for h in handles:
            h.remove()
    return {"params": num_params(model), "macs": int(macs)}


def compression(teacher: nn.Module, student: nn.Module) -> dict:
    """Teacher/student ratios of parameters and MACs: {"params": float, "macs": float}."""
    t, s = cost(teacher), cost(student)
    return {"params": t["params"] / s["params"], "macs": t["macs"] / s["macs"]}
