import colorsys
import functools
import itertools
import json
import logging

import numpy as np
import pytest
import torch
from scipy import ndimage

from multiarg import corruptions as C
from multiarg.data import DataError
from multiarg.io import sha256

RANDOM = ("gaussian_noise", "shot_noise", "impulse_noise", "glass_blur", "motion_blur", "snow", "frost", "fog",
          "elastic_transform")


@pytest.fixture(scope="session")
def images(cifar_images) -> np.ndarray:
    return cifar_images


@pytest.fixture(scope="module")
def corrupted(images):
    return functools.cache(lambda name, severity, seed=0: C.corrupt(images, name, severity, seed))


def _stat(fn, corrupted, name):
    return [fn(corrupted(name, s).astype(float)) for s in C.SEVERITIES]


def _tv(a):
    return np.abs(np.diff(a, axis=1)).mean() + np.abs(np.diff(a, axis=2)).mean()


def _decreasing(values):
    return all(a > b for a, b in itertools.pairwise(values))


def test_catalogue():
    assert len(C.CORRUPTIONS) == 15 == len(set(C.CORRUPTIONS)) == len(C.CATEGORIES)
    assert {c: len(n) for c, n in C.CORRUPTIONS_BY_CATEGORY.items()} == {"noise": 3, "blur": 4, "weather": 4,
                                                                          "digital": 4}
    assert C.CATEGORIES["frost"] == C.CATEGORIES["brightness"] == "weather"  # Hendrycks & Dietterich's grouping
    assert C.CATEGORIES["elastic_transform"] == "digital"
    assert all(len(C.SEVERITY_PARAMS[n]) == 5 for n in C.CORRUPTIONS)
    assert "frost" in C.SUBSTITUTES


@pytest.mark.parametrize("name", C.CORRUPTIONS)
def test_changes_images_keeps_uint8(images, corrupted, name):
    for s in (1, 5):
        out = corrupted(name, s)
        assert out.shape == images.shape and out.dtype == np.uint8
        assert (out != images).any(axis=(1, 2, 3)).mean() > 0.9  # nearly every image is altered


def test_noise_variance_grows(images, corrupted):
    for name in C.CORRUPTIONS_BY_CATEGORY["noise"]:
        assert _decreasing([-v for v in _stat(lambda a: (a - images).var(), corrupted, name)]), name


def test_blur_removes_high_frequencies(images, corrupted):
    assert _tv(images.astype(float)) > _stat(_tv, corrupted, "defocus_blur")[0]
    for name in ("defocus_blur", "zoom_blur"):
        assert _decreasing(_stat(_tv, corrupted, name)), name
    # Severities 3 and 4 of motion blur share sigma = 2 (radius 6 vs 8 adds taps of weight < 0.3%), so only
    # their random angles differ.
    tv = _stat(_tv, corrupted, "motion_blur")
    assert _decreasing([tv[0], tv[1], tv[2], tv[4]]) and abs(tv[2] - tv[3]) < 0.05 * tv[2]
    # glass blur's published constants are not monotone: (sigma, passes) = (.05,1) (.25,1) (.4,1) (.25,2) (.4,2)
    tv = _stat(_tv, corrupted, "glass_blur")
    assert _decreasing(tv[:3]) and tv[3] > tv[4]
    dist = _stat(lambda a: np.abs(a - images).mean(), corrupted, "glass_blur")
    assert dist[3] > dist[1] and dist[4] > dist[2]  # a second shuffling pass moves pixels further


def test_weather_and_digital_grow_with_severity(images, corrupted):
    def dist(a):
        return np.abs(a - images).mean()

    for name in ("fog", "snow", "pixelate", "jpeg_compression"):
        assert _decreasing([-d for d in _stat(dist, corrupted, name)]), name
    # frost: the image weight falls as the frost weight rises, so the distance need not grow but the
    # similarity to the clean image falls; frost/image weight 0.2, 0.3, 0.44, 0.47, 0.6 (3 and 4 nearly tie)
    corr = _stat(lambda a: np.mean([np.corrcoef(a[i].ravel(), images[i].ravel())[0, 1]
                                    for i in range(len(a))]), corrupted, "frost")
    assert _decreasing([corr[0], corr[1], corr[2], corr[4]]) and abs(corr[2] - corr[3]) < 0.01
    assert _decreasing([-m for m in _stat(np.mean, corrupted, "brightness")])
    assert _decreasing(_stat(lambda a: a.std(axis=(1, 2)).mean(), corrupted, "contrast"))
    # elastic transform moves pixels rather than changing values: each image's sorted values (its intensity
    # distribution) change far less than the pixels in place
    flat = np.sort(images.reshape(len(images), -1, 3), 1)
    for s in C.SEVERITIES:
        out = corrupted("elastic_transform", s).astype(float)
        moved = np.abs(np.sort(out.reshape(len(out), -1, 3), 1) - flat).mean()
        assert moved < 0.4 * np.abs(out - images).mean()


@pytest.mark.parametrize("name", C.CORRUPTIONS)
def test_seeded(images, corrupted, name):
    np.testing.assert_array_equal(corrupted(name, 3), C.corrupt(images, name, 3, 0))
    assert (corrupted(name, 3, 1) != corrupted(name, 3)).any() == (name in RANDOM)


def test_rejects_bad_input(images):
    with pytest.raises(ValueError, match="unknown corruption"):
        C.corrupt(images, "spatter", 1, 0)
    with pytest.raises(ValueError, match="severity"):
        C.corrupt(images, "fog", 6, 0)
    with pytest.raises(ValueError, match=r"\(N, 32, 32, 3\)"):
        C.corrupt(images.transpose(0, 3, 1, 2), "fog", 1, 0)


