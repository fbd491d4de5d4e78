"""fastconv.data.augment (re-exported by fastconv.data.transforms): torchvision's further
per-sample transforms, checked against independent references -- PIL called directly with
the same parameters (drawn again through each class's ``get_params`` after re-seeding),
NumPy formulas, torch's conv2d for the Gaussian blur -- plus probabilities, reproducibility
and output kinds. torchvision itself is not installed."""

import math

import numpy as np
import pytest
from PIL import Image, ImageEnhance, ImageOps

import fastconv
import fastconv.data.transforms as T
from fastconv.data import augment

torch = pytest.importorskip("torch")


@pytest.fixture
def img():
    """A random RGB uint8 image (never constant), as an array and as a PIL image."""
    a = np.random.default_rng(7).integers(1, 256, (18, 22, 3), dtype=np.uint8)
    return a, Image.fromarray(a)


def _same(x, y):
    np.testing.assert_array_equal(np.asarray(x), np.asarray(y))


# ------------------------------------------------------------------------------------------------
# re-exports, kinds and reproducibility
# ------------------------------------------------------------------------------------------------

NEW = ["RandomVerticalFlip", "Pad", "Grayscale", "RandomGrayscale", "RandomApply",
       "RandomChoice", "RandomOrder", "RandomRotation", "RandomAffine", "GaussianBlur",
       "RandomErasing", "PILToTensor", "ToPILImage", "ConvertImageDtype", "RandomInvert",
       "RandomPosterize", "RandomSolarize", "RandomAdjustSharpness", "RandomAutocontrast",
       "RandomEqualize", "AutoAugment", "AutoAugmentPolicy", "RandAugment",
       "TrivialAugmentWide", "FiveCrop", "TenCrop"]


def test_every_name_is_re_exported():
    for name in NEW:
        assert name in T.__all__ and name in augment.__all__
        assert getattr(T, name) is getattr(augment, name)
        assert name in T.__doc__


KINDS = [T.RandomVerticalFlip(), T.Pad(3), T.RandomRotation(25), T.RandomGrayscale(0.5),
         T.RandomAffine(15, translate=(0.1, 0.2), scale=(0.8, 1.1), shear=(-5, 5, -3, 3)),
         T.GaussianBlur(3), T.RandomInvert(), T.RandomPosterize(4), T.RandomAdjustSharpness(2),
         T.RandomAutocontrast(), T.RandomEqualize(), T.AutoAugment(), T.RandAugment(),
         T.TrivialAugmentWide(), T.RandomApply([T.RandomInvert(1.0)]),
         T.RandomChoice([T.RandomInvert(1.0), T.RandomVerticalFlip(1.0)], p=[1, 3]),
         T.RandomOrder([T.RandomInvert(1.0), T.RandomVerticalFlip(1.0)])]


@pytest.mark.parametrize("t", KINDS, ids=lambda t: type(t).__name__)
def test_output_kind_follows_input(t, img):
    a, pil = img
    fastconv.manual_seed(1)
    for _ in range(3):
        out = t(pil)
        assert isinstance(out, Image.Image) and out.mode == "RGB"
        arr = t(a)
        assert isinstance(arr, np.ndarray) and arr.dtype == np.uint8 and arr.ndim == 3
        ten = t(T.ToTensor()(a))
        assert isinstance(ten, fastconv.Tensor) and ten.dtype == np.float32
        assert ten.shape[0] == 3
        if not isinstance(t, T.Pad):
            assert out.size == (22, 18) and arr.shape == a.shape and ten.shape == (3, 18, 22)


@pytest.mark.parametrize("t", [t for t in KINDS if not isinstance(t, (T.Pad, T.RandomOrder))],
                         ids=lambda t: type(t).__name__)  # (those two are deterministic here)
def test_seeded_runs_repeat(t, img):
    _, pil = img

    def run(seed):
        fastconv.manual_seed(seed)
        return [np.asarray(t(pil)) for _ in range(6)]

    first = run(5)
    assert all(np.array_equal(x, y) for x, y in zip(first, run(5)))
    # six draws from another seed differ somewhere (every transform here is random)
    assert not all(np.array_equal(x, y) for x, y in zip(first, run(6)))


def test_reprs():
    assert repr(T.RandomVerticalFlip()) == "RandomVerticalFlip(p=0.5)"
    assert repr(T.Pad(2)) == "Pad(padding=2, fill=0, padding_mode=constant)"
    assert repr(T.Grayscale(3)) == "Grayscale(num_output_channels=3)"
    assert repr(T.RandomGrayscale()) == "RandomGrayscale(p=0.1)"
    assert repr(T.RandomRotation(10)) == ("RandomRotation(degrees=[-10.0, 10.0], "
                                          "interpolation=nearest, expand=False, fill=0)")
    assert repr(T.RandomAffine(5, scale=(0.9, 1.1))) == ("RandomAffine(degrees=[-5.0, 5.0], "
                                                         "scale=(0.9, 1.1))")
    assert repr(T.GaussianBlur(3)) == "GaussianBlur(kernel_size=(3, 3), sigma=(0.1, 2.0))"
    assert repr(T.RandomErasing()) == ("RandomErasing(p=0.5, scale=(0.02, 0.33), "
                                       "ratio=(0.3, 3.3), value=0, inplace=False)")
    assert repr(T.RandomPosterize(3)) == "RandomPosterize(bits=3,p=0.5)"
    assert repr(T.AutoAugment()) == "AutoAugment(policy=AutoAugmentPolicy.IMAGENET, fill=None)"
    assert repr(T.RandAugment()).startswith("RandAugment(num_ops=2, magnitude=9, "
                                            "num_magnitude_bins=31")
    assert repr(T.TenCrop(4)) == "TenCrop(size=(4, 4), vertical_flip=False)"
    assert repr(T.ToPILImage()) == "ToPILImage()"
    assert "p=0.3" in repr(T.RandomApply([T.RandomInvert()], p=0.3))


