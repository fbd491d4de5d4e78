"""fastconv.data.transforms.v2 (torchvision.transforms.v2) and fastconv.data.utils
(torchvision.utils).

The references do not need torchvision: NumPy formulas written out here from torchvision's
definitions (CutMix's box, MixUp's mix, to_dtype's scaling, make_grid's layout and
normalisation, save_image's rounding), the same formulas run in torch where torch is installed
(to pin the float32 rounding), hand-built grids, PIL reading back what save_image wrote, and
torch's own one_hot for the label errors. Random draws are checked by re-seeding fastconv's
generator (``fastconv.manual_seed``) and drawing again. Where torchvision is importable, the
last section also runs the same inputs through it (CutMix / MixUp with the same draws, their
errors, ToImage, ToDtype, make_grid, save_image) and asks for identical results."""

import io
import math
import re
import warnings

import numpy as np
import pytest
from PIL import Image

import fastconv
import fastconv.data.transforms as T
from fastconv.data import augment
from fastconv.data.transforms import v2
from fastconv.data.utils import make_grid, save_image

try:
    import torch
except ImportError:  # pragma: no cover - torch is a test extra
    torch = None

needs_torch = pytest.mark.skipif(torch is None, reason="torch not installed")


def _np(x):
    return np.asarray(x.data if isinstance(x, fastconv.Tensor) else x)


@pytest.fixture
def img():
    a = np.random.default_rng(3).integers(0, 256, (9, 13, 3), dtype=np.uint8)
    return a, Image.fromarray(a)


def _batch(rng, n=6, c=3, h=10, w=14):
    """Images whose every pixel differs from the same pixel of every other image, and labels
    that differ from the previous image's (so both mixes are visible)."""
    x = rng.random((n, c, h, w)).astype(np.float32) + np.arange(n, dtype=np.float32)[:, None,
                                                                                      None, None]
    y = (np.arange(n) * 3 + 1) % 7
    return x, y.astype(np.int64)


# ------------------------------------------------------------------------------------------------
# the module and its names
# ------------------------------------------------------------------------------------------------

def test_both_import_forms_give_the_module():
    import fastconv.data.transforms.v2 as v2_direct

    assert v2_direct is v2 and T.v2 is v2


def test_names():
    for name in v2.__all__:
        assert hasattr(v2, name), name
    for name in ["ToImage", "ToDtype", "ToPureTensor", "Identity", "RandomApply", "RandomChoice",
                 "RandomOrder", "CutMix", "MixUp", "Compose", "Normalize", "RandomResizedCrop",
                 "RandAugment", "RandomErasing", "InterpolationMode", "Transform"]:
        assert name in v2.__all__
    assert v2.InterpolationMode is T.InterpolationMode
    assert v2.AutoAugmentPolicy is T.AutoAugmentPolicy
    # the v1 transforms are extended, not copied: isinstance, arguments and repr carry over
    assert issubclass(v2.RandomCrop, T.RandomCrop) and issubclass(v2.RandAugment, T.RandAugment)
    assert issubclass(v2.RandomApply, augment.RandomApply) and issubclass(v2.Compose, T.Compose)
    assert repr(v2.RandomCrop(8, padding=2)) == repr(T.RandomCrop(8, padding=2))
    assert v2.RandomCrop.__name__ == "RandomCrop" and v2.RandomCrop.__module__ == v2.__name__
    import pickle

    t = pickle.loads(pickle.dumps(v2.Compose([v2.RandomCrop(4), v2.ToImage()])))
    assert isinstance(t.transforms[0], v2.RandomCrop)


# ------------------------------------------------------------------------------------------------
# v2's calling convention
# ------------------------------------------------------------------------------------------------

def test_one_input_is_v1(img):
    a, pil = img
    for t1, t2 in [(T.RandomCrop(5, padding=2), v2.RandomCrop(5, padding=2)),
                   (T.RandomHorizontalFlip(), v2.RandomHorizontalFlip()),
                   (T.ColorJitter(0.4, 0.4, 0.4, 0.1), v2.ColorJitter(0.4, 0.4, 0.4, 0.1)),
                   (T.RandAugment(), v2.RandAugment())]:
        for x in (a, pil):
            fastconv.manual_seed(4)
            ref = [np.asarray(t1(x)) for _ in range(4)]
            fastconv.manual_seed(4)
            got = [np.asarray(t2(x)) for _ in range(4)]
            for r, g in zip(ref, got):
                np.testing.assert_array_equal(g, r)


def test_the_image_of_a_sample_is_transformed_the_rest_passes(img):
    a, pil = img
    flip = v2.RandomHorizontalFlip(p=1.0)
    label = fastconv.tensor([2, 5])
    out_img, out_label = flip(pil, label)
    np.testing.assert_array_equal(np.asarray(out_img), a[:, ::-1])
    assert out_label is label
    out = flip((a, 3))
    assert isinstance(out, tuple) and out[1] == 3
    np.testing.assert_array_equal(out[0], a[:, ::-1])
    out = flip({"image": pil, "target": {"label": 7, "name": "x"}})
    assert out["target"] == {"label": 7, "name": "x"}
    np.testing.assert_array_equal(np.asarray(out["image"]), a[:, ::-1])
    # Tensors: with no PIL / NumPy image, the first Tensor is the image, later ones pass
    chw = T.ToTensor()(a)
    out_img, out_label = flip(chw, label)
    np.testing.assert_array_equal(_np(out_img), _np(chw)[..., ::-1])
    assert out_label is label
    # with a PIL image in the sample, Tensors pass through
    out_pil, out_t = flip([pil, chw])
    assert out_t is chw and isinstance(out_pil, Image.Image)


