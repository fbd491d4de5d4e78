"""fastconv.data.transforms.v2 (torchvision.transforms.v2) and fastconv.data.utils
(torchvision.utils).

torchvision is not installed, so the references are independent: NumPy formulas written out
here from torchvision's documented definitions (CutMix's box, MixUp's mix, to_dtype's scaling,
make_grid's layout and normalisation, save_image's rounding), the same formulas run in torch
where torch is installed (to pin the float32 rounding), hand-built grids, PIL reading back what
save_image wrote, and torch's own one_hot for the label errors. Random draws are checked by
re-seeding fastconv's generator (``fastconv.manual_seed``) and drawing again."""

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
    lam = rng.beta(alpha, alpha)
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
        lam = fastconv.random.generator().beta(alpha, alpha)
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