def test_clipped_zoom_matches_scipy_zoom():
    planes = np.random.default_rng(0).random((4, 32, 32))
    for factor in (*np.arange(1, 1.26, 0.01), 1.75, 2.25):
        crop = int(np.ceil(32 / factor))
        top = (32 - crop) // 2
        ref = ndimage.zoom(planes[:, top:top + crop, top:top + crop], (1, factor, factor), order=1)
        trim = (ref.shape[1] - 32) // 2
        np.testing.assert_allclose(C._clipped_zoom(planes, factor), ref[:, trim:trim + 32, trim:trim + 32],
                                   atol=1e-12)


def test_motion_blur_follows_imagemagick():
    dot = np.zeros((2, 32, 32))
    dot[:, 16, 20] = 255
    out = C._motion_blur(dot, 6, 2, np.array([0.0, 90.0]))
    weights = np.exp(-np.arange(13) ** 2 / 8)
    trail = np.rint(255 * weights / weights.sum())
    np.testing.assert_array_equal(out[0, 16, 20:7:-1], trail)  # angle 0: trail to the left of the dot
    np.testing.assert_array_equal(out[1, 16:3:-1, 20], trail)  # angle 90: trail above it
    assert out[0].sum() == trail.sum() == out[1].sum()


def test_brightness_is_the_hsv_round_trip():
    rng = np.random.default_rng(1)
    img = rng.integers(0, 256, (1, 32, 32, 3), dtype=np.uint8)
    img[0, 0] = 0  # black: undefined hue, becomes grey
    img[0, 1] = 77  # grey
    out = C.corrupt(img, "brightness", 4, 0)
    c = C.SEVERITY_PARAMS["brightness"][3]
    for (i, j) in [(0, 0), (1, 0), (5, 7), (31, 31), (12, 3)]:
        h, s, v = colorsys.rgb_to_hsv(*(img[0, i, j] / 255))
        ref = np.array(colorsys.hsv_to_rgb(h, s, min(v + c, 1))) * 255
        assert np.abs(out[0, i, j] - np.floor(ref)).max() <= 1


def test_frost_texture_is_fixed_and_bluish():
    tex = C.frost_texture(2)
    np.testing.assert_array_equal(tex, C.frost_texture.__wrapped__(2))
    assert tex.shape == (192, 192, 3) and 0 <= tex.min() and tex.max() <= 255
    assert tex[..., 2].mean() > tex[..., 0].mean()
    assert not np.array_equal(tex, C.frost_texture(3))


def test_generate_and_load(images, tmp_path):
    x = torch.from_numpy(images[:6]).permute(0, 3, 1, 2).contiguous()
    names, sev = ("gaussian_noise", "contrast"), (1, 3)
    manifest = C.generate_cifar10c(x, tmp_path, seed=7, corruptions=names, severities=sev)
    assert manifest["source"] == "generated" and "NOT the published" in manifest["note"]
    assert manifest["n"] == 6 and manifest["seed"] == 7 and manifest["severities"] == [1, 3]
    assert json.loads((tmp_path / C.MANIFEST).read_text()) == json.loads(json.dumps(manifest))
    for name in names:
        entry = manifest["files"][name]
        assert entry["sha256"] == sha256(tmp_path / entry["file"]) and entry["shape"] == [12, 32, 32, 3]
        got = C.load_cifar10c(tmp_path, name, 3)
        assert got.dtype == torch.uint8 and got.shape == (6, 3, 32, 32)
        np.testing.assert_array_equal(got.permute(0, 2, 3, 1).numpy(), C.corrupt(images[:6], name, 3, 7))
    with pytest.raises(ValueError, match="severity 2"):
        C.load_cifar10c(tmp_path, "contrast", 2)
    with pytest.raises(DataError, match="fog"):
        C.load_cifar10c(tmp_path, "fog", 1)

    path = tmp_path / "contrast.npy"
    blob = bytearray(path.read_bytes())
    blob[-5] ^= 0xFF
    path.write_bytes(bytes(blob))
    with pytest.raises(DataError, match=r"contrast\.npy.*does not match the manifest.*re-run"):
        C.load_cifar10c(tmp_path, "contrast", 1)


def test_obtain_falls_back_to_generation(images, tmp_path, monkeypatch, caplog):
    x = torch.from_numpy(images[:2]).permute(0, 3, 1, 2)
    monkeypatch.setattr(C, "generate_cifar10c", lambda test_x, out_dir, seed: {"source": "generated"})

    def offline(out_dir):
        raise DataError("no route to zenodo.org")

    monkeypatch.setattr(C, "download_cifar10c", offline)
    monkeypatch.setattr(C, "PUBLISHED_N", 2)
    with caplog.at_level(logging.WARNING):
        assert C.obtain_cifar10c(x, tmp_path, 0)["source"] == "generated"
    assert "no route to zenodo.org" in caplog.text and "generating" in caplog.text
    with pytest.raises(DataError, match="no route"):
        C.obtain_cifar10c(x, tmp_path, 0, online=True)
    monkeypatch.setattr(C, "PUBLISHED_N", 10000)  # a subset cannot be matched to the published images
    with pytest.raises(DataError, match="2 images"):
        C.obtain_cifar10c(x, tmp_path, 0, online=True)
    monkeypatch.setattr(C, "download_cifar10c", lambda out_dir: pytest.fail("must not download"))
    assert C.obtain_cifar10c(x, tmp_path, 0, online=False)["source"] == "generated"