def test_two_images_in_one_sample_are_refused(img):
    a, pil = img
    with pytest.raises(ValueError, match="holds 2 images"):
        v2.RandomRotation(10)(pil, pil)
    with pytest.raises(ValueError, match="holds 2 images"):
        v2.Compose([T.RandomCrop(4)])(a, pil)  # a v1 transform in a v2 container too


def test_batch_form_is_v1():
    x = np.random.default_rng(0).integers(0, 256, (5, 12, 12, 3), dtype=np.uint8)
    v1 = T.Compose([T.RandomCrop(8, padding=2), T.RandomHorizontalFlip(), T.ToFloat(),
                    T.Normalize(T.CIFAR10_MEAN, T.CIFAR10_STD), T.ToCHW()])
    new = v2.Compose([v2.RandomCrop(8, padding=2), v2.RandomHorizontalFlip(), T.ToFloat(),
                      v2.Normalize(T.CIFAR10_MEAN, T.CIFAR10_STD), T.ToCHW()])
    ref = v1(x, np.random.default_rng(9))
    np.testing.assert_array_equal(new(x, np.random.default_rng(9)), ref)
    assert new(x, np.random.default_rng(9)).shape == (5, 3, 8, 8)


def test_lambda_and_identity():
    t = fastconv.tensor([1.0, 2.0])
    double = v2.Lambda(lambda v: v * 2)
    assert double(3) == 6
    assert double((1, "ab")) == (2, "abab")  # every leaf of any type, as torchvision's
    assert v2.Lambda(lambda v: v * 2, int)((1, "ab")) == (2, "ab")
    out = double(t, fastconv.tensor([5.0]))  # Tensors: the first only
    assert _np(out[0]).tolist() == [2.0, 4.0] and _np(out[1]).tolist() == [5.0]
    with pytest.raises(TypeError, match="should be callable"):
        v2.Lambda(3)
    sample = (t, {"labels": 3})
    assert v2.Identity()(t) is t and v2.Identity()(*sample) == sample
    assert v2.ToPureTensor()(t) is t and v2.ToPureTensor()(*sample) == sample


# ------------------------------------------------------------------------------------------------
# containers
# ------------------------------------------------------------------------------------------------

def test_compose_passes_several_inputs_along(img):
    a, pil = img
    seen = []

    def both(image, label):  # a plain callable gets all the inputs, as in torchvision
        seen.append(label)
        return image, label + 1

    t = v2.Compose([v2.ToImage(), both, T.RandomVerticalFlip(p=1.0)])
    out, label = t(pil, 4)
    assert seen == [4] and label == 5
    np.testing.assert_array_equal(_np(out), a.transpose(2, 0, 1)[:, ::-1])
    with pytest.raises(ValueError, match="at least one transform"):
        v2.Compose([])
    with pytest.raises(TypeError, match="sequence of callables"):
        v2.Compose(v2.ToImage())


def test_random_apply(img):
    a, _ = img
    inv = v2.RandomApply([v2.RandomInvert(p=1.0)], p=0.3)
    assert v2.RandomApply([v2.RandomInvert(p=1.0)], p=0.0)(a, 1)[1] == 1
    np.testing.assert_array_equal(v2.RandomApply([v2.RandomInvert(1.0)], p=1.0)(a), 255 - a)
    fastconv.manual_seed(8)
    applied = [not np.array_equal(inv(a), a) for _ in range(300)]
    fastconv.manual_seed(8)
    draws = []
    for _ in range(300):  # one u per call; inverted when u < p (skipped when u >= p)
        u = fastconv.random.generator().random()
        draws.append(u < 0.3)
        if u < 0.3:
            fastconv.random.generator().random()  # RandomInvert's own draw
    assert applied == draws
    with pytest.raises(ValueError, match=re.escape("interval [0.0, 1.0]")):
        v2.RandomApply([v2.RandomInvert()], p=1.5)


def test_random_choice_and_order():
    add = [v2.Lambda(lambda v, k=k: v * 10 + k) for k in range(3)]
    choice = v2.RandomChoice(add, p=[1, 0, 3])
    assert choice.p == [0.25, 0.0, 0.75]
    fastconv.manual_seed(2)
    got = [choice(0) for _ in range(200)]
    fastconv.manual_seed(2)
    ref = [int(fastconv.random.generator().choice(3, p=[0.25, 0.0, 0.75])) for _ in range(200)]
    assert got == ref and set(got) == {0, 2}
    with pytest.raises(ValueError, match="Length of p doesn't match"):
        v2.RandomChoice(add, p=[1, 2])
    order = v2.RandomOrder(add)
    fastconv.manual_seed(6)
    got = [order(0) for _ in range(50)]
    fastconv.manual_seed(6)
    ref = []
    for _ in range(50):
        perm = fastconv.random.generator().permutation(3)
        ref.append(int("".join(str(k) for k in perm)))
    assert got == ref and len(set(got)) == 6
    # several inputs go through to the chosen transform
    assert v2.RandomChoice([v2.Identity()])(1, 2) == (1, 2)


# ------------------------------------------------------------------------------------------------
# ToImage, ToDtype, ConvertImageDtype, ToTensor
# ------------------------------------------------------------------------------------------------

