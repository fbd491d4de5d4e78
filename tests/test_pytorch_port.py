"""A PyTorch user's CIFAR-10-style training script runs on fastconv by changing its imports.

``SCRIPT`` below is written for PyTorch: a custom ``nn.Module`` (``nn.ModuleList`` of
conv/BN/ReLU/pool blocks, ``AdaptiveAvgPool2d``, ``Flatten``, ``Dropout``, a ``Linear`` head)
initialised with ``model.apply`` and ``nn.init.kaiming_normal_``; a ``Dataset`` subclass over
in-memory PIL images (the label is the quadrant of a coloured square, so a small network
learns it in an epoch or two); torchvision-style transforms; a ``DataLoader`` with workers;
``nn.CrossEntropyLoss``; ``optim.SGD`` with two parameter groups, momentum, Nesterov and
weight decay, ``OneCycleLR(max_lr, epochs=, steps_per_epoch=)``; gradient clipping; an
evaluation loop under ``@torch.no_grad()``; ``torch.save``/``torch.load`` of a state_dict.

``to_fastconv`` makes the fastconv twin by text substitution and nothing else:
``torchvision.transforms`` -> ``fastconv.data.transforms``, then the word ``torch`` ->
``fastconv`` (so ``torch.nn`` -> ``fastconv.nn``, ``torch.nn.functional`` ->
``fastconv.nn.functional``, ``torch.optim`` -> ``fastconv.optim``, ``torch.utils.data`` ->
``fastconv.utils.data``, and ``torch.manual_seed``, ``torch.device``, ``torch.cuda``,
``torch.backends``, ``torch.max``, ``torch.cat``, ``torch.save`` ... -> fastconv's).

torchvision cannot be imported here, so the PyTorch run gets ``TORCHVISION_STANDIN``: a
``torchvision.transforms`` module of four classes built from torch ops, installed in
``sys.modules`` for that run only. The script text is the same in both runs.

Both runs of the comparison set ``DETERMINISTIC = True`` (the one line the test changes, in
both texts alike): no random crop, no shuffling, no dropout, so the two frameworks see the
same batches; the script's own ``torch.manual_seed`` cannot make torch's and fastconv's
random streams equal. After the model is built (the ``# --- model built ---`` line) the test
copies the PyTorch model's state_dict into the fastconv model through NumPy.
"""

from __future__ import annotations

import re
import sys
import types

import numpy as np
import pytest

import fastconv

torch = pytest.importorskip("torch")

