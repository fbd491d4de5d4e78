"""Every small-image model of the zoo learns with its default recipe.

A network can pass every shape and gradient test and still not learn: a ReLU on
the logits that switches off, an initialisation that is too large or too small for
the recipe's learning rate. Here each registered model with inputs of at most 32×32
pixels trains for a bounded number of steps on a small synthetic image set that the
test makes itself (fresh from the run's seed each time) and must reach clearly
better than chance accuracy on its own training images (the batches' predictions in
training mode over the last quarter of the steps; after so few steps the running
statistics of batch norm still lag, so eval-mode accuracy is only reported).

The data: four classes; each image is noise with one coloured square whose
quadrant and colour give its class (position jittered inside the quadrant, size
and brightness vary). A network that learns at all gets it quickly; a dead one
(constant logits) stays at 25%.

The optimisation is the model's recipe from ``models.train_cifar`` (optimizer,
momentum, weight decay, gradient clipping, auxiliary-loss weight), built by the
script's own ``resolve_config`` / ``build_optimizer`` / ``build_scheduler`` and
shortened: a linear warm-up over the first quarter of the steps, then the peak rate
to the end (``schedule="constant"``), so most steps run at the peak rate that a full
run reaches after its warm-up. To keep the file within a few minutes on two cores the
batches are smaller than the recipes' 128 and the peak rate is scaled with them
(rate x batch / 128, the linear scaling rule of Goyal et al. 2017, which keeps the
step per image the same), and the networks that end in global average pooling see
16×16 images. The original NIN recipe (a ReLU on the class maps) stays at chance
here, as it did on CIFAR-10.
"""

from __future__ import annotations

import time

import numpy as np
import pytest

import fastconv
import fastconv.functional as F
import models
from fastconv import optim
from models.train_cifar import build_optimizer, build_scheduler, resolve_config

NUM_CLASSES = 4
IMAGES_PER_CLASS = 48
#: training accuracy (the batches' predictions in training mode over the last quarter of
#: the steps, as the training script's "train top-1") the model must reach; chance: 25%
TARGET = 0.6

#: per model: (steps, batch size, image side). The networks that end in global average
#: pooling see 16x16 images (a quarter of the work of 32x32); the larger ones take
#: smaller batches.
BUDGET = {
    "alexnet_cifar": (30, 16, 32),
    "bn_inception_cifar": (20, 16, 16),
    "cifar10_tutorial": (20, 128, 24),
    "googlenet_cifar": (36, 16, 16),
    "inception_small": (20, 32, 32),
    "nin_cifar": (40, 64, 16),
}
DEFAULT_BUDGET = (40, 32, None)  # None: the model's input size

SMALL_MODELS = [n for n in models.list_models()
                if max(models.get_model_spec(n).input_shape[1:]) <= 32]

#: class colours (RGB in [0, 1]) and the quadrant (row, column) of each class
_COLOURS = np.array([[1.0, 0.2, 0.2], [0.2, 1.0, 0.2], [0.2, 0.2, 1.0], [1.0, 1.0, 0.2]])
_QUADRANTS = [(0, 0), (0, 1), (1, 0), (1, 1)]