def test_to_image(img):
    a, pil = img
    for x in (a, pil):
        t = v2.ToImage()(x)
        assert isinstance(t, fastconv.Tensor) and t.dtype == np.uint8 and t.shape == (3, 9, 13)
        np.testing.assert_array_equal(_np(t), a.transpose(2, 0, 1))
    t = v2.ToImage()(a)
    t.data[0, 0, 0] ^= 1  # its own memory, writable
    assert a[0, 0, 0] != t.data[0, 0, 0]
    grey = a[..., 0]
    assert v2.ToImage()(grey).shape == (1, 9, 13)
    assert v2.ToImage()(Image.fromarray(grey)).shape == (1, 9, 13)
    f = np.random.default_rng(0).random((4, 5, 2)).astype(np.float32)
    t = v2.ToImage()(f)  # dtype kept, not scaled
    assert t.dtype == np.float32 and np.array_equal(_np(t), f.transpose(2, 0, 1))
    chw = fastconv.tensor(np.zeros((3, 4, 5), np.float32))
    assert v2.ToImage()(chw) is chw
    assert v2.ToImage()(fastconv.tensor(np.zeros((4, 5), np.float32))).shape == (1, 4, 5)
    out, label = v2.ToImage()(pil, 3)
    assert out.shape == (3, 9, 13) and label == 3
    assert v2.ToImage()(3) == 3  # not an image: passes through, as in torchvision
    with pytest.raises(TypeError, match="Input can either be a pure Tensor, a numpy array, or a "
                                        "PIL image"):
        v2._to_image(3)


def _to_dtype_reference(a, dtype, scale):
    """torchvision's to_dtype_image, written out in NumPy float64 then checked as float32."""
    src, dst = np.dtype(a.dtype), np.dtype(dtype)
    if not scale or src == dst:
        return a.astype(dst)
    if src.kind == "f" and dst.kind == "f":
        return a.astype(dst)
    if src.kind == "f":
        return np.trunc(a.astype(np.float64) * (np.iinfo(dst).max + 1.0 - 1e-3)).astype(dst)
    if dst.kind == "f":
        return (a.astype(np.float64) / np.iinfo(src).max).astype(dst)
    bits = {np.uint8: 8, np.int8: 7, np.int16: 15, np.int32: 31, np.int64: 63}
    b_in, b_out = bits[src.type], bits[dst.type]
    if b_in > b_out:
        return (a.astype(np.int64) // 2 ** (b_in - b_out)).astype(dst)
    return (a.astype(np.int64) * 2 ** (b_out - b_in)).astype(dst)


def test_to_dtype_scales_as_torchvision():
    u8 = np.arange(256, dtype=np.uint8).reshape(1, 16, 16)
    t = v2.ToDtype(fastconv.float32, scale=True)(fastconv.tensor(u8))
    assert t.dtype == np.float32
    np.testing.assert_allclose(_np(t), _to_dtype_reference(u8, np.float32, True),
                               rtol=1e-7, atol=0)
    assert _np(t).min() == 0.0 and _np(t).max() == 1.0
    # exactly torch's float32 rounding of image.to(float).mul_(1 / 255)
    np.testing.assert_array_equal(_np(t), u8.astype(np.float32) * np.float32(1 / 255))
    if torch is not None:
        ref = torch.from_numpy(u8).to(torch.float32).mul_(1.0 / 255).numpy()
        np.testing.assert_array_equal(_np(t), ref)
    unscaled = v2.ToDtype(fastconv.float32)(fastconv.tensor(u8))
    np.testing.assert_array_equal(_np(unscaled), u8.astype(np.float32))
    f = np.random.default_rng(1).random((2, 5, 6)).astype(np.float32)
    back = v2.ToDtype(fastconv.uint8, scale=True)(fastconv.tensor(f))
    np.testing.assert_array_equal(_np(back), _to_dtype_reference(f, np.uint8, True))
    if torch is not None:
        ref = torch.from_numpy(f).mul(255 + 1.0 - 1e-3).to(torch.uint8).numpy()
        np.testing.assert_array_equal(_np(back), ref)
    i16 = np.array([[[0, 1000, 32767]]], np.int16)
    np.testing.assert_array_equal(_np(v2.ToDtype(fastconv.uint8, True)(fastconv.tensor(i16))),
                                  _to_dtype_reference(i16, np.uint8, True))
    np.testing.assert_array_equal(_np(v2.ToDtype(fastconv.int16, True)(fastconv.tensor(u8))),
                                  _to_dtype_reference(u8, np.int16, True))
    with pytest.raises(RuntimeError, match="cannot be performed safely"):
        v2.ToDtype(fastconv.int64, scale=True)(fastconv.tensor(f))
    # ConvertImageDtype is ToDtype(scale=True) in v2
    np.testing.assert_array_equal(_np(v2.ConvertImageDtype()(fastconv.tensor(u8))), _np(t))


def test_to_dtype_leaves_and_dict():
    img = fastconv.tensor(np.full((1, 2, 2), 255, np.uint8))
    label = fastconv.tensor([1, 2])
    out, lab = v2.ToDtype(fastconv.float32, scale=True)(img, label)
    assert out.dtype == np.float32 and float(_np(out).max()) == 1.0 and lab is label
    pil = Image.new("L", (2, 2))
    assert v2.ToDtype(fastconv.float32)(pil) is pil  # only Tensors are converted
    conv = v2.ToDtype({fastconv.Tensor: fastconv.float32, "others": None}, scale=True)
    out = conv({"image": img, "n": 3})
    assert out["n"] == 3 and out["image"].dtype == np.float32
    with pytest.raises(ValueError, match="No dtype was specified for type"):
        v2.ToDtype({int: fastconv.float32})(img)
    with pytest.warns(UserWarning, match="no scaling will be done"):
        v2.ToDtype({fastconv.Tensor: None}, scale=True)(img)


def test_to_tensor_is_deprecated(img):
    _, pil = img
    with pytest.warns(UserWarning, match="deprecated"):
        t = v2.ToTensor()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        out = t(pil)
    np.testing.assert_array_equal(_np(out), _np(T.ToTensor()(pil)))


# ------------------------------------------------------------------------------------------------
# CutMix
# ------------------------------------------------------------------------------------------------

def _cutmix_box_reference(rng, alpha, h, w):
    """torchvision's CutMix box, written out: lam ~ Beta(alpha, alpha), a centre uniform over
    the pixels (x first), half-sides int(r W), int(r H) with r = sqrt(1 - lam) / 2, clipped."""
    lam = float(np.float32(rng.beta(alpha, alpha)))  # torchvision's Beta samples in float32
    cx, cy = rng.integers(w), rng.integers(h)
    r = 0.5 * math.sqrt(1.0 - lam)
    hw, hh = int(r * w), int(r * h)
    x1, y1, x2, y2 = max(cx - hw, 0), max(cy - hh, 0), min(cx + hw, w), min(cy + hh, h)
    return (x1, y1, x2, y2), 1.0 - (x2 - x1) * (y2 - y1) / (w * h)


@pytest.mark.parametrize("alpha", [1.0, 0.3, 5.0])
def test_cutmix(seed, alpha):
    rng = np.random.default_rng(seed)
    x_np, y_np = _batch(rng)
    n, _, h, w = x_np.shape
    x, y = fastconv.tensor(x_np), fastconv.tensor(y_np)
    cutmix = v2.CutMix(alpha=alpha, num_classes=7)
    for trial in range(8):
        fastconv.manual_seed(seed + trial)
        box, lam = _cutmix_box_reference(fastconv.random.generator(), alpha, h, w)
        fastconv.manual_seed(seed + trial)
        assert cutmix.make_params([x]) == {"box": box, "lam_adjusted": pytest.approx(lam)}
        fastconv.manual_seed(seed + trial)
        xm, ym = cutmix(x, y)
        assert isinstance(xm, fastconv.Tensor) and xm.shape == x.shape
        assert ym.dtype == np.float32 and ym.shape == (n, 7)
        xm, ym = _np(xm), _np(ym)
        # the images: the box holds the previous image's pixels, the rest is untouched
        x1, y1, x2, y2 = box
        expected = x_np.copy()
        expected[..., y1:y2, x1:x2] = np.roll(x_np, 1, axis=0)[..., y1:y2, x1:x2]
        np.testing.assert_array_equal(xm, expected)
        # the labels: rows sum to 1; the weight of an image's own label is the share of its
        # pixels it kept, measured on the output (every image's pixels differ from the others')
        np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)
        kept = (xm == x_np).mean(axis=(1, 2, 3))
        pasted = (xm == np.roll(x_np, 1, axis=0)).mean(axis=(1, 2, 3))
        np.testing.assert_allclose(kept + pasted, 1.0)
        np.testing.assert_allclose(ym[np.arange(n), y_np], kept, rtol=1e-6)
        np.testing.assert_allclose(ym[np.arange(n), np.roll(y_np, 1)], pasted, rtol=1e-6)
        np.testing.assert_allclose(kept, lam, rtol=1e-6)
        assert np.count_nonzero(ym) == n * (2 if 0 < lam < 1 else 1)
    np.testing.assert_array_equal(_np(x), x_np)  # the input is not modified