SCRIPT = '''
import numpy as np
from PIL import Image

import torch
import torch.nn as nn
import torch.nn.functional as F
import torch.optim as optim
import torchvision.transforms as transforms
from torch.utils.data import DataLoader, Dataset

DETERMINISTIC = False  # True: no augmentation, no shuffling, no dropout
EPOCHS = 4
BATCH_SIZE = 64
torch.manual_seed(0)
torch.backends.cudnn.benchmark = True
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")


class SquaresDataset(Dataset):
    """32x32 RGB noise with a bright 6x6 square; the label is the square's quadrant."""

    def __init__(self, n, seed, transform=None):
        rng = np.random.default_rng(seed)
        self.images = rng.integers(0, 96, size=(n, 32, 32, 3), dtype=np.uint8)
        self.labels = rng.integers(0, 4, size=n)
        for img, label in zip(self.images, self.labels):
            r0 = 16 * (label // 2) + rng.integers(4, 7)
            c0 = 16 * (label % 2) + rng.integers(4, 7)
            img[r0:r0 + 6, c0:c0 + 6] = rng.integers(128, 256, size=3)
        self.transform = transform

    def __len__(self):
        return len(self.images)

    def __getitem__(self, idx):
        img = Image.fromarray(self.images[idx])
        if self.transform is not None:
            img = self.transform(img)
        return img, int(self.labels[idx])


class Block(nn.Module):
    def __init__(self, cin, cout):
        super().__init__()
        self.conv = nn.Conv2d(cin, cout, kernel_size=3, padding=1, bias=False)
        self.bn = nn.BatchNorm2d(cout)

    def forward(self, x):
        return F.max_pool2d(F.relu(self.bn(self.conv(x))), 2)


class Net(nn.Module):
    def __init__(self, num_classes=4, widths=(3, 16, 32), dropout=0.25):
        super().__init__()
        self.blocks = nn.ModuleList([Block(a, b) for a, b in zip(widths[:-1], widths[1:])])
        self.pool = nn.AdaptiveAvgPool2d((2, 2))  # keeps where the square is
        self.flatten = nn.Flatten()
        self.dropout = nn.Dropout(dropout)
        self.fc = nn.Linear(widths[-1] * 4, num_classes)

    def forward(self, x):
        for block in self.blocks:
            x = block(x)
        x = self.flatten(self.pool(x))
        return self.fc(self.dropout(x))


def init_weights(m):
    if isinstance(m, nn.Conv2d):
        nn.init.kaiming_normal_(m.weight, mode="fan_out", nonlinearity="relu")
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.constant_(m.weight, 1)
        nn.init.constant_(m.bias, 0)
    elif isinstance(m, nn.Linear):
        nn.init.normal_(m.weight, 0, 0.01)
        nn.init.zeros_(m.bias)


mean, std = (0.2, 0.2, 0.2), (0.25, 0.25, 0.25)
augment = [] if DETERMINISTIC else [transforms.RandomCrop(32, padding=4)]
train_transform = transforms.Compose(augment + [transforms.ToTensor(), transforms.Normalize(mean, std)])
test_transform = transforms.Compose([transforms.ToTensor(), transforms.Normalize(mean, std)])
train_set = SquaresDataset(512, seed=1, transform=train_transform)
test_set = SquaresDataset(256, seed=2, transform=test_transform)
train_loader = DataLoader(train_set, batch_size=BATCH_SIZE, shuffle=not DETERMINISTIC, num_workers=2)
test_loader = DataLoader(test_set, batch_size=100, shuffle=False)

model = Net(dropout=0.0 if DETERMINISTIC else 0.25).to(device)
model.apply(init_weights)
# --- model built ---
print(f"{sum(p.numel() for p in model.parameters() if p.requires_grad)} parameters")

decay = [p for n, p in model.named_parameters() if p.ndim > 1]
no_decay = [p for n, p in model.named_parameters() if p.ndim <= 1]
optimizer = optim.SGD([{"params": decay, "weight_decay": 5e-4}, {"params": no_decay, "weight_decay": 0.0}],
                      lr=0.01, momentum=0.9, nesterov=True)
scheduler = optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.1, epochs=EPOCHS,
                                          steps_per_epoch=len(train_loader))
criterion = nn.CrossEntropyLoss()


@torch.no_grad()
def evaluate(model, loader):
    model.eval()
    correct, total, all_outputs = 0, 0, []
    for inputs, labels in loader:
        inputs, labels = inputs.to(device), labels.to(device)
        outputs = model(inputs)
        _, predicted = torch.max(outputs, 1)
        total += labels.size(0)
        correct += (predicted == labels).sum().item()
        all_outputs.append(outputs)
    return 100.0 * correct / total, torch.cat(all_outputs)


losses, history, lrs = [], [], []
for epoch in range(EPOCHS):
    model.train()
    running_loss = 0.0
    for i, (inputs, labels) in enumerate(train_loader):
        inputs, labels = inputs.to(device), labels.to(device)
        optimizer.zero_grad()
        outputs = model(inputs)
        loss = criterion(outputs, labels)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), max_norm=5.0)
        optimizer.step()
        lrs.append(optimizer.param_groups[0]["lr"])
        scheduler.step()
        losses.append(loss.item())
        running_loss += loss.item() * inputs.size(0)
    acc, _ = evaluate(model, test_loader)
    history.append(acc)
    print(f"epoch {epoch + 1}: loss {running_loss / len(train_set):.4f} (last batch {loss:.4f}), "
          f"lr {scheduler.get_last_lr()[0]:.5f}, test accuracy {acc:.1f}%")

PATH = "./squares_net.pth"
torch.save(model.state_dict(), PATH)
restored = Net().to(device)
restored.load_state_dict(torch.load(PATH, weights_only=True))
restored_acc, restored_outputs = evaluate(restored, test_loader)
_, outputs = evaluate(model, test_loader)
print(f"restored: {restored_acc:.1f}%, max |diff| {(restored_outputs - outputs).abs().max().item():.2e}")
'''

MARKER = "# --- model built ---\n"


def to_fastconv(src: str) -> str:
    """The fastconv twin of a PyTorch script: its imports switched, by text only."""
    src = src.replace("torchvision.transforms", "fastconv.data.transforms")
    return re.sub(r"\btorch\b", "fastconv", src)