def test_bad_arguments():
    with pytest.raises(ValueError, match="must be positive"):
        T.RandomRotation(-3)
    with pytest.raises(ValueError, match="must be positive"):
        T.RandomAffine(-1)
    with pytest.raises(ValueError, match="translation values should be between 0 and 1"):
        T.RandomAffine(0, translate=(0.5, 1.5))
    with pytest.raises(ValueError, match="scale values should be positive"):
        T.RandomAffine(0, scale=(0, 1))
    with pytest.raises(ValueError, match="shear should be a sequence of length 2 or 4"):
        T.RandomAffine(0, shear=(1, 2, 3))
    with pytest.raises(ValueError, match="odd and positive"):
        T.GaussianBlur(4)
    with pytest.raises(ValueError, match="sigma values should be positive"):
        T.GaussianBlur(3, sigma=(2.0, 1.0))
    with pytest.raises(ValueError, match="either 1 or 3"):
        T.Grayscale(2)
    with pytest.raises(ValueError, match="between 0 and 8"):
        T.RandomPosterize(9)
    with pytest.raises(ValueError, match="not non-negative"):
        T.RandomAdjustSharpness(-1)
    with pytest.raises(ValueError, match="4 element tuple"):
        T.Pad((1, 2, 3))
    with pytest.raises(ValueError, match="Padding mode"):
        T.Pad(1, padding_mode="wrap")
    with pytest.raises(ValueError, match="only two dimensions"):
        T.FiveCrop((1, 2, 3))
    with pytest.raises(ValueError, match="bigger than input size"):
        T.FiveCrop(30)(np.ones((10, 10, 3), np.uint8))
    with pytest.raises(TypeError, match="transforms should be a sequence"):
        T.RandomApply(T.RandomInvert())
    with pytest.raises(TypeError, match="p should be a sequence"):
        T.RandomChoice([T.RandomInvert()], p=1)
    with pytest.raises(ValueError, match="should be 'random'"):
        T.RandomErasing(value="noise")
    with pytest.raises(ValueError, match="between 0 and 1"):
        T.RandomErasing(p=1.5)
    with pytest.raises(ValueError, match="not recognized"):
        T.AutoAugment(policy="imagenet")


NAN, INF = float("nan"), float("inf")


@pytest.mark.parametrize("make,exc,match", [
    (lambda: T.RandomRotation(NAN), ValueError, r"degrees should be a finite number"),
    (lambda: T.RandomRotation(INF), ValueError, r"degrees should be a finite number"),
    (lambda: T.RandomRotation((NAN, 1)), ValueError, r"degrees values should be finite"),
    (lambda: T.RandomRotation((5, 1)), ValueError, r"degrees should be of kind \(min, max\)"),
    (lambda: T.RandomRotation(("a", 1)), TypeError, r"degrees values should be numbers"),
    (lambda: T.RandomAffine(NAN), ValueError, r"degrees should be a finite number"),
    (lambda: T.RandomAffine(0, shear=NAN), ValueError, r"shear should be a finite number"),
    (lambda: T.RandomAffine(0, shear=(1, 2, 4, 3)), ValueError, r"shear should be of kind"),
    (lambda: T.RandomAffine(0, scale=(2, 1)), ValueError, r"scale should be of kind"),
    (lambda: T.RandomAffine(0, scale=(1, INF)), ValueError, r"scale values should be finite"),
    (lambda: T.GaussianBlur(3, sigma=NAN), ValueError, r"sigma .*positive"),
    (lambda: T.GaussianBlur(3, sigma=(1, INF)), ValueError, r"sigma values .*finite"),
    (lambda: T.RandomErasing(scale=(0.5, 0.1)), ValueError, r"scale should be of kind \(min"),
    (lambda: T.RandomErasing(ratio=(3.3, 0.3)), ValueError, r"ratio should be of kind \(min"),
    (lambda: T.RandomErasing(ratio=(0, 1)), ValueError, r"ratio values should be > 0"),
    (lambda: T.RandomErasing(scale=(NAN, 0.3)), ValueError, r"scale values should be finite"),
    (lambda: T.RandomErasing(scale=(0.1, 1.5)), ValueError, r"scale=\(0.1, 1.5\)"),
    (lambda: T.RandomErasing(p=NAN), ValueError, r"p=nan"),
], ids=lambda v: "" if callable(v) else str(v))
def test_bad_ranges_are_refused_at_construction(make, exc, match):
    """Ranges that torchvision's uniform_(min, max) would refuse when called (reversed,
    NaN, infinite, a non-positive ratio) are refused at construction, naming the argument."""
    with pytest.raises(exc, match=match):
        make()


def test_equal_range_ends_are_accepted(img):
    a, _ = img
    assert T.RandomRotation((10, 10))(a).shape == a.shape
    x = T.ToTensor()(a)
    assert T.RandomErasing(p=1.0, scale=(0.1, 0.1), ratio=(1, 1))(x).shape == x.shape


# ------------------------------------------------------------------------------------------------
# geometry against PIL
# ------------------------------------------------------------------------------------------------