def make_images(rng: np.random.Generator, size: int, per_class: int = IMAGES_PER_CLASS):
    """``(x, y)``: ``4 * per_class`` images ``(N, 3, size, size)`` float32, standardised per
    channel, and their labels, shuffled."""
    n = NUM_CLASSES * per_class
    y = np.repeat(np.arange(NUM_CLASSES), per_class)
    x = rng.normal(0.4, 0.15, size=(n, 3, size, size))
    half = size // 2
    for i, c in enumerate(y):
        side = int(rng.integers(size // 4, size // 2 - 1))
        qr, qc = _QUADRANTS[c]
        r0 = qr * half + int(rng.integers(0, max(1, half - side + 1)))
        c0 = qc * half + int(rng.integers(0, max(1, half - side + 1)))
        colour = _COLOURS[c] * rng.uniform(0.7, 1.0)
        x[i, :, r0:r0 + side, c0:c0 + side] = colour[:, None, None] \
            + rng.normal(0, 0.1, size=(3, side, side))
    x = (x - x.mean(axis=(0, 2, 3), keepdims=True)) / x.std(axis=(0, 2, 3), keepdims=True)
    order = rng.permutation(n)
    return x[order].astype(np.float32), y[order].astype(np.int64)


def _logits(out):
    return models.main_logits(out)


def train_briefly(name: str, x: np.ndarray, y: np.ndarray, rng: np.random.Generator,
                  steps: int, batch_size: int, model=None, **options) -> dict:
    """Train ``name`` (or ``model``, else the model built with ``options``) for ``steps``
    batches with its recipe's optimizer; the rate is the recipe's peak rate scaled by
    ``batch_size`` / the recipe's batch size, reached after a quarter of the steps."""
    cfg = resolve_config({"model": name})
    cfg.update(epochs=1, warmup_epochs=0.25, schedule="constant", batch_size=batch_size,
               lr=cfg["lr"] * batch_size / cfg["batch_size"])
    if model is None:
        model = models.get_model(name, num_classes=NUM_CLASSES,
                                 **{**(cfg.get("model_options") or {}), **options})
    model.train()
    opt = build_optimizer(cfg, model)
    sched = build_scheduler(cfg, opt, steps_per_epoch=steps)
    aux_weight = float(cfg["aux_weight"])
    clip = float(cfg["clip_grad"])
    losses, norms, hits = [], [], []
    order = np.empty(0, np.int64)
    for _ in range(steps):
        if len(order) < batch_size:
            order = np.concatenate([order, rng.permutation(len(y))])
        idx, order = order[:batch_size], order[batch_size:]
        xt, yt = fastconv.tensor(x[idx]), fastconv.tensor(y[idx])
        out = model(xt)
        logits = _logits(out)
        loss = F.cross_entropy(logits, yt)
        total = loss
        if isinstance(out, tuple):
            for a in out[1:]:
                if a is not None:
                    total = total + aux_weight * F.cross_entropy(a, yt)
        opt.zero_grad()
        total.backward()
        if clip > 0:
            norms.append(float(optim.clip_grad_norm_(
                [p for p in model.parameters() if p.requires_grad], clip)))
        opt.step()
        sched.step()
        losses.append(float(loss.item()))
        hits.append(logits.detach().numpy().argmax(axis=1) == y[idx])
        assert np.isfinite(losses[-1]), f"{name}: the loss became {losses[-1]}"
    model.eval()
    correct, spread = 0, 0.0
    with fastconv.no_grad():
        for i in range(0, len(y), 64):
            lg = _logits(model(fastconv.tensor(x[i:i + 64]))).numpy()
            correct += int((lg.argmax(axis=1) == y[i:i + 64]).sum())
            spread = max(spread, float(np.ptp(lg, axis=0).max()))
    last = hits[-max(1, steps // 4):]
    return {"accuracy": float(np.concatenate(last).mean()), "eval_accuracy": correct / len(y),
            "losses": losses, "spread": spread, "model": model, "grad_norms": norms}


def _report(name, r, steps, batch_size, seconds):
    k = max(1, len(r["losses"]) // 5)
    first, last = np.mean(r["losses"][:k]), np.mean(r["losses"][-k:])
    return (f"{name}: training accuracy {100 * r['accuracy']:.0f}% over the last quarter of "
            f"{steps} steps of {batch_size} (loss {first:.3f} -> {last:.3f}; eval mode "
            f"{100 * r['eval_accuracy']:.0f}%, largest spread of a logit over the images "
            f"{r['spread']:.3g}; {seconds:.1f}s)")


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_model_learns_with_its_recipe(name, rng):
    steps, batch_size, side = BUDGET.get(name, DEFAULT_BUDGET)
    x, y = make_images(rng, side or models.get_model_spec(name).input_shape[1])
    t0 = time.perf_counter()
    r = train_briefly(name, x, y, rng, steps, batch_size)
    msg = _report(name, r, steps, batch_size, time.perf_counter() - t0)
    print(msg)
    assert r["accuracy"] >= TARGET, f"does not learn: {msg}"


def test_a_dead_network_fails(rng):
    """The check itself: NIN with the ReLU after its last 1×1 convolution and class maps
    that start far below zero (so the ReLU passes nothing and no gradient flows) stays
    at chance."""
    name = "nin_cifar"
    x, y = make_images(rng, 16, per_class=16)
    model = models.get_model(name, num_classes=NUM_CLASSES, final_relu=True)
    last = [m for m in model.modules() if isinstance(m, fastconv.nn.Conv2d)][-1]
    fastconv.nn.init.constant_(last.bias, -100.0)
    r = train_briefly(name, x, y, rng, 8, 16, model=model)
    assert r["spread"] == 0.0
    assert r["accuracy"] < TARGET


@pytest.mark.parametrize("name", SMALL_MODELS)
def test_learning_rate_factors_name_parameters(name):
    """A model's ``lr_multipliers()`` (read by the optimizer set-up) names real parameters."""
    options = {"last_lr_mult": 0.1} if name == "nin_cifar" else {}
    model = models.get_model(name, num_classes=NUM_CLASSES, **options)
    if options:
        assert model.lr_multipliers()
    names = {n for n, _ in model.named_parameters()}
    factors = model.lr_multipliers() if hasattr(model, "lr_multipliers") else {}
    assert set(factors) <= names
    assert all(f > 0 for f in factors.values())