def _torchvision_standin() -> types.ModuleType:
    """``torchvision.transforms`` for the PyTorch run, from torch ops (torchvision is not
    installed here): Compose, ToTensor (PIL/HWC uint8 -> CHW float in [0, 1]), Normalize,
    RandomCrop(size, padding)."""
    tr = types.ModuleType("torchvision.transforms")

    class Compose:
        def __init__(self, transforms):
            self.transforms = transforms

        def __call__(self, x):
            for t in self.transforms:
                x = t(x)
            return x

    class ToTensor:
        def __call__(self, pic):
            a = np.array(pic, dtype=np.uint8)
            return torch.from_numpy(a.reshape(a.shape[0], a.shape[1], -1)).permute(2, 0, 1) \
                .float().div(255)

    class Normalize:
        def __init__(self, mean, std):
            self.mean = torch.tensor(mean).view(-1, 1, 1)
            self.std = torch.tensor(std).view(-1, 1, 1)

        def __call__(self, t):
            return (t - self.mean) / self.std

    class RandomCrop:
        def __init__(self, size, padding=0):
            self.size, self.padding = size, padding

        def __call__(self, pic):
            p = self.padding
            a = np.pad(np.array(pic), ((p, p), (p, p), (0, 0)))
            i, j = torch.randint(0, a.shape[0] - self.size + 1, (2,)).tolist()
            return a[i:i + self.size, j:j + self.size]

    for cls in (Compose, ToTensor, Normalize, RandomCrop):
        setattr(tr, cls.__name__, cls)
    return tr


def _run(src: str, *, deterministic: bool, epochs: int, init_state=None) -> dict:
    """Execute the script in a fresh namespace. Right after the model is built its state is
    kept as NumPy arrays (``initial_state`` in the result) and ``init_state`` (name -> NumPy
    array), if given, is loaded into it."""
    src = src.replace("DETERMINISTIC = False", f"DETERMINISTIC = {deterministic}") \
             .replace("EPOCHS = 4", f"EPOCHS = {epochs}")
    build, train = src.split(MARKER)
    ns = {"__name__": "__main__"}
    exec(compile(build, "<script: build>", "exec"), ns)  # noqa: S102 (the script under test)
    ns["initial_state"] = {k: np.asarray(v).copy()
                           for k, v in ns["model"].state_dict().items()}
    if init_state is not None:
        ns["model"].load_state_dict(init_state)
    exec(compile(train, "<script: train>", "exec"), ns)  # noqa: S102
    return ns


@pytest.fixture
def torchvision_standin(monkeypatch):
    tv = types.ModuleType("torchvision")
    tv.transforms = _torchvision_standin()
    monkeypatch.setitem(sys.modules, "torchvision", tv)
    monkeypatch.setitem(sys.modules, "torchvision.transforms", tv.transforms)


def test_the_twin_differs_only_in_its_imports():
    twin = to_fastconv(SCRIPT)
    changed = [(a, b) for a, b in zip(SCRIPT.splitlines(), twin.splitlines()) if a != b]
    assert len(SCRIPT.splitlines()) == len(twin.splitlines())
    assert changed and all(re.sub(r"\bfastconv\b", "torch", b).replace(
        "torch.data.transforms", "torchvision.transforms") == a for a, b in changed)
    assert "import fastconv.data.transforms as transforms" in twin
    assert "from fastconv.utils.data import DataLoader, Dataset" in twin


def test_first_steps_match_torch(tmp_path, monkeypatch, torchvision_standin):
    monkeypatch.chdir(tmp_path)
    ref = _run(SCRIPT, deterministic=True, epochs=2)
    init = ref["initial_state"]
    got = _run(to_fastconv(SCRIPT), deterministic=True, epochs=2, init_state=init)

    # the same state_dict names in the same order, and the same weights to start from
    assert list(got["initial_state"]) == list(init)
    assert got["initial_state"]["fc.weight"].shape == (4, 128)
    n = len(ref["losses"])
    assert n == len(got["losses"]) == 2 * 8
    np.testing.assert_allclose(got["lrs"], ref["lrs"], rtol=1e-6)
    # Float32 in both, from identical weights on identical batches. The first steps agree
    # to the last bit or nearly (the forward passes differ only in summation order: conv
    # GEMMs, BN statistics, ~1e-7 relative); each SGD step carries the difference into the
    # weights, and with lr up to 0.1 and momentum 0.9 it grows from step to step (measured:
    # <= 7e-7 relative over the first epoch's 8 steps, up to 1.5e-4 in the second, where the
    # losses are ~1e-4 and each is a difference of nearly equal log-probabilities). The
    # tolerances leave a margin of 10x for another machine's BLAS kernels, and stay far below
    # the loss's change from one step to the next (tens of percent).
    np.testing.assert_allclose(got["losses"][:8], ref["losses"][:8], rtol=1e-5, atol=0)
    np.testing.assert_allclose(got["losses"][8:], ref["losses"][8:], rtol=2e-3, atol=1e-7)
    assert got["history"] == ref["history"]