def test_vertical_flip_and_pad(img):
    a, pil = img
    _same(T.RandomVerticalFlip(1.0)(a), a[::-1])
    _same(T.RandomVerticalFlip(1.0)(pil), pil.transpose(Image.FLIP_TOP_BOTTOM))
    np.testing.assert_array_equal(T.RandomVerticalFlip(1.0)(T.ToTensor()(a)).numpy(),
                                  a[::-1].transpose(2, 0, 1) / np.float32(255))
    _same(T.RandomVerticalFlip(0.0)(a), a)
    # constant padding with a per-channel fill, as ImageOps.expand
    _same(T.Pad((1, 2), fill=(9, 8, 7))(pil), ImageOps.expand(pil, (1, 2, 1, 2), (9, 8, 7)))
    _same(T.Pad((1, 2, 3, 4))(a), np.pad(a, ((2, 4), (1, 3), (0, 0))))
    for mode in ("edge", "reflect", "symmetric"):
        _same(T.Pad(3, padding_mode=mode)(pil), np.pad(a, ((3, 3), (3, 3), (0, 0)), mode=mode))
    t = T.Pad(2, fill=0.5)(T.ToTensor()(a)).numpy()
    assert t.shape == (3, 22, 26) and np.all(t[:, :2] == 0.5) and np.all(t[:, :, -2:] == 0.5)
    _same(T.Pad((-2, 1))(a), np.pad(a[:, 2:-2], ((1, 1), (0, 0), (0, 0))))  # negative crops


def test_random_rotation_matches_pil(img):
    a, pil = img
    for kw in ({}, {"expand": True}, {"center": (3, 5), "fill": (10, 20, 30)},
               {"interpolation": T.InterpolationMode.BILINEAR}):
        t = T.RandomRotation((-40, 40), **kw)
        fastconv.manual_seed(11)
        out = t(pil)
        fastconv.manual_seed(11)
        angle = T.RandomRotation.get_params(t.degrees)
        assert -40 <= angle <= 40
        resample = (Image.BILINEAR if "interpolation" in kw else Image.NEAREST)
        ref = pil.rotate(angle, resample, kw.get("expand", False), kw.get("center"),
                         fillcolor=kw.get("fill", (0, 0, 0)))
        _same(out, ref)
        fastconv.manual_seed(11)
        _same(t(a), ref)  # an array goes through the same PIL call
    # a float Tensor is rotated plane by plane in PIL's float mode: same geometry
    fastconv.manual_seed(3)
    rt = T.RandomRotation(30)(T.ToTensor()(a)).numpy()
    fastconv.manual_seed(3)
    ref = np.asarray(T.RandomRotation(30)(pil)).transpose(2, 0, 1) / np.float32(255)
    np.testing.assert_allclose(rt, ref, atol=1e-6)


def _affine_ref(w, h, angle, translate, scale, shear, center=None):
    """The inverse map (output -> input) built step by step with 3x3 matrices:
    forward = T(translate) C R(angle) Shear scale C^-1; F.affine's angle turns clockwise
    (the standard rotation matrix, with the image's y axis pointing down)."""
    cx, cy = center if center is not None else (w * 0.5, h * 0.5)
    rot = math.radians(angle)
    sx, sy = math.radians(shear[0]), math.radians(shear[1])
    tr = lambda x, y: np.array([[1, 0, x], [0, 1, y], [0, 0, 1.0]])  # noqa: E731
    R = np.array([[math.cos(rot), -math.sin(rot), 0], [math.sin(rot), math.cos(rot), 0],
                  [0, 0, 1]])
    # torchvision's shear: x-shear by tan(sx) then y-shear, with the y-shear compensated so
    # that R S keeps its determinant 1 (RSS of _get_inverse_affine_matrix)
    Sx = np.array([[1, -math.tan(sx), 0], [0, 1, 0], [0, 0, 1.0]])
    Sy = np.array([[1, 0, 0], [-math.tan(sy), 1, 0], [0, 0, 1.0]])
    S = np.diag([scale, scale, 1.0])
    fwd = tr(*translate) @ tr(cx, cy) @ R @ Sy @ Sx @ S @ tr(-cx, -cy)
    inv = np.linalg.inv(fwd)
    return tuple(inv[:2].ravel())


def test_random_affine_matches_pil(img):
    a, pil = img
    h, w = a.shape[:2]
    # pure cases against maps written by hand
    np.testing.assert_allclose(augment._inverse_affine_matrix((11, 9), 0, (3, -2), 1.0, (0, 0)),
                               [1, 0, -3, 0, 1, 2], atol=1e-12)
    np.testing.assert_allclose(augment._inverse_affine_matrix((0, 0), 0, (0, 0), 2.0, (0, 0)),
                               [0.5, 0, 0, 0, 0.5, 0], atol=1e-12)
    np.testing.assert_allclose(augment._inverse_affine_matrix((0, 0), 0, (0, 0), 1.0,
                                                              (math.degrees(math.atan(0.3)), 0)),
                               [1, 0.3, 0, 0, 1, 0], atol=1e-12)
    # rotation alone: clockwise, so PIL's own (counter-clockwise) rotate by -angle
    m = augment._inverse_affine_matrix((w / 2, h / 2), 30.0, (0, 0), 1.0, (0, 0))
    np.testing.assert_allclose(m, _affine_ref(w, h, 30.0, (0, 0), 1.0, (0, 0)), atol=1e-12)
    rot = augment.affine(pil, 30.0, (0, 0), 1.0, (0.0, 0.0))
    assert np.mean(np.asarray(rot) != np.asarray(pil.rotate(-30.0, Image.NEAREST))) < 0.01
    t = T.RandomAffine(30, translate=(0.2, 0.1), scale=(0.7, 1.3), shear=(-10, 10, -5, 5),
                       fill=(5, 6, 7))
    for _ in range(3):
        fastconv.manual_seed(21)
        out = t(pil)
        fastconv.manual_seed(21)
        angle, (tx, ty), s, (shx, shy) = T.RandomAffine.get_params(
            t.degrees, t.translate, t.scale, t.shear, (w, h))
        assert -30 <= angle <= 30 and abs(tx) <= 0.2 * w and abs(ty) <= 0.1 * h
        assert 0.7 <= s <= 1.3 and -10 <= shx <= 10 and -5 <= shy <= 5
        assert shy != 0.0 and isinstance(tx, int)
        ref = pil.transform(pil.size, Image.AFFINE,
                            _affine_ref(w, h, angle, (tx, ty), s, (shx, shy)), Image.NEAREST,
                            fillcolor=(5, 6, 7))
        # the map agrees to float rounding; nearest sampling may then pick a neighbour
        # on a handful of pixels lying exactly on a boundary
        assert np.mean(np.asarray(out) != np.asarray(ref)) < 0.01
        np.testing.assert_allclose(
            augment._inverse_affine_matrix((w / 2, h / 2), angle, (tx, ty), s, (shx, shy)),
            _affine_ref(w, h, angle, (tx, ty), s, (shx, shy)), atol=1e-9)


