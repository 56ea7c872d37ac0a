import numpy as np
import pytest
from PIL import Image

from fairseq_ot.data_prep import image_features

from conftest import load_script
from test_captioning import SHARED_FLICKR

extract_image_features = load_script("extract_image_features")  # the command, run end to end
SAMPLE_IMAGES = SHARED_FLICKR / "sample_images_224"


@pytest.fixture(scope="module")
def network():
    return image_features.load_network()


def test_features_of_the_sample_images_match_the_distributed_ones(network):
    if not SAMPLE_IMAGES.is_dir():
        pytest.skip(f"{SAMPLE_IMAGES} is absent (real data lives outside the repository)")
    paths = sorted(SAMPLE_IMAGES.glob("*.jpg"))
    features = image_features.extract(network, paths)
    with np.load(SHARED_FLICKR / "flickr8k_effnetlite0_pool1280_fp16.npz") as arrays:
        row = {name: i for i, name in enumerate(arrays["names"])}
        distributed = arrays["features"][[row[p.name] for p in paths]]
    # the distributed features were rounded to float16: within its half-ulp
    np.testing.assert_allclose(features, distributed.astype(np.float32), rtol=2 ** -10, atol=1e-4)
    assert (features.astype(np.float16) == distributed).mean() > 0.98


def test_script_writes_pooled_or_grid_features_by_name(network, tmp_path, monkeypatch):
    images = tmp_path / "images"
    images.mkdir()
    rng = np.random.default_rng(0)
    for name, size in (("b.jpg", (300, 200)), ("a.png", (224, 224))):
        Image.fromarray(rng.integers(0, 256, (size[1], size[0], 3), dtype=np.uint8)).save(images / name)
    (images / "notes.txt").write_text("not an image")
    monkeypatch.setattr(extract_image_features, "load_network", lambda: network)
    for flags, name in (([], "pooled.npz"), (["--grid", "--dtype", "float32"], "grid.npz")):
        extract_image_features.main([str(images), "--output", str(tmp_path / name), *flags])
    pooled, grid = np.load(tmp_path / "pooled.npz"), np.load(tmp_path / "grid.npz")
    assert list(pooled["names"]) == list(grid["names"]) == ["a.png", "b.jpg"]
    assert pooled["features"].shape == (2, 1280) and pooled["features"].dtype == np.float16
    assert grid["features"].shape == (2, 49, 1280)
    np.testing.assert_allclose(grid["features"].mean(1), pooled["features"], rtol=2 ** -10, atol=1e-3)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["grid.npz", "images", "pooled.npz"]