def test_fastconv_twin_trains(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    ns = _run(to_fastconv(SCRIPT), deterministic=False, epochs=3)
    losses = np.array(ns["losses"])
    assert len(losses) == 3 * 8
    # chance: loss ln 4 = 1.386, accuracy 25%
    assert abs(losses[0] - np.log(4)) < 0.1
    assert losses[-8:].mean() < 0.1 * losses[:4].mean()
    assert ns["history"][-1] >= 90.0
    # the state_dict saved with fastconv.save and loaded back gives the same model
    assert ns["restored_acc"] == ns["history"][-1]
    np.testing.assert_array_equal(ns["restored_outputs"].numpy(), ns["outputs"].numpy())
    assert isinstance(ns["model"].state_dict()["fc.weight"], np.ndarray)


HABITS = '''
import numpy as np
import torch
import torch.nn as nn

torch.backends.cudnn.benchmark = True
torch.backends.cudnn.deterministic = True
device = torch.device("cuda" if torch.cuda.is_available() else "cpu")
use_amp = device.type == "cuda"
rng = np.random.default_rng(0)
x = torch.tensor(rng.standard_normal((16, 5)), dtype=torch.float32).to(device)
y = torch.tensor(rng.integers(0, 3, 16)).to(device)
model = nn.Sequential(nn.Linear(5, 8), nn.ReLU(), nn.Dropout(0.0), nn.Linear(8, 3)).to(device)
model.load_state_dict({k: torch.tensor(rng.standard_normal(tuple(v.shape)) * 0.3, dtype=torch.float32)
                       for k, v in model.state_dict().items()})
optimizer = torch.optim.SGD(model.parameters(), lr=0.1, momentum=0.9)
criterion = nn.CrossEntropyLoss()
scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
losses, flags = [], []
for phase in ["train", "val", "train"]:
    model.train() if phase == "train" else model.eval()
    optimizer.zero_grad(set_to_none=True)
    with torch.set_grad_enabled(phase == "train"):
        with torch.autocast(device_type=device.type, enabled=use_amp):
            loss = criterion(model(x), y)
        flags.append(loss.requires_grad)
        if phase == "train":
            scaler.scale(loss).backward()
            scaler.unscale_(optimizer)
            nn.utils.clip_grad_norm_(model.parameters(), 1.0)
            scaler.step(optimizer)
            scaler.update()
    losses.append(loss.item())
with torch.inference_mode():
    preds = model(x).argmax(1)
accuracy = (preds == y).float().mean().item()
scale = scaler.get_scale()
'''


def test_everyday_habits_match_torch():
    """Lines PyTorch scripts carry beyond the training loop (cudnn switches, a phase loop
    under ``set_grad_enabled``, ``autocast``/``GradScaler`` switched off on a CPU,
    ``inference_mode``) run on fastconv by the same import switch, with torch's results."""
    ref, got = {}, {}
    exec(compile(HABITS, "<habits: torch>", "exec"), ref)  # noqa: S102
    exec(compile(to_fastconv(HABITS), "<habits: fastconv>", "exec"), got)  # noqa: S102
    assert got["flags"] == ref["flags"] == [True, False, True]
    np.testing.assert_allclose(got["losses"], ref["losses"], rtol=1e-5)
    assert got["accuracy"] == ref["accuracy"] and got["scale"] == ref["scale"] == 1.0
    assert fastconv.backends.cudnn.benchmark is True  # stored, no effect


# Older scripts (and many model zoos) reach parameters and gradients through ``.data``.
DATA_HABITS = '''
import math
import numpy as np
import torch
import torch.nn as nn

rng = np.random.default_rng(1)
model = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4), nn.ReLU(), nn.Flatten(),
                      nn.Linear(4 * 4 * 4, 3))
model.load_state_dict({k: torch.tensor(rng.standard_normal(tuple(v.shape)) * 0.3 + 0.05,
                                       dtype=v.dtype)
                       for k, v in model.state_dict().items()})
for m in model.modules():
    if isinstance(m, nn.Conv2d):
        n = m.kernel_size[0] * m.kernel_size[1] * m.out_channels
        m.weight.data.mul_(math.sqrt(2.0 / n) / 0.3)
        m.bias.data.zero_()
    elif isinstance(m, nn.BatchNorm2d):
        m.weight.data.fill_(1)
        m.bias.data.add_(0.25)
    elif isinstance(m, nn.Linear):
        m.weight.data.clamp_(-0.2, 0.2)
        m.bias.data.copy_(torch.tensor([1.0, -1.0, 0.5]))
ema = [p.data.clone() for p in model.parameters()]
x = torch.tensor(rng.standard_normal((5, 3, 6, 6)), dtype=torch.float32)
norms = []
for step in range(3):
    model.zero_grad()
    loss = model(x).square().mean()
    loss.backward()
    norms.append(math.sqrt(sum(p.grad.data.norm(2).item() ** 2 for p in model.parameters())))
    for p in model.parameters():
        p.grad.data.clamp_(-0.5, 0.5)
        p.data.add_(p.grad.data, alpha=-0.1)
        p.data -= 0.01 * p.data
    for e, p in zip(ema, model.parameters()):
        e.mul_(0.9).add_(p.data, alpha=0.1)
weights = [p.data.cpu().numpy().copy() for p in model.parameters()]
averages = [e.numpy().copy() for e in ema]
shapes = [list(p.data.shape) for p in model.parameters()]
'''


def test_data_attribute_habits_match_torch():
    """``.data`` of parameters and of their gradients: in-place initialisation
    (``m.weight.data.normal_``-style), ``p.data.add_(p.grad.data, alpha=-lr)`` updates,
    ``p.grad.data.norm(2)`` logging, ``.clone()`` / ``.cpu().numpy()``, as in torch."""
    ref, got = {}, {}
    exec(compile(DATA_HABITS, "<data habits: torch>", "exec"), ref)  # noqa: S102
    exec(compile(to_fastconv(DATA_HABITS), "<data habits: fastconv>", "exec"), got)  # noqa: S102
    assert got["shapes"] == ref["shapes"]
    np.testing.assert_allclose(got["norms"], ref["norms"], rtol=1e-4)
    for a, b in zip(got["weights"] + got["averages"], ref["weights"] + ref["averages"]):
        np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-6)
    model = fastconv.nn.Linear(3, 2)
    model.weight.data.normal_(0, 0.01)  # and the parameter itself changed, not a copy
    assert 0 < float(np.abs(model.weight.detach().numpy()).max()) < 0.1
    assert model.weight.data.size == 6  # NumPy's names keep NumPy's meaning