def test_five_and_ten_crop_positions(img):
    a, pil = img
    crops = T.FiveCrop((5, 7))(a)
    refs = [a[:5, :7], a[:5, -7:], a[-5:, :7], a[-5:, -7:], a[6:11, 8:15]]  # centre: round
    for c, r in zip(crops, refs):
        _same(c, r)
    for c, r in zip(T.FiveCrop((5, 7))(pil), refs):
        assert isinstance(c, Image.Image)
        _same(c, r)
    ten = T.TenCrop(6)(a)
    assert len(ten) == 10
    for c, r in zip(ten[5:], T.FiveCrop(6)(a[:, ::-1])):
        _same(c, r)
    for c, r in zip(T.TenCrop(6, vertical_flip=True)(a)[5:], T.FiveCrop(6)(a[::-1])):
        _same(c, r)
    tt = T.FiveCrop(4)(T.ToTensor()(a))
    assert all(isinstance(c, fastconv.Tensor) and c.shape == (3, 4, 4) for c in tt)
    np.testing.assert_array_equal(tt[3].numpy(), a[-4:, -4:].transpose(2, 0, 1) / np.float32(255))


# ------------------------------------------------------------------------------------------------
# colour against NumPy formulas and PIL
# ------------------------------------------------------------------------------------------------

def test_grayscale_formulas(img):
    a, pil = img
    luma = a.astype(np.float64) @ np.array([0.299, 0.587, 0.114])
    g = T.Grayscale()(a)
    assert g.shape == (18, 22, 1) and g.dtype == np.uint8
    assert np.abs(g[..., 0].astype(np.float64) - luma).max() <= 1.0  # PIL's fixed point
    _same(g[..., 0], pil.convert("L"))
    g3 = T.Grayscale(3)(pil)
    assert g3.mode == "RGB"
    _same(np.asarray(g3)[..., 1], pil.convert("L"))
    t = T.Grayscale(3)(T.ToTensor()(a)).numpy()
    ref = (a / 255.0) @ np.array([0.2989, 0.587, 0.114])
    np.testing.assert_allclose(t, np.broadcast_to(ref, (3, 18, 22)), rtol=1e-5, atol=1e-6)
    assert T.Grayscale()(T.ToTensor()(a)).shape == (1, 18, 22)
    assert T.Grayscale()(pil).mode == "L"
    # RandomGrayscale keeps the channel count
    assert T.RandomGrayscale(1.0)(pil).mode == "RGB"
    _same(T.RandomGrayscale(1.0)(a), np.dstack([np.asarray(pil.convert("L"))] * 3))


def test_invert_posterize_solarize_formulas(img):
    a, pil = img
    _same(T.RandomInvert(1.0)(a), 255 - a)
    _same(T.RandomInvert(1.0)(pil), 255 - a)
    np.testing.assert_allclose(T.RandomInvert(1.0)(T.ToTensor()(a)).numpy(),
                               1.0 - a.transpose(2, 0, 1) / 255.0, atol=1e-6)
    for bits in (1, 3, 8):
        mask = np.uint8((0xFF << (8 - bits)) & 0xFF)
        _same(T.RandomPosterize(bits, p=1.0)(a), a & mask)
        _same(T.RandomPosterize(bits, p=1.0)(pil), a & mask)
        np.testing.assert_allclose(T.RandomPosterize(bits, p=1.0)(T.ToTensor()(a)).numpy(),
                                   (a & mask).transpose(2, 0, 1) / 255.0, atol=1e-6)
    for thr in (0, 100, 200):
        ref = np.where(a >= thr, 255 - a, a)
        _same(T.RandomSolarize(thr, p=1.0)(a), ref)
        _same(T.RandomSolarize(thr, p=1.0)(pil), ref)
    x = T.ToTensor()(a)
    np.testing.assert_allclose(T.RandomSolarize(0.4, p=1.0)(x).numpy(),
                               np.where(x.numpy() >= 0.4, 1.0 - x.numpy(), x.numpy()), atol=1e-7)
    with pytest.raises(TypeError, match="Threshold should be less than bound"):
        T.RandomSolarize(128, p=1.0)(x)