def test_cutmix_box_stays_inside_and_is_reproducible():
    x = fastconv.tensor(np.zeros((2, 1, 5, 9), np.float32))
    y = fastconv.tensor(np.array([0, 1]))
    cutmix = v2.CutMix(alpha=0.5, num_classes=2)
    fastconv.manual_seed(3)
    boxes = [cutmix.make_params([x])["box"] for _ in range(500)]
    for x1, y1, x2, y2 in boxes:
        assert 0 <= x1 <= x2 <= 9 and 0 <= y1 <= y2 <= 5
    assert any(b[0] == 0 for b in boxes) and any(b[2] == 9 for b in boxes)  # clipped at times
    fastconv.manual_seed(3)
    assert boxes == [cutmix.make_params([x])["box"] for _ in range(500)]
    fastconv.manual_seed(1)
    first = cutmix(x, y)
    fastconv.manual_seed(1)
    again = cutmix(x, y)
    np.testing.assert_array_equal(_np(first[1]), _np(again[1]))


def test_cutmix_numpy_uint8_and_structures():
    rng = np.random.default_rng(5)
    x = rng.integers(0, 256, (4, 3, 6, 6), dtype=np.uint8)
    y = np.array([0, 1, 2, 3])
    cutmix = v2.CutMix(num_classes=4)
    fastconv.manual_seed(0)
    xm, ym = cutmix(x, y)
    assert isinstance(xm, np.ndarray) and xm.dtype == np.uint8 and isinstance(ym, np.ndarray)
    np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)
    fastconv.manual_seed(0)
    out = cutmix((x, y))
    assert isinstance(out, tuple)
    np.testing.assert_array_equal(out[0], xm)
    np.testing.assert_array_equal(out[1], ym)
    fastconv.manual_seed(0)
    out = cutmix({"image": x, "Labels": y, "id": "batch-0"})
    assert out["id"] == "batch-0"
    np.testing.assert_array_equal(out["image"], xm)
    np.testing.assert_array_equal(out["Labels"], ym)
    fastconv.manual_seed(0)
    out = v2.CutMix(num_classes=4, labels_getter=lambda s: s[0]["y"])(({"y": y}, x))
    np.testing.assert_array_equal(out[1], xm)
    # probability labels (N, K) are mixed as they are, num_classes may be None
    probs = np.eye(4, dtype=np.float32)[y]
    fastconv.manual_seed(0)
    _, pm = v2.CutMix()(x, probs)
    np.testing.assert_allclose(pm, ym, rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# MixUp
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("alpha", [1.0, 0.2])
def test_mixup(seed, alpha):
    rng = np.random.default_rng(seed)
    x_np, y_np = _batch(rng, n=5)
    x, y = fastconv.tensor(x_np), fastconv.tensor(y_np)
    mixup = v2.MixUp(alpha=alpha, num_classes=7)
    for trial in range(5):
        fastconv.manual_seed(seed + trial)
        lam = float(np.float32(fastconv.random.generator().beta(alpha, alpha)))
        fastconv.manual_seed(seed + trial)
        assert mixup.make_params([x])["lam"] == lam
        fastconv.manual_seed(seed + trial)
        xm, ym = mixup(x, y)
        xm, ym = _np(xm), _np(ym)
        assert ym.shape == (5, 7) and ym.dtype == np.float32
        # images: lam * x[i] + (1 - lam) * x[i - 1], in float64 to float32 accuracy ...
        ref = lam * x_np.astype(np.float64) + (1 - lam) * np.roll(x_np, 1, axis=0)
        np.testing.assert_allclose(xm, ref, rtol=1e-6, atol=1e-6)
        # ... and exactly torchvision's float32 sequence, roll(x).mul_(1 - lam).add_(x.mul(lam))
        exact = (np.roll(x_np, 1, axis=0) * np.float32(1 - lam) + x_np * np.float32(lam))
        np.testing.assert_array_equal(xm, exact)
        onehot = np.eye(7)[y_np]
        np.testing.assert_allclose(ym, lam * onehot + (1 - lam) * np.roll(onehot, 1, axis=0),
                                   rtol=1e-6, atol=1e-7)
        np.testing.assert_allclose(ym.sum(1), 1.0, rtol=1e-6)
        if torch is not None:
            xt, yt = torch.from_numpy(x_np), torch.from_numpy(y_np)
            np.testing.assert_array_equal(xm, xt.roll(1, 0).mul_(1.0 - lam).add_(
                xt.mul(lam)).numpy())
            oh = torch.nn.functional.one_hot(yt, num_classes=7).float()
            np.testing.assert_array_equal(ym, oh.roll(1, 0).mul_(1.0 - lam).add_(
                oh.mul(lam)).numpy())


def test_mixup_and_cutmix_in_random_choice():
    rng = np.random.default_rng(0)
    x_np, y_np = _batch(rng, n=4)
    choose = v2.RandomChoice([v2.CutMix(num_classes=7), v2.MixUp(num_classes=7)])
    fastconv.manual_seed(0)
    for _ in range(10):
        xm, ym = choose(fastconv.tensor(x_np), fastconv.tensor(y_np))
        assert xm.shape == x_np.shape and ym.shape == (4, 7)
        np.testing.assert_allclose(_np(ym).sum(1), 1.0, rtol=1e-6)


# ------------------------------------------------------------------------------------------------
# CutMix / MixUp errors (torchvision's types and messages)
# ------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("cls", [v2.CutMix, v2.MixUp])
def test_mix_errors(cls):
    x = fastconv.tensor(np.zeros((4, 3, 5, 5), np.float32))
    y = fastconv.tensor(np.array([0, 1, 2, 3]))
    t = cls(num_classes=4)
    with pytest.raises(ValueError, match="num_classes must be passed if the labels are "
                                         "index-based"):
        cls()(x, y)
    with pytest.raises(ValueError, match="The labels must be a tensor, but got <class 'list'>"):
        cls(num_classes=4, labels_getter=lambda sample: [0, 1, 2, 3])(x, y)
    with pytest.raises(ValueError, match="whose second item is a dictionary or a tensor"):
        t(x, [0, 1, 2, 3])
    with pytest.raises(ValueError, match="labels should be index based with shape"):
        t(x, fastconv.tensor(np.zeros((4, 2, 2), np.int64)))
    with pytest.raises(ValueError, match="must match num_classes: 3 != 4"):
        t(x, fastconv.tensor(np.zeros((4, 3), np.float32)))
    with pytest.raises(ValueError, match="Expected a batched input with 4 dims, but got 3"):
        t(fastconv.tensor(np.zeros((3, 5, 5), np.float32)), y)
    with pytest.raises(ValueError, match="does not match the batch size of the labels: 2 != 4"):
        t(fastconv.tensor(np.zeros((2, 3, 5, 5), np.float32)), y)
    with pytest.raises(ValueError, match="does not support PIL images"):
        t(Image.new("RGB", (5, 5)), y)
    with pytest.raises(ValueError, match="alpha must be positive"):
        cls(alpha=0.0, num_classes=4)
    with pytest.raises(ValueError, match="labels_getter should either be"):
        cls(num_classes=4, labels_getter=3)
    with pytest.raises(ValueError, match="Could not infer where the labels are"):
        t({"image": x, "y": y})
    # the label checks of torch's one_hot, with torch's messages
    cases = [(np.array([0, 1, 2, 3], np.int32),
              "one_hot is only applicable to index tensor of type LongTensor."),
             (np.array([0, 1, 4, 3]), "Class values must be smaller than num_classes."),
             (np.array([0, -1, 2, 3]), "Class values must be non-negative.")]
    for labels, msg in cases:
        if torch is not None:  # the message is torch's own
            with pytest.raises(RuntimeError) as err:
                torch.nn.functional.one_hot(torch.from_numpy(labels), 4)
            assert msg in str(err.value)
        with pytest.raises(RuntimeError, match=re.escape(msg)):
            t(x, fastconv.tensor(labels))


def test_mixup_needs_float_images_cutmix_needs_an_image():
    y = fastconv.tensor(np.array([0, 1]))
    with pytest.raises(RuntimeError, match="result type Float can't be cast to the desired "
                                           "output type Byte"):
        v2.MixUp(num_classes=2)(fastconv.tensor(np.zeros((2, 1, 3, 3), np.uint8)), y)
    with pytest.raises(TypeError, match="No image"):
        v2.CutMix(num_classes=2)((3, y))
    # MixUp without an image mixes the labels alone, as torchvision's
    out = v2.MixUp(num_classes=2)(("no image", y))
    assert out[0] == "no image" and out[1].shape == (2, 2)


# ------------------------------------------------------------------------------------------------
# make_grid
# ------------------------------------------------------------------------------------------------

def test_make_grid_by_hand():
    """Two 1x1 RGB images, padding 1: a 3 x 5 canvas, the images at (1, 1) and (1, 3)."""
    a = np.array([[[0.1]], [[0.2]], [[0.3]]], np.float32)
    b = np.array([[[0.7]], [[0.8]], [[0.9]]], np.float32)
    grid = make_grid(fastconv.tensor(np.stack([a, b])), padding=1, pad_value=0.5)
    assert isinstance(grid, fastconv.Tensor) and grid.shape == (3, 3, 5)
    expected = np.full((3, 3, 5), 0.5, np.float32)
    expected[:, 1, 1] = [0.1, 0.2, 0.3]
    expected[:, 1, 3] = [0.7, 0.8, 0.9]
    np.testing.assert_array_equal(_np(grid), expected)
    # a one-channel 2 x 3 batch of three, two per row, padding 2: the channel repeated
    g = np.arange(18, dtype=np.float32).reshape(3, 1, 2, 3)
    grid = make_grid(g, nrow=2, padding=2)
    assert isinstance(grid, np.ndarray) and grid.shape == (3, 10, 12)
    expected = np.zeros((10, 12), np.float32)
    expected[2:4, 2:5] = g[0, 0]
    expected[2:4, 7:10] = g[1, 0]
    expected[6:8, 2:5] = g[2, 0]
    for c in range(3):
        np.testing.assert_array_equal(grid[c], expected)


@pytest.mark.parametrize("n,nrow,padding", [(1, 8, 2), (2, 8, 2), (5, 2, 3), (8, 8, 0),
                                            (9, 4, 1), (7, 3, 4), (16, 5, 2)])
def test_make_grid_layout(n, nrow, padding, seed):
    rng = np.random.default_rng(seed)
    c, h, w = 3, 4, 6
    x = rng.random((n, c, h, w)).astype(np.float32)
    grid = _np(make_grid(fastconv.tensor(x), nrow=nrow, padding=padding, pad_value=-1.0))
    if n == 1:  # a single image comes back as it is, no padding
        np.testing.assert_array_equal(grid, x[0])
        return
    cols = min(nrow, n)
    rows = math.ceil(n / cols)
    assert grid.shape == (c, (h + padding) * rows + padding, (w + padding) * cols + padding)
    canvas = np.full(grid.shape, -1.0, np.float32)
    for k in range(n):
        top = padding + (k // cols) * (h + padding)
        left = padding + (k % cols) * (w + padding)
        canvas[:, top:top + h, left:left + w] = x[k]
    np.testing.assert_array_equal(grid, canvas)


def test_make_grid_inputs():
    rng = np.random.default_rng(0)
    x = rng.random((4, 3, 5, 5)).astype(np.float32)
    ref = make_grid(x, nrow=2)
    for inp in (fastconv.tensor(x), [fastconv.tensor(i) for i in x], list(x)):
        out = make_grid(inp, nrow=2)
        assert isinstance(out, np.ndarray if isinstance(inp, list) and
                          isinstance(inp[0], np.ndarray) else fastconv.Tensor)
        np.testing.assert_array_equal(_np(out), ref)
    single = make_grid(x[0])  # (C, H, W): returned as it is
    np.testing.assert_array_equal(single, x[0])
    grey = make_grid(x[0, 0])  # (H, W): one channel -> three
    assert grey.shape == (3, 5, 5) and all(np.array_equal(grey[c], x[0, 0]) for c in range(3))
    assert make_grid(x[0, :1]).shape == (3, 5, 5)
    u8 = (x * 255).astype(np.uint8)
    assert make_grid(u8, pad_value=255).dtype == np.uint8
    with pytest.raises(TypeError, match="tensor or list of tensors expected, got <class 'int'>"):
        make_grid(3)
    with pytest.raises(TypeError, match="got a list containing <class 'str'>"):
        make_grid([fastconv.tensor(x[0]), "x"])
    with pytest.raises(TypeError, match="value_range has to be a tuple"):
        make_grid(x, normalize=True, value_range=[0, 1])


def _norm_reference(x, low, high):
    """torchvision's norm_ip in float64: clamp to [low, high], then (x - low) / (high - low)."""
    x = np.clip(x.astype(np.float64), low, high)
    return (x - low) / max(high - low, 1e-5)


def test_make_grid_normalize(seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((3, 3, 4, 4)) * 6 - 2).astype(np.float32)
    x[1] *= 0.1  # a smaller range for one image, so scale_each matters
    before = x.copy()
    kw = {"nrow": 3, "padding": 1}
    layout = _np(make_grid(x, **kw))
    inner = layout != 0  # where the images are (no pixel of x is exactly 0)

    def check(got, expected_images):
        expected = _np(make_grid(expected_images.astype(np.float32), **kw))
        np.testing.assert_allclose(got[inner], expected[inner], rtol=1e-6, atol=1e-6)
        np.testing.assert_array_equal(got[~inner], 0)

    check(_np(make_grid(x, normalize=True, **kw)), _norm_reference(x, x.min(), x.max()))
    check(_np(make_grid(x, normalize=True, value_range=(-1, 1), **kw)),
          _norm_reference(x, -1.0, 1.0))
    each = np.stack([_norm_reference(i, i.min(), i.max()) for i in x])
    check(_np(make_grid(fastconv.tensor(x), normalize=True, scale_each=True, **kw)), each)
    np.testing.assert_array_equal(x, before)  # not normalised in place
    flat = np.full((2, 3, 2, 2), 0.25, np.float32)  # high == low: divided by 1e-5, all zero
    assert not _np(make_grid(flat, normalize=True)).any()
    if torch is not None:  # torchvision's float32 sequence: clamp_, sub_(low), div_(range)
        t = torch.from_numpy(x.copy())
        low, high = float(t.min()), float(t.max())
        ref = t.clamp_(min=low, max=high).sub_(low).div_(max(high - low, 1e-5)).numpy()
        np.testing.assert_array_equal(_np(make_grid(x, normalize=True, nrow=3, padding=0)),
                                      _np(make_grid(ref, nrow=3, padding=0)))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Byte"):
        make_grid(np.zeros((2, 3, 2, 2), np.uint8), normalize=True)


# ------------------------------------------------------------------------------------------------
# save_image
# ------------------------------------------------------------------------------------------------

def _pixels(grid):
    """torchvision's conversion, in float32 as it runs: uint8(clamp(x * 255 + 0.5, 0, 255)),
    channels last."""
    x = np.asarray(grid, np.float32) * np.float32(255) + np.float32(0.5)
    return np.clip(x, 0, 255).astype(np.uint8).transpose(1, 2, 0)


def test_save_image_round_trips_through_pil(tmp_path, seed):
    rng = np.random.default_rng(seed)
    x = (rng.random((5, 3, 6, 7)) * 1.2 - 0.1).astype(np.float32)  # some values out of [0, 1]
    path = tmp_path / "grid.png"
    save_image(fastconv.tensor(x), path, nrow=3, padding=1, pad_value=1.0)
    with Image.open(path) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        got = np.asarray(im)
    grid = _np(make_grid(x, nrow=3, padding=1, pad_value=1.0))
    assert got.shape == (grid.shape[1], grid.shape[2], 3)
    np.testing.assert_array_equal(got, _pixels(grid))
    if torch is not None:
        t = torch.from_numpy(grid.copy())
        ref = t.mul(255).add_(0.5).clamp_(0, 255).permute(1, 2, 0).to("cpu", torch.uint8)
        np.testing.assert_array_equal(got, ref.numpy())
    # every 8-bit level comes back as itself; a file object needs the format
    levels = (np.arange(256, dtype=np.float32) / 255).reshape(1, 16, 16)
    buf = io.BytesIO()
    save_image([fastconv.tensor(levels)], buf, format="PNG")
    buf.seek(0)
    with Image.open(buf) as im:
        got = np.asarray(im)
    assert got.shape == (16, 16, 3)  # one channel written as RGB
    for c in range(3):
        np.testing.assert_array_equal(got[..., c], np.arange(256).reshape(16, 16))
    with pytest.raises(RuntimeError, match="can't be cast to the desired output type Byte"):
        save_image(np.zeros((3, 4, 4), np.uint8), tmp_path / "u8.png")


# ------------------------------------------------------------------------------------------------
# torchvision itself, where it is installed: the same inputs through both
# ------------------------------------------------------------------------------------------------

@pytest.fixture
def tv():
    pytest.importorskip("torchvision")
    from torchvision.transforms import v2 as tv_v2

    return tv_v2


class _FakeGenerator:
    """Stands in for fastconv's generator: hands out given Beta and integer draws."""

    def __init__(self, lam, ints):
        self.lam, self.ints = lam, list(ints)

    def beta(self, a, b):
        return self.lam

    def integers(self, high):
        return self.ints.pop(0)


def _draws(monkeypatch, tv_transform, lam, ints):
    """Make fastconv's and torchvision's CutMix / MixUp draw ``lam`` and then ``ints``."""
    monkeypatch.setattr(v2, "_sample_rng", lambda: _FakeGenerator(lam, ints))

    class Dist:
        def sample(self, shape=()):
            return torch.tensor([lam])

    monkeypatch.setattr(tv_transform, "_dist", Dist())
    queue = list(ints)
    monkeypatch.setattr(torch, "randint", lambda high, size: torch.tensor([queue.pop(0)]))


@pytest.mark.parametrize("hw", [(10, 14), (7, 5), (1, 9)])
def test_cutmix_mixup_as_torchvision(tv, monkeypatch, hw, seed):
    rng = np.random.default_rng(seed)
    h, w = hw
    x, y = _batch(rng, n=5, h=h, w=w)
    for lam in [0.0, 1e-3, 0.25, 0.5, 0.9, 1.0, float(rng.random())]:
        ints = [int(rng.integers(w)), int(rng.integers(h))]
        ours, theirs = v2.CutMix(num_classes=7), tv.CutMix(num_classes=7)
        _draws(monkeypatch, theirs, lam, ints)
        xm, ym = ours(fastconv.tensor(x), fastconv.tensor(y))
        xt, yt = theirs(torch.from_numpy(x), torch.from_numpy(y))
        np.testing.assert_array_equal(_np(xm), xt.numpy())
        np.testing.assert_array_equal(_np(ym), yt.numpy())
        ours, theirs = v2.MixUp(num_classes=7), tv.MixUp(num_classes=7)
        _draws(monkeypatch, theirs, lam, [])
        xm, ym = ours(fastconv.tensor(x), fastconv.tensor(y))
        xt, yt = theirs(torch.from_numpy(x), torch.from_numpy(y))
        np.testing.assert_array_equal(_np(xm), xt.numpy())
        np.testing.assert_array_equal(_np(ym), yt.numpy())


def test_mix_errors_as_torchvision(tv):
    x = np.zeros((4, 3, 5, 5), np.float32)
    y = np.array([0, 1, 2, 3])
    cases = [  # (arguments, inputs); the messages must agree except for how shapes print
        ({}, (x, y)),
        ({"num_classes": 4}, (x, y.astype(np.int32))),
        ({"num_classes": 4}, (x, np.array([0, 1, 4, 3]))),
        ({"num_classes": 4}, (x, np.array([0, -1, 2, 3]))),
        ({"num_classes": 4}, (x, np.zeros((4, 2, 2), np.int64))),
        ({"num_classes": 4}, (x, np.zeros((4, 3), np.float32))),
        ({"num_classes": 4}, (x[0], y)),
        ({"num_classes": 4}, (x[:2], y)),
        ({"num_classes": 4}, ({"image": x, "y": y},)),
        ({"num_classes": 4, "labels_getter": lambda s: [0]}, (x, y)),
    ]
    for cls in ("CutMix", "MixUp"):
        for kwargs, inputs in cases:
            with pytest.raises(Exception) as ours:
                getattr(v2, cls)(**kwargs)(*_tree(inputs, fastconv.tensor))
            with pytest.raises(Exception) as theirs:
                getattr(tv, cls)(**kwargs)(*_tree(inputs, torch.from_numpy))
            assert type(ours.value) is type(theirs.value), (cls, kwargs)
            shape = re.compile(r"torch\.Size\(\[([\d, ]*)\]\)")
            expected = shape.sub(lambda m: f"({m.group(1)})", str(theirs.value))
            assert str(ours.value) == expected, (cls, kwargs)
        with pytest.raises(ValueError) as ours:
            getattr(v2, cls)(num_classes=4)(Image.new("RGB", (5, 5)), fastconv.tensor(y))
        with pytest.raises(ValueError) as theirs:
            getattr(tv, cls)(num_classes=4)(Image.new("RGB", (5, 5)), torch.from_numpy(y))
        assert str(ours.value) == str(theirs.value)


def _tree(tree, leaf):
    if isinstance(tree, tuple):
        return tuple(_tree(t, leaf) for t in tree)
    if isinstance(tree, dict):
        return {k: _tree(v, leaf) for k, v in tree.items()}
    return leaf(tree) if isinstance(tree, np.ndarray) else tree


def test_to_image_and_to_dtype_as_torchvision(tv, img):
    a, pil = img
    for x in (a, a[..., 0], pil, pil.convert("L")):
        np.testing.assert_array_equal(_np(v2.ToImage()(x)), tv.ToImage()(x).numpy())
    rng = np.random.default_rng(0)
    arrays = {np.uint8: np.arange(256, dtype=np.uint8).reshape(1, 16, 16),
              np.int16: rng.integers(0, 2 ** 15, (1, 8, 8)).astype(np.int16),
              np.int32: rng.integers(0, 2 ** 31 - 1, (1, 8, 8)).astype(np.int32),
              np.float32: rng.random((1, 8, 8)).astype(np.float32)}
    for src, arr in arrays.items():
        for dst in (np.uint8, np.int16, np.int32, np.int64, np.float32):
            for scale in (False, True):
                ours = theirs = None
                try:
                    ours = _np(v2.ToDtype(dst, scale=scale)(fastconv.tensor(arr)))
                except RuntimeError:
                    pass
                tdst = getattr(torch, np.dtype(dst).name)
                try:
                    theirs = tv.ToDtype(tdst, scale=scale)(torch.from_numpy(arr)).numpy()
                except RuntimeError:
                    pass
                assert (ours is None) == (theirs is None), (src, dst, scale)
                if ours is not None:
                    assert ours.dtype == theirs.dtype
                    np.testing.assert_array_equal(ours, theirs, err_msg=f"{src} {dst} {scale}")
    p = [1, 0, 3]
    assert v2.RandomChoice([v2.Identity()] * 3, p=p).p == tv.RandomChoice([tv.Identity()] * 3,
                                                                          p=p).p


@pytest.mark.parametrize("shape,kwargs", [
    ((5, 3, 4, 6), {}), ((5, 3, 4, 6), {"nrow": 2, "padding": 3, "pad_value": 0.5}),
    ((9, 1, 3, 3), {"nrow": 4, "normalize": True}), ((4, 3, 5, 5), {"normalize": True,
                                                                    "scale_each": True}),
    ((4, 3, 5, 5), {"normalize": True, "value_range": (-0.5, 0.5), "padding": 0}),
    ((1, 3, 4, 4), {"padding": 5}), ((3, 4, 4), {}), ((1, 4, 4), {}), ((4, 4), {"padding": 1}),
    ((16, 3, 2, 2), {"nrow": 5, "padding": 1, "pad_value": 1.0})])
def test_make_grid_and_save_image_as_torchvision(tv, shape, kwargs, seed, tmp_path):
    from torchvision.utils import make_grid as tv_make_grid
    from torchvision.utils import save_image as tv_save_image

    x = (np.random.default_rng(seed).random(shape) * 2 - 0.5).astype(np.float32)
    ours = make_grid(fastconv.tensor(x), **kwargs)
    theirs = tv_make_grid(torch.from_numpy(x.copy()), **kwargs)
    np.testing.assert_array_equal(_np(ours), theirs.numpy())
    if len(shape) == 4:
        ours = make_grid([fastconv.tensor(i) for i in x], **kwargs)
        theirs = tv_make_grid([torch.from_numpy(i.copy()) for i in x], **kwargs)
        np.testing.assert_array_equal(_np(ours), theirs.numpy())
    save_image(fastconv.tensor(x), tmp_path / "ours.png", **kwargs)
    tv_save_image(torch.from_numpy(x.copy()), tmp_path / "theirs.png", **kwargs)
    with Image.open(tmp_path / "ours.png") as a, Image.open(tmp_path / "theirs.png") as b:
        assert a.mode == b.mode and a.size == b.size
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