def test_compile_amp_and_backends_stand_ins():
    model = fastconv.nn.Linear(3, 2)
    assert fastconv.compile(model) is model
    assert fastconv.compile(mode="max-autotune")(len) is len
    with pytest.warns(UserWarning, match="disabling it"):
        scaler = fastconv.cuda.amp.GradScaler()
    assert not scaler.is_enabled() and scaler.get_scale() == 1.0 and scaler.state_dict() == {}
    loss = model(fastconv.ones(4, 3)).sum()
    assert scaler.scale(loss) is loss
    with pytest.warns(UserWarning, match="bfloat16 instead of float16"):
        ctx = fastconv.autocast("cpu", dtype=fastconv.float16)
    with ctx:  # bfloat16 values (tests/test_autocast.py), float32 storage
        assert model(fastconv.ones(1, 3)).dtype == fastconv.float32
    with pytest.raises(ValueError, match="device_type"):
        fastconv.amp.autocast(fastconv.float16)
    assert fastconv.backends.cudnn.is_available() is False
    if not fastconv.cuda.is_available():
        fastconv.backends.cuda.matmul.allow_tf32 = True
        assert fastconv.backends.cudnn.allow_tf32 is True  # one switch under two names
        fastconv.backends.cudnn.allow_tf32 = False
        assert fastconv.backends.cuda.matmul.allow_tf32 is False