def test_sharpness_autocontrast_equalize_as_pil(img):
    a, pil = img
    _same(T.RandomAdjustSharpness(1.7, p=1.0)(pil), ImageEnhance.Sharpness(pil).enhance(1.7))
    _same(T.RandomAutocontrast(p=1.0)(a), ImageOps.autocontrast(pil))
    _same(T.RandomEqualize(p=1.0)(pil), ImageOps.equalize(pil))
    # autocontrast stretches each channel to [0, 255] (numpy formula, PIL rounds)
    lo, hi = a.min((0, 1)), a.max((0, 1))
    ref = (a - lo) * (255.0 / (hi - lo))
    assert np.abs(np.asarray(T.RandomAutocontrast(p=1.0)(pil)) - ref).max() <= 1.0
    # a float Tensor goes through 8 bits and comes back / 255
    out = T.RandomEqualize(p=1.0)(T.ToTensor()(a)).numpy()
    np.testing.assert_allclose(out, np.asarray(ImageOps.equalize(pil)).transpose(2, 0, 1) / 255.0,
                               atol=1e-6)


@pytest.mark.parametrize("t", [T.RandomInvert(0.3), T.RandomGrayscale(0.3),
                               T.RandomApply([T.RandomInvert(1.0)], p=0.3),
                               T.RandomVerticalFlip(0.3), T.RandomEqualize(0.3)],
                         ids=lambda t: type(t).__name__)
def test_probabilities(t, img):
    a, _ = img
    fastconv.manual_seed(123)
    n = 1000
    changed = sum(not np.array_equal(t(a), a) for _ in range(n))
    # binomial(1000, 0.3): sd 14.5; +-60 is beyond 4 sd
    assert abs(changed - 0.3 * n) < 60


def test_random_choice_and_order(img):
    a, _ = img
    fastconv.manual_seed(9)
    c = T.RandomChoice([T.RandomInvert(1.0), T.RandomVerticalFlip(1.0)], p=[1, 3])
    outs = [c(a) for _ in range(800)]
    n_inv = sum(np.array_equal(o, 255 - a) for o in outs)
    n_flip = sum(np.array_equal(o, a[::-1]) for o in outs)
    assert n_inv + n_flip == 800 and abs(n_inv - 200) < 50  # weight 1 of 4; sd 12
    fastconv.manual_seed(9)
    o = T.RandomOrder([T.Pad((0, 0, 2, 0)), T.RandomVerticalFlip(1.0), T.FiveCrop(4)])
    o.transforms = o.transforms[:2]  # two order-sensitive steps: pad right, then flip or not
    seen = {np.asarray(o(a)).tobytes() for _ in range(40)}
    assert len(seen) == 1  # pad and flip commute; the transforms always both run
    order = T.RandomOrder([T.Lambda(lambda x: x + [1]), T.Lambda(lambda x: x + [2])])
    fastconv.manual_seed(0)
    results = {tuple(order([])) for _ in range(50)}
    assert results == {(1, 2), (2, 1)}


# ------------------------------------------------------------------------------------------------
# blur, erasing and the Tensor conversions
# ------------------------------------------------------------------------------------------------

def test_gaussian_blur_against_torch(img):
    a, pil = img
    t = T.GaussianBlur((5, 3), sigma=(0.5, 1.5))
    x = T.ToTensor()(a)
    fastconv.manual_seed(4)
    out = t(x).numpy()
    fastconv.manual_seed(4)
    s = T.GaussianBlur.get_params(0.5, 1.5)
    assert 0.5 <= s <= 1.5

    def k1(n):
        g = np.exp(-0.5 * (np.arange(n) - (n - 1) / 2) ** 2 / s ** 2)
        return g / g.sum()

    kernel = np.outer(k1(3), k1(5))  # (ky, kx): kernel_size is (width, height)
    xt = torch.nn.functional.pad(torch.from_numpy(x.numpy().astype(np.float64))[None],
                                 (2, 2, 1, 1), mode="reflect")
    w = torch.from_numpy(kernel)[None, None].repeat(3, 1, 1, 1)
    ref = torch.nn.functional.conv2d(xt, w, groups=3)[0].numpy()
    np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)
    fastconv.manual_seed(4)
    u8 = np.asarray(t(pil)).transpose(2, 0, 1).astype(np.float64)
    assert np.abs(u8 - ref * 255).max() <= 0.5 + 1e-3  # rounded to the nearest integer


def test_random_erasing(img):
    a, pil = img
    x = T.ToTensor()(a)
    t = T.RandomErasing(p=1.0, scale=(0.1, 0.3), ratio=(0.5, 2.0), value=(0.1, 0.2, 0.3))
    fastconv.manual_seed(8)
    out = t(x).numpy()
    fastconv.manual_seed(8)
    fastconv.data.transforms._sample_rng().random()  # the p draw
    i, j, h, w, v = T.RandomErasing.get_params(x, t.scale, t.ratio, [0.1, 0.2, 0.3])
    assert 0.1 * 396 - 2 * 22 <= h * w <= 0.3 * 396 + 2 * 22
    ref = x.numpy().copy()
    ref[:, i:i + h, j:j + w] = np.array([0.1, 0.2, 0.3], np.float32)[:, None, None]
    np.testing.assert_array_equal(out, ref)
    assert not np.array_equal(out, x.numpy())
    np.testing.assert_array_equal(x.numpy(), a.transpose(2, 0, 1) / np.float32(255))  # copy
    # "random": standard normal noise inside the rectangle, reproducible
    fastconv.manual_seed(2)
    r1 = T.RandomErasing(p=1.0, value="random")(x).numpy()
    fastconv.manual_seed(2)
    r2 = T.RandomErasing(p=1.0, value="random")(x).numpy()
    np.testing.assert_array_equal(r1, r2)
    diff = r1 != x.numpy()
    assert diff.any() and r1.min() < 0  # noise, not pixel values
    # inplace writes into the input
    y = T.ToTensor()(a)
    assert T.RandomErasing(p=1.0, inplace=True)(y) is y and (y.numpy() == 0).any()
    assert T.RandomErasing(p=0.0)(x) is x
    with pytest.raises(TypeError, match="takes a Tensor"):
        T.RandomErasing(p=1.0)(pil)
    with pytest.raises(TypeError, match="takes a Tensor"):
        T.RandomErasing(p=1.0)(a)
    with pytest.raises(ValueError, match="number of input channels"):
        T.RandomErasing(p=1.0, value=(1, 2))(x)


