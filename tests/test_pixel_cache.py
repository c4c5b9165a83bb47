"""The pixel cache: a second encoder at the same input size decodes nothing and gets the features it
would have got by decoding; the pipeline reproduces ``to_input_tensor`` up to uint16 rounding."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from xrbench.data.images import read_image, write_raster
from xrbench.features import pixels as pixmod
from xrbench.features.extract import _Forward, encode_samples
from xrbench.features.pixels import PixelCache, decode, normalise
from xrbench.features.preprocess import pad_geometry, to_input_tensor
from xrbench.models.timm_adapter import create_timm_encoder
from xrbench.runner import RunConfig, Runner
from xrbench.tasks.catalog import TaskCatalog

#: |pixel - float pixel| on the [0, 1] scale, from rounding to 1/65535 (documented in pixels.py)
TOL01 = 0.5 / 65535 + 1e-7


def _image(tmp_path, name, h, w, bits=8, seed=0):
    rng = np.random.default_rng(seed)
    img = np.clip(rng.random((h, w)) * 0.3 + np.linspace(0, 0.7, w)[None], 0, 1)
    path = tmp_path / name
    write_raster(path, img, bits=bits)
    return path


@pytest.mark.parametrize("name,h,w,bits", [("a.png", 50, 37, 8), ("b.png", 41, 90, 16), ("c.jpg", 70, 70, 8)])
def test_pipeline_equals_to_input_tensor_up_to_uint16_rounding(tmp_path, tiny_encoder, name, h, w, bits):
    meta = tiny_encoder.meta
    path = _image(tmp_path, name, h, w, bits)
    want, geo_want = to_input_tensor(read_image(path), meta)
    px, geo, _ = decode(path, meta.input_size, "exact")
    assert px.dtype == np.uint16 and px.shape == (64, 64) and geo == geo_want
    got = normalise(torch.from_numpy(px)[None], meta)[0]
    step = TOL01 * (meta.value_range[1] - meta.value_range[0]) / min(meta.std)
    err = float((got - want).abs().max())
    assert 0 < err <= step  # quantised (not bit-identical) and within the bound
    # images smaller than 4x the input: the fast policy is the exact one
    np.testing.assert_array_equal(decode(path, meta.input_size, "fast")[0], px)


def test_fast_policy_decodes_large_jpeg_reduced_and_close(tmp_path):
    path = _image(tmp_path, "big.jpg", 900, 700)
    exact, geo, _ = decode(path, 64, "exact")
    fast, geo_fast, _ = decode(path, 64, "fast")
    assert geo_fast == geo == pad_geometry(900, 700, 64)  # geometry is always the original's
    diff = np.abs(exact.astype(np.float64) - fast.astype(np.float64)) / 65535
    assert 0 < diff.mean() < 0.01 and diff.max() < 0.1


def _real_dicom(name):
    from pathlib import Path

    import pydicom.data

    for d in [Path(pydicom.data.__file__).parent / "test_files"]:
        if (d / name).is_file():
            return d / name
    data_store = pytest.importorskip("data_store", reason="pip install pydicom-data")
    path = Path(data_store.__file__).parent / "data" / name
    if not path.is_file():
        pytest.skip(f"{name} is not installed")
    return path


@pytest.mark.parametrize("name", ["RG1_UNCR.dcm", "MR_small.dcm"])  # 15-bit CR (MONOCHROME1), 16-bit signed MR
def test_cached_pixels_of_real_high_bit_dicoms_keep_their_depth(tiny_encoder, name):
    """uint16 rows: a >8-bit source keeps far more than 256 levels and stays within 0.5/65535 of the
    float path (an 8-bit cache would be off by up to 0.5/255), so cached and uncached features agree."""
    meta = tiny_encoder.meta
    path = _real_dicom(name)
    img = read_image(path)
    want, geo_want = to_input_tensor(img, meta)
    px, geo, _ = decode(path, meta.input_size, "exact")
    assert geo == geo_want and px.dtype == np.uint16
    assert len(np.unique(px)) > 256
    step = TOL01 * (meta.value_range[1] - meta.value_range[0]) / min(meta.std)
    got = normalise(torch.from_numpy(px)[None], meta)[0]
    assert float((got - want).abs().max()) <= step


@pytest.mark.parametrize("suffix", [".jpg", ".png"])
def test_fast_policy_on_a_real_radiograph_is_within_its_stated_tolerance(tmp_path, suffix):
    """The tolerance stated in pixels.py: RG1 (1955 x 1841 CR chest) as an 8-bit JPEG (libjpeg draft
    at 1/2) and a 16-bit PNG (2x2 box) at 224 px: mean |fast - exact| < 1/255 and every pixel within
    the quarter-input-pixel shift bound of 0.25 (measured: mean 0.0033, max 0.11)."""
    path = tmp_path / f"rg1{suffix}"
    write_raster(path, read_image(_real_dicom("RG1_UNCR.dcm")), bits=16 if suffix == ".png" else 8)
    exact, geo, _ = decode(path, 224, "exact")
    fast, geo_fast, _ = decode(path, 224, "fast")
    assert geo == geo_fast == pad_geometry(1955, 1841, 224)
    diff = np.abs(exact.astype(np.float64) - fast.astype(np.float64)) / 65535
    assert 0 < diff.mean() < 1 / 255 and diff.max() < 0.25
    # at 448 px the image is under 4x the input side: fast is exact
    np.testing.assert_array_equal(decode(path, 448, "fast")[0], decode(path, 448, "exact")[0])


def test_second_encoder_decodes_nothing_and_gets_equal_features(tmp_path, monkeypatch, xr_home):
    import xrbench.features.extract as extract
    from xrbench.data.demo import dataset_root
    from xrbench.registry import DATASETS

    monkeypatch.setenv("XRBENCH_DEMO_SCALE", "0.1")
    decodes = []
    real = extract.decode
    monkeypatch.setattr(extract, "decode", lambda p, *a: decodes.append(p) or real(p, *a))
    specs = TaskCatalog().resolve("chexpert-linear")

    def run(seed, name, pixel_cache=True, work="a"):
        enc = create_timm_encoder(name, "vit_tiny_patch16_224", input_size=32, seed=seed)
        cfg = RunConfig(output=tmp_path / work / "out", feature_root=tmp_path / work / "features", n_boot=50,
                        pixel_cache=pixel_cache)
        runner = Runner(enc, cfg, progress=lambda m: None)
        [rec] = runner.run(specs)
        store = runner.extractor.store
        return rec, enc, {k: np.array(store.load(k)[0]) for k in store.keys()}

    first, _, feats_a = run(0, "enc-a")
    n = len(DATASETS.get("chexpert")(dataset_root("chexpert", None), seed=0).samples())
    assert len(decodes) == n > 0  # the first encoder decodes every image once, into the cache
    decodes.clear()
    second, enc_b, feats_b = run(1, "enc-b")
    assert decodes == [] and enc_b.images_encoded == n  # encoded, but not one image decoded
    assert len(feats_b) == len(feats_a) + 3  # its own 3 splits

    # the same encoder with no pixel cache, into an empty store: decodes everything, equal features
    third, _, feats_c = run(1, "enc-b", pixel_cache=False, work="c")
    assert len(decodes) == n and len(feats_c) == 3
    for k, v in feats_c.items():
        np.testing.assert_array_equal(v, feats_b[k])  # bitwise: both paths quantise the same way
    assert _same(third.metrics, second.metrics)

    # a cached rerun reproduces the cold run's numbers exactly
    again, enc_a, _ = run(0, "enc-a")
    assert enc_a.images_encoded == 0
    assert _same(again.metrics, first.metrics)


def test_pixel_cache_entry_is_verified_and_quarantined(tmp_path, tiny_encoder):
    from xrbench.data.sample import Sample

    samples = [Sample(id=f"s{i}", image=_image(tmp_path, f"{i}.png", 40, 30 + i, seed=i), patient=f"p{i}",
                      split="train") for i in range(5)]
    cache = PixelCache(tmp_path / "pixels")
    key = pixmod.pixel_key("m", 64, "fast")
    part = cache.partial(key)
    pw, pg, done = part.open(5, (64, 64), "uint16")
    for i, s in enumerate(samples):
        px, geo, _ = decode(s.image, 64)
        pw.write(i, px[None])
        pg.write(i, np.array([[geo.height, geo.width, geo.side, geo.top, geo.left, geo.size]], np.int32))
    part.publish([s.id for s in samples], {})
    px, geo, truncated = cache.lookup(key, [s.id for s in samples])
    assert px.shape == (5, 64, 64) and geo[3, 1] == 33 and truncated.tolist() == [False] * 5
    with pytest.warns(UserWarning, match="ids are not those"):
        assert cache.lookup(key, ["other"] * 5) is None  # ids that do not match: moved aside
    assert not cache.store.has(key) and (tmp_path / "pixels" / ".quarantine").is_dir()
    # the in-memory path encodes through the same pixels
    out = encode_samples(tiny_encoder, samples, kinds=["global"])
    assert out["global"].shape == (5, tiny_encoder.meta.embed_dim)


def test_forward_halves_the_batch_on_cuda_out_of_memory(tiny_encoder):
    calls = []
    real = tiny_encoder.encode

    def encode(x, kinds=None):
        calls.append(len(x))
        if len(x) > 3:
            tiny_encoder.images_encoded += len(x)
            raise torch.cuda.OutOfMemoryError("fake")
        return real(x, kinds=kinds)

    tiny_encoder.encode = encode
    fwd = _Forward(tiny_encoder, compile=False)
    x = torch.randn(8, 3, 64, 64)
    out = fwd(x, ["global"])
    assert calls == [8, 4, 2, 2, 2, 2] and fwd.micro == 2
    assert out["global"].shape == (8, tiny_encoder.meta.embed_dim) and tiny_encoder.images_encoded == 8
    torch.testing.assert_close(out["global"], real(x, kinds=["global"])["global"], rtol=1e-4, atol=1e-5)


def test_cache_command_lists_verifies_by_name_and_prunes(tmp_path, capsys):
    import os

    from xrbench.cli import main

    cache = PixelCache(tmp_path / "pixels")
    part = cache.partial("k1")
    pw, pg, _ = part.open(2, (8, 8), "uint16")
    pw.write(0, np.arange(128, dtype=np.uint16).reshape(2, 8, 8))
    part.publish(["a", "b"], {"dataset": "mura", "split": "train", "size": 8})
    assert main(["cache", "verify", "--home", str(tmp_path)]) == 0
    with open(tmp_path / "pixels" / "k1" / "features.npy", "r+b") as f:  # flip one stored byte
        f.seek(-1, 2)
        f.write(b"\x7f")
    assert main(["cache", "verify", "--home", str(tmp_path)]) == 1
    assert "BAD pixels/k1 (mura/train, 8 px): features.npy does not match its checksum" in capsys.readouterr().out
    assert main(["cache", "list", "--home", str(tmp_path)]) == 0
    assert "pixels            1" in capsys.readouterr().out
    assert main(["cache", "prune", "--older-than", "1", "--home", str(tmp_path)]) == 0
    assert cache.store.has("k1")  # written just now: kept
    for f in (tmp_path / "pixels" / "k1").iterdir():
        os.utime(f, (0, 0))
    assert main(["cache", "prune", "--older-than", "1", "--home", str(tmp_path)]) == 0
    assert not cache.store.has("k1") and "removed 1 entries" in capsys.readouterr().out


def _same(a: dict, b: dict) -> bool:
    """Metric dicts equal value for value, a missing (NaN) CI equal to a missing one."""
    as_list = lambda d: {k: [m.value, m.ci_low, m.ci_high] for k, m in d.items()}  # noqa: E731
    x, y = as_list(a), as_list(b)
    return x.keys() == y.keys() and all(np.array_equal(x[k], y[k], equal_nan=True) for k in x)



def test_decode_workers_hand_back_which_images_were_truncated(tmp_path):
    """The flag crosses the worker process boundary with the pixels (DataLoader collation)."""
    from xrbench.data.sample import Sample
    from xrbench.features.extract import pixel_loader

    samples = [Sample(id=f"s{i}", image=_image(tmp_path, f"{i}.png", 40, 30 + i, seed=i), patient=f"p{i}",
                      split="train") for i in range(3)]
    raw = samples[1].image.read_bytes()
    samples[1].image.write_bytes(raw[: len(raw) * 2 // 3])
    [(px, geo, errors, truncated)] = list(pixel_loader(samples, [0, 1, 2], 64, batch_size=3, num_workers=1))
    assert list(errors) == ["", "", ""] and truncated.tolist() == [False, True, False]
    assert px.shape == (3, 64, 64) and geo[1, 0] == 40
