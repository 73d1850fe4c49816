import copy

import pytest
import torch

from mu_core.images import data as D, methods as M, models, train


def n_params(m):
    return sum(p.numel() for p in m.parameters())


def test_resnet18_is_the_reference_architecture():
    net = models.build({"arch": "resnet18"}, 100, (3, 32, 32), seed=0)
    assert abs(n_params(net) - 11.22e6) < 0.02e6  # about 11.2 M with 100 classes
    stem = net.conv1[0]
    assert (stem.kernel_size, stem.stride, stem.padding, stem.bias) == ((3, 3), (1, 1), (1, 1), None)
    assert not any(isinstance(m, torch.nn.MaxPool2d) for m in net.modules())
    assert [net.layer1[0].residual[0].stride, net.layer2[0].residual[0].stride,
            net.layer3[0].residual[0].stride, net.layer4[0].residual[0].stride] == [(1, 1), (2, 2), (2, 2), (2, 2)]
    assert net.fc.in_features == 512 and isinstance(net.avgpool, torch.nn.AdaptiveAvgPool2d)
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 100)


def test_reference_retrain_reset_touches_only_fc(monkeypatch):
    """methods.retrain itself (reference mode), stopped where training would start."""
    net = models.build({"arch": "resnet18", "width": 8}, 20, (3, 32, 32), seed=0)
    before = copy.deepcopy(net.state_dict())
    x, y = torch.rand(40, 3, 32, 32), torch.arange(40) % 20
    dd = D.Data(x, y, y, x[:20], y[:20], y[:20], (0.5,) * 3, (0.25,) * 3)
    split = D.make_split(dd, "cifar100", "full_class", "apple")
    started = []
    monkeypatch.setattr(train, "fit", lambda m, *a, **k: started.append(copy.deepcopy(m.state_dict())) or m)
    ctx = M.Context("reference", {"epochs": 1, "batch": 8, "milestones": [], "lr": 0.1}, {"arch": "resnet18", "width": 8})
    M.retrain(net, split, {"lr": 0.01}, ctx, torch.Generator().manual_seed(5))
    changed = {k for k, v in started[0].items() if not torch.equal(v, before[k])}
    assert changed == {"fc.weight", "fc.bias"}


def test_lr_schedule_warmup_then_steps():
    r = {"lr": 0.1, "warmup_epochs": 1, "milestones": [3, 5], "gamma": 0.2}
    assert train.lr_at(r, 1, 0, 10) == 0.0
    assert train.lr_at(r, 1, 5, 10) == pytest.approx(0.05)
    assert train.lr_at(r, 2, 0, 10) == pytest.approx(0.1)
    assert train.lr_at(r, 3, 0, 10) == pytest.approx(0.02)
    assert train.lr_at(r, 5, 7, 10) == pytest.approx(0.004)


def test_augment_is_seeded_and_shape_preserving():
    x = torch.rand(8, 3, 32, 32)
    a = train.augment(x, torch.Generator().manual_seed(1), crop_pad=4, flip=True, rotate=15)
    b = train.augment(x, torch.Generator().manual_seed(1), crop_pad=4, flip=True, rotate=15)
    c = train.augment(x, torch.Generator().manual_seed(2), crop_pad=4, flip=True, rotate=15)
    assert a.shape == x.shape and torch.equal(a, b) and not torch.equal(a, c)
    # a crop with zero offset of the padded image is the identity's shift: check one offset by hand
    g = torch.Generator().manual_seed(0)
    y = train.augment(x, g, crop_pad=2)
    g = torch.Generator().manual_seed(0)
    dy, dx = torch.randint(0, 5, (8,), generator=g), torch.randint(0, 5, (8,), generator=g)
    padded = torch.nn.functional.pad(x, (2, 2, 2, 2))
    assert torch.equal(y[3], padded[3, :, dy[3]:dy[3] + 32, dx[3]:dx[3] + 32])


def _train(seed, data):
    net = models.build({"arch": "mlp", "hidden": 16}, 10, (1, 7, 7), seed)
    recipe = {"epochs": 2, "lr": 0.1, "momentum": 0.9, "weight_decay": 5e-4, "batch": 64,
              "warmup_epochs": 1, "milestones": [], "augment": {"crop_pad": 1}}
    return train.fit(net, data.train_x, data.train_fine, recipe, torch.Generator().manual_seed(seed), data)


def test_same_training_seed_same_weights_different_seed_different():
    data = D.load({"source": "mnist5k", "image_size": 7})
    a, b, c = _train(1, data), _train(1, data), _train(2, data)
    for k, v in a.state_dict().items():
        assert torch.equal(v, b.state_dict()[k])
    assert not torch.equal(a.state_dict()["fc.weight"], c.state_dict()["fc.weight"])


def test_gpu_speed_options_run_on_the_cpu_and_stay_seeded():
    """The GPU path (bf16 autocast, channels-last) is the same code; here it runs on the CPU."""
    x, y = torch.rand(48, 3, 16, 16), torch.randint(0, 5, (48,))
    data = D.Data(x, y, y, x, y, y, (0.5, 0.5, 0.5), (0.25, 0.25, 0.25))
    recipe = {"epochs": 1, "lr": 0.05, "momentum": 0.9, "batch": 16, "milestones": [],
              "augment": {"crop_pad": 2, "flip": True, "rotate": 10}, "amp": "bf16", "channels_last": True}
    nets = []
    for _ in range(2):
        net = models.build({"arch": "resnet18", "width": 4}, 5, (3, 16, 16), seed=0)
        before = net.fc.weight.clone()
        train.fit(net, x, y, recipe, torch.Generator().manual_seed(0), data)
        assert torch.isfinite(net.fc.weight).all() and not torch.equal(before, net.fc.weight)
        nets.append(net)
    assert torch.equal(nets[0].fc.weight, nets[1].fc.weight)