def test_pil_to_tensor_to_pil_image_convert_dtype(img):
    a, pil = img
    t = T.PILToTensor()(pil)
    assert t.dtype == np.uint8 and t.shape == (3, 18, 22)
    np.testing.assert_array_equal(t.numpy(), a.transpose(2, 0, 1))
    _same(T.ToPILImage()(t), a)
    back = T.ToPILImage()(T.ToTensor()(pil))
    assert back.mode == "RGB"
    _same(back, a)
    assert T.ToPILImage()(T.ToTensor()(a[..., :1])).mode == "L"
    assert T.ToPILImage()(a[..., :1].astype(np.float32)).mode == "F"
    assert T.ToPILImage()(np.dstack([a, a[..., :1]])).mode == "RGBA"
    assert T.ToPILImage(mode="HSV")(a).mode == "HSV"
    # float Tensors are scaled by 255 and truncated (mul(255).byte())
    f = fastconv.Tensor(np.full((1, 2, 2), 0.5, np.float32))
    assert np.asarray(T.ToPILImage()(f)).max() == 127
    with pytest.raises(ValueError, match="> 4 channels"):
        T.ToPILImage()(np.zeros((2, 2, 5), np.uint8))
    f32 = T.ConvertImageDtype(fastconv.float32)(t)
    np.testing.assert_allclose(f32.numpy(), a.transpose(2, 0, 1) / 255.0, rtol=1e-6)
    u8 = T.ConvertImageDtype(np.uint8)(f32)
    np.testing.assert_array_equal(u8.numpy(), a.transpose(2, 0, 1))  # x*(255+1-1e-3), truncated
    i32 = T.ConvertImageDtype(np.int32)(t).numpy()
    np.testing.assert_array_equal(i32, a.transpose(2, 0, 1).astype(np.int32) << 23)
    np.testing.assert_array_equal(T.ConvertImageDtype(np.uint8)(fastconv.Tensor(i32)).numpy(),
                                  a.transpose(2, 0, 1))
    with pytest.raises(RuntimeError, match="cannot be performed safely"):
        T.ConvertImageDtype(np.int32)(f32)


# ------------------------------------------------------------------------------------------------
# AutoAugment, RandAugment, TrivialAugmentWide
# ------------------------------------------------------------------------------------------------

def _direct(pil, op, m):
    """What one policy operation should do, with PIL's own calls."""
    w, h = pil.size
    aff = lambda c: pil.transform(pil.size, Image.AFFINE, c, Image.NEAREST)  # noqa: E731
    return {
        "ShearX": lambda: aff((1, m, 0, 0, 1, 0)),
        "ShearY": lambda: aff((1, 0, 0, m, 1, 0)),
        "TranslateX": lambda: aff((1, 0, -int(m), 0, 1, 0)),
        "TranslateY": lambda: aff((1, 0, 0, 0, 1, -int(m))),
        "Rotate": lambda: pil.rotate(m, Image.NEAREST),
        "Brightness": lambda: ImageEnhance.Brightness(pil).enhance(1 + m),
        "Color": lambda: ImageEnhance.Color(pil).enhance(1 + m),
        "Contrast": lambda: ImageEnhance.Contrast(pil).enhance(1 + m),
        "Sharpness": lambda: ImageEnhance.Sharpness(pil).enhance(1 + m),
        "Posterize": lambda: ImageOps.posterize(pil, int(m)),
        "Solarize": lambda: ImageOps.solarize(pil, m),
        "AutoContrast": lambda: ImageOps.autocontrast(pil),
        "Equalize": lambda: ImageOps.equalize(pil),
        "Invert": lambda: ImageOps.invert(pil),
        "Identity": lambda: pil,
    }[op]()


OPS = ["ShearX", "ShearY", "TranslateX", "TranslateY", "Rotate", "Brightness", "Color",
       "Contrast", "Sharpness", "Posterize", "Solarize", "AutoContrast", "Equalize", "Invert",
       "Identity"]


@pytest.mark.parametrize("op", OPS)
def test_each_op_equals_direct_pil(op, img):
    _, pil = img
    for m in ([0.0] if op in ("AutoContrast", "Equalize", "Invert", "Identity") else
              {"Posterize": [2, 5], "Solarize": [30.0, 200.0],
               "TranslateX": [5.0, -7.0], "TranslateY": [4.0, -3.0]}.get(op, [0.27, -0.4])):
        if op == "Rotate":
            m *= 50
        out = augment._apply_op(pil, op, m, T.InterpolationMode.NEAREST, None)
        _same(out, _direct(pil, op, m))


