"""The two networks: the reference CIFAR ResNet-18 and a small BatchNorm MLP for the classroom.

Both keep their feature extractor inside ``nn.Sequential`` containers and the classifier as the
direct child ``fc``. The reference Retrain resets only direct children that have
``reset_parameters()``, which for these networks is ``fc`` alone (see ``methods.retrain``).
"""
import torch
from torch import nn

from ..errors import ConfigError

MODELS_VERSION = 1  # bump when a network's layers, widths or initialisation change


class BasicBlock(nn.Module):
    def __init__(self, cin, cout, stride):
        super().__init__()
        self.residual = nn.Sequential(
            nn.Conv2d(cin, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout), nn.ReLU(inplace=True),
            nn.Conv2d(cout, cout, 3, 1, 1, bias=False), nn.BatchNorm2d(cout))
        self.shortcut = nn.Sequential()
        if stride != 1 or cin != cout:  # 1x1 conv + BN where the shape changes
            self.shortcut = nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))

    def forward(self, x):
        return torch.relu(self.residual(x) + self.shortcut(x))


class ResNet18(nn.Module):
    """CIFAR ResNet-18: 3x3 stem without max-pool, stages 64/128/256/512 at strides 1/2/2/2.

    ``width`` scales the channels (64 is the reference); tests shrink it to run on a CPU.
    """
    def __init__(self, num_classes, in_channels=3, width=64):
        super().__init__()
        w = [width, 2 * width, 4 * width, 8 * width]
        self.conv1 = nn.Sequential(nn.Conv2d(in_channels, w[0], 3, 1, 1, bias=False),
                                   nn.BatchNorm2d(w[0]), nn.ReLU(inplace=True))
        cin, stages = w[0], []
        for cout, stride in zip(w, (1, 2, 2, 2)):
            stages.append(nn.Sequential(BasicBlock(cin, cout, stride), BasicBlock(cout, cout, 1)))
            cin = cout
        self.layer1, self.layer2, self.layer3, self.layer4 = stages
        self.avgpool = nn.AdaptiveAvgPool2d(1)
        self.fc = nn.Linear(w[3], num_classes)

    def forward(self, x):
        x = self.layer4(self.layer3(self.layer2(self.layer1(self.conv1(x)))))
        return self.fc(torch.flatten(self.avgpool(x), 1))


class MLP(nn.Module):
    """Flatten -> Linear -> BatchNorm1d -> ReLU -> Linear: the classroom network.

    One epoch over 4,000 digits of 14 x 14 takes tens of milliseconds on two CPU cores, and
    BatchNorm keeps the train/eval distinction that UNSIR and SSD depend on.
    """
    def __init__(self, num_classes, in_features, hidden=128):
        super().__init__()
        self.features = nn.Sequential(nn.Flatten(), nn.Linear(in_features, hidden),
                                      nn.BatchNorm1d(hidden), nn.ReLU(inplace=True))
        self.fc = nn.Linear(hidden, num_classes)

    def forward(self, x):
        return self.fc(self.features(x))


ARCHS = ("resnet18", "mlp")


def build(cfg: dict, num_classes: int, in_shape, seed: int) -> nn.Module:
    """A freshly initialised network, its weights fixed by ``seed`` (built on the CPU)."""
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        if cfg["arch"] == "resnet18":
            return ResNet18(num_classes, in_shape[0], cfg.get("width", 64))
        if cfg["arch"] == "mlp":
            c, h, w = in_shape
            return MLP(num_classes, c * h * w, cfg.get("hidden", 128))
    raise ConfigError(f"model.arch {cfg['arch']!r} is unknown; allowed: {', '.join(ARCHS)}")