def test_policies_tables():
    counts = {}
    for policy in T.AutoAugmentPolicy:
        subs = T.AutoAugment(policy).policies
        assert len(subs) == 25 and all(len(s) == 2 for s in subs)
        for op, p, mag in (step for s in subs for step in s):
            assert op in OPS and 0.0 <= p <= 1.0 and (mag is None or 0 <= mag <= 9)
            counts[policy] = counts.get(policy, 0) + 1
    imagenet = T.AutoAugment().policies
    assert imagenet[0] == (("Posterize", 0.4, 8), ("Rotate", 0.6, 9))
    assert imagenet[-1] == (("Equalize", 0.8, None), ("Equalize", 0.6, None))
    assert T.AutoAugment(T.AutoAugmentPolicy.CIFAR10).policies[3] == (
        ("ShearY", 0.5, 8), ("TranslateY", 0.7, 9))
    assert T.AutoAugment(T.AutoAugmentPolicy.SVHN).policies[15] == (
        ("Invert", 0.8, None), ("TranslateY", 0.0, 2))
    space = T.RandAugment()._augmentation_space(31, (20, 10))
    assert list(space) == ["Identity"] + OPS[:13]  # torchvision's order: the draw indexes it
    np.testing.assert_allclose(space["Rotate"][0][9], 9 * 30 / 30)
    np.testing.assert_allclose(space["TranslateX"][0][30], 150 / 331 * 20)
    np.testing.assert_allclose(space["TranslateY"][0][30], 150 / 331 * 10)
    assert space["Posterize"][0].tolist() == [8 - round(k / 7.5) for k in range(31)]
    wide = T.TrivialAugmentWide()._augmentation_space(31)
    assert wide["Rotate"][0][-1] == 135 and wide["TranslateX"][0][-1] == 32
    assert wide["ShearX"][0][-1] == 0.99 and wide["Posterize"][0][-1] == 2
    auto = T.AutoAugment()._augmentation_space(10, (20, 10))
    assert auto["Solarize"][0][5] == pytest.approx(255 - 5 * 255 / 9) and "Invert" in auto


@pytest.mark.parametrize("policy", list(T.AutoAugmentPolicy))
def test_every_auto_augment_step_runs(policy, img, monkeypatch):
    _, pil = img
    t = T.AutoAugment(policy)
    for k in range(25):
        monkeypatch.setattr(T.AutoAugment, "get_params", staticmethod(
            lambda n, rng=None, k=k: (k, np.zeros(2), np.array([k % 2, 1 - k % 2]))))
        out = t(pil)
        assert isinstance(out, Image.Image) and out.size == pil.size and out.mode == "RGB"


def test_auto_augment_forced_sub_policy_equals_pil(img, monkeypatch):
    _, pil = img
    t = T.AutoAugment(T.AutoAugmentPolicy.SVHN)
    # sub-policy 0: ShearX (bin 4 of 10, here negative) then Invert; both applied
    monkeypatch.setattr(T.AutoAugment, "get_params", staticmethod(
        lambda n, rng=None: (0, np.array([0.0, 0.0]), np.array([0, 1]))))
    m = -np.linspace(0, 0.3, 10)[4]
    _same(t(pil), ImageOps.invert(_direct(pil, "ShearX", m)))
    # sub-policy 0 with the second probability failed (0.5 > 0.2): ShearX only
    monkeypatch.setattr(T.AutoAugment, "get_params", staticmethod(
        lambda n, rng=None: (0, np.array([0.9, 0.5]), np.array([1, 1]))))
    _same(t(pil), _direct(pil, "ShearX", np.linspace(0, 0.3, 10)[4]))


@pytest.mark.parametrize("cls", [T.RandAugment, T.TrivialAugmentWide])
def test_rand_and_trivial_augment_every_op_runs_and_forced_op_equals_pil(cls, img, monkeypatch):
    a, pil = img
    t = cls()
    bins = T.RandAugment()._augmentation_space(31, pil.size) if cls is T.RandAugment else \
        T.TrivialAugmentWide()._augmentation_space(31)
    for op, (mags, signed) in bins.items():
        monkeypatch.setattr(cls, "_augmentation_space",
                            lambda self, *args, op=op, mags=mags, signed=signed: {
                                op: (mags, signed)})
        for seed in range(2):
            fastconv.manual_seed(seed)
            out = t(pil)
            assert isinstance(out, Image.Image) and out.size == pil.size
            # one op: the result is the direct PIL call at some magnitude of the bins
            # (RandAugment: bin 9 of 31, twice in a row; TrivialAugment: any bin), either sign
            cands = [0.0] if mags.ndim == 0 else (mags[9:10] if cls is T.RandAugment else mags)
            signs = [1, -1] if signed else [1]
            refs = []
            for m in cands:
                for s1 in signs:
                    once = _direct(pil, op, s1 * float(m))
                    if cls is T.TrivialAugmentWide:
                        refs.append(once)
                    else:
                        refs += [_direct(once, op, s2 * float(m)) for s2 in signs]
            assert any(np.array_equal(np.asarray(out), np.asarray(r)) for r in refs), op
    monkeypatch.undo()
    fastconv.manual_seed(3)
    x = t(a)
    fastconv.manual_seed(3)
    np.testing.assert_array_equal(x, np.asarray(t(pil)))  # arrays take the PIL path


# ------------------------------------------------------------------------------------------------
# transforms.functional (torchvision.transforms.functional's names)
# ------------------------------------------------------------------------------------------------

def test_random_crop_get_params_then_functional_crop_of_image_and_mask():
    """Segmentation's habit: one RandomCrop.get_params window cropped out of an image and its
    mask with TF.crop, then both flipped with TF.hflip."""
    import fastconv.data.transforms.functional as TF

    rng = np.random.default_rng()
    h, w = int(rng.integers(8, 20)), int(rng.integers(8, 20))
    a = rng.integers(0, 256, (h, w, 3), dtype=np.uint8)
    mask = rng.integers(0, 5, (h, w), dtype=np.uint8)
    image = Image.fromarray(a)
    i, j, th, tw = T.RandomCrop.get_params(image, output_size=(6, 7))
    assert (th, tw) == (6, 7) and 0 <= i <= h - 6 and 0 <= j <= w - 7
    _same(TF.crop(image, i, j, th, tw), a[i:i + 6, j:j + 7])
    _same(TF.crop(Image.fromarray(mask), i, j, th, tw), mask[i:i + 6, j:j + 7])
    _same(TF.hflip(TF.crop(mask, i, j, th, tw)), mask[i:i + 6, j:j + 7][:, ::-1])
    assert T.RandomCrop.get_params(image, (h, w)) == (0, 0, h, w)
    with pytest.raises(ValueError, match="larger than input image size"):
        T.RandomCrop.get_params(image, (h + 1, w))
    assert T.functional is TF


def test_functional_matches_torch_and_the_transform_classes():
    import fastconv.data.transforms.functional as TF

    rng = np.random.default_rng()
    a = rng.integers(0, 256, (9, 12, 3), dtype=np.uint8)
    pil = Image.fromarray(a)
    x = TF.to_tensor(pil)
    tx = torch.tensor(a.transpose(2, 0, 1) / 255.0, dtype=torch.float32)
    np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-6)
    _same(TF.hflip(x).numpy(), torch.flip(tx, [-1]).numpy())
    _same(TF.vflip(x).numpy(), torch.flip(tx, [-2]).numpy())
    _same(TF.crop(x, 2, 3, 4, 5).numpy(), tx[:, 2:6, 3:8].numpy())
    _same(TF.crop(x, -1, 0, 3, 2).numpy()[:, 0], 0)  # outside the image: zeros
    mean, std = rng.uniform(0.2, 0.6, 3).tolist(), rng.uniform(0.2, 0.6, 3).tolist()
    want = (tx - torch.tensor(mean)[:, None, None]) / torch.tensor(std)[:, None, None]
    np.testing.assert_allclose(TF.normalize(x, mean, std).numpy(), want.numpy(), rtol=1e-5,
                               atol=1e-6)
    np.testing.assert_allclose(TF.pad(x, [1, 2]).numpy(),
                               torch.nn.functional.pad(tx, (1, 1, 2, 2)).numpy())
    np.testing.assert_allclose(TF.pad(x, 2, padding_mode="reflect").numpy(),
                               torch.nn.functional.pad(tx[None], (2,) * 4,
                                                       mode="reflect")[0].numpy())
    assert TF.get_image_size(pil) == [12, 9] and TF.get_dimensions(x) == [3, 9, 12]
    assert TF.get_image_num_channels(pil) == 3
    # the same code as the classes
    _same(TF.resize(pil, 5), T.Resize(5)(pil))
    _same(TF.resize(x, [4, 6]).numpy(), T.Resize((4, 6))(x).numpy())
    _same(TF.center_crop(pil, 4), T.CenterCrop(4)(pil))
    _same(TF.resized_crop(pil, 1, 2, 6, 7, [3, 3]), T.Resize((3, 3))(pil.crop((2, 1, 9, 7))))
    _same(TF.to_pil_image(x), pil)
    _same(TF.pil_to_tensor(pil).numpy(), a.transpose(2, 0, 1))
    _same(TF.rgb_to_grayscale(pil, 3), T.Grayscale(3)(pil))
    _same(TF.rotate(pil, 30), augment.rotate(pil, 30))
    assert len(TF.five_crop(pil, 4)) == 5 and len(TF.ten_crop(pil, 4)) == 10
    # colour: PIL's enhancers for PIL images, the tensor formulas for float Tensors
    f = float(rng.uniform(0.3, 1.7))
    _same(TF.adjust_brightness(pil, f), ImageEnhance.Brightness(pil).enhance(f))
    _same(TF.adjust_contrast(pil, f), ImageEnhance.Contrast(pil).enhance(f))
    _same(TF.adjust_saturation(pil, f), ImageEnhance.Color(pil).enhance(f))
    _same(TF.adjust_sharpness(pil, f), ImageEnhance.Sharpness(pil).enhance(f))
    np.testing.assert_allclose(TF.adjust_brightness(x, f).numpy(),
                               np.clip(tx.numpy() * f, 0, 1), rtol=1e-5, atol=1e-6)
    assert TF.adjust_hue(pil, 0.1).size == pil.size
    with pytest.raises(ValueError, match="hue_factor"):
        TF.adjust_hue(pil, 0.7)
    with pytest.raises(ValueError, match="brightness_factor"):
        TF.adjust_brightness(pil, -1)
    _same(TF.invert(pil), ImageOps.invert(pil))
    erased = TF.erase(x, 1, 2, 3, 4, 0.5)
    want = tx.clone()
    want[:, 1:4, 2:6] = 0.5
    np.testing.assert_allclose(erased.numpy(), want.numpy())
    np.testing.assert_allclose(x.numpy(), tx.numpy(), rtol=1e-6)  # not in place by default
    blurred = TF.gaussian_blur(x, 3)
    assert tuple(blurred.shape) == (3, 9, 12)
    with pytest.raises(ValueError, match="odd"):
        TF.gaussian_blur(x, 4)
