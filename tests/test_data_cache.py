"""core.data.cache: decode once, shorter side to size, and a Dataset that feeds training."""
from __future__ import annotations

import albumentations as A
import numpy as np
import pytest
import torch
from albumentations.pytorch import ToTensorV2
from PIL import Image

from core.data import cache as cache_module
from core.data.cache import ImageCache, PhotoDataset
from core.data.scan import scan
from core.errors import DataError


def test_cache_stores_shorter_side_and_reuses_the_file(tmp_path, make_image, monkeypatch):
    photo = make_image(tmp_path / "wide.jpg", seed=1, size=(400, 200))
    cache = ImageCache(tmp_path / "cache", size=100)
    array = cache.get(photo, "ab" * 20)
    assert array.shape == (100, 200, 3) and array.dtype == np.uint8
    assert cache.file_for("ab" * 20).exists() and cache.file_for("ab" * 20).name == f"{'ab' * 20}_100.png"
    monkeypatch.setattr(cache_module, "load_image", lambda *a, **k: pytest.fail("decoded again"))
    assert np.array_equal(cache.get(photo, "ab" * 20), array)


def test_small_photos_are_not_enlarged_and_sizes_do_not_collide(tmp_path, make_image):
    photo = make_image(tmp_path / "small.png", seed=2, size=(60, 40))
    assert ImageCache(tmp_path / "c", size=100).get(photo, "cd" * 20).shape == (40, 60, 3)
    assert ImageCache(tmp_path / "c", size=20).get(photo, "cd" * 20).shape == (20, 30, 3)


def test_cached_pixels_match_the_photo(tmp_path):
    arr = np.zeros((64, 64, 3), np.uint8)
    arr[:, :32] = (250, 10, 10)
    path = tmp_path / "half.png"
    Image.fromarray(arr).save(path)
    cache = ImageCache(tmp_path / "c", size=32)
    out = cache.get(path, "ef" * 20)
    # stored losslessly: exactly the photo's pixels
    assert out[16, 4].tolist() == [250, 10, 10] and out[16, 28].max() == 0
    assert np.array_equal(cache.get(path, "ef" * 20), out)  # the first read gives the stored pixels too


def test_cache_stores_a_compressed_photo_at_training_size_not_a_raw_array(tmp_path):
    """The photo cache grew to 1.6 GB for 200 MB of photos: raw uint8 arrays, 3 bytes a pixel."""
    yy, xx = np.mgrid[0:900, 0:1200]
    arr = np.stack([(xx * 255 // 1200), (yy * 255 // 900), ((xx + yy) % 256)], axis=-1).astype(np.uint8)
    arr[300:600, 400:800] = (30, 160, 60)
    path = tmp_path / "big.png"
    Image.fromarray(arr).save(path)
    cache = ImageCache(tmp_path / "c", size=256)
    out = cache.get(path, "12" * 20)
    stored = cache.file_for("12" * 20).stat().st_size
    assert out.shape == (256, 341, 3)
    assert stored < out.nbytes / 4, f"{stored} bytes stored for a {out.nbytes}-byte array"


def test_damaged_cache_file_is_rebuilt(tmp_path, make_image):
    photo = make_image(tmp_path / "p.png", seed=3, size=50)
    cache = ImageCache(tmp_path / "c", size=50)
    good = cache.get(photo, "aa" * 20)
    cache.file_for("aa" * 20).write_bytes(b"half written")
    assert np.array_equal(cache.get(photo, "aa" * 20), good)


def test_default_root_is_in_the_workspace(workspace):
    assert ImageCache(size=64).root == workspace / "cache" / "images"


def test_dataset_with_albumentations_transform(make_dataset, tmp_path):
    df = scan(make_dataset(("a", "b"), n=3, size=(90, 70)))
    transform = A.Compose([A.Resize(32, 32), A.Normalize(), ToTensorV2()])
    dataset = PhotoDataset(df, ["a", "b"], transform, ImageCache(tmp_path / "c", 64))
    assert len(dataset) == 6 and dataset.labels == [0, 0, 0, 1, 1, 1]
    image, label = dataset[4]
    assert isinstance(image, torch.Tensor) and image.shape == (3, 32, 32) and image.dtype == torch.float32
    assert label == 1
    batch = next(iter(torch.utils.data.DataLoader(dataset, batch_size=4)))
    assert batch[0].shape == (4, 3, 32, 32)


def test_dataset_with_plain_callable_or_no_transform(make_dataset):
    df = scan(make_dataset(("a", "b"), n=1, size=(30, 20)))
    image, label = PhotoDataset(df, ["b", "a"])[0]
    assert image.shape == (3, 20, 30) and image.dtype == torch.uint8 and label == 1
    shape, _ = PhotoDataset(df, ["a", "b"], transform=lambda arr: arr.shape)[1]
    assert shape == (20, 30, 3)


def test_dataset_leaves_out_unreadable_rows_and_refuses_unknown_labels(make_dataset):
    root = make_dataset(("a", "b"), n=2)
    (root / "a" / "bad.jpg").write_text("text")
    df = scan(root)
    assert len(PhotoDataset(df, ["a", "b"])) == 4
    with pytest.raises(DataError, match="'b'"):
        PhotoDataset(df, ["a"])
    with pytest.raises(TypeError, match="class_names"):
        PhotoDataset(df, lambda x: x)


def test_photo_cache_limit_removes_the_photos_used_longest_ago_but_keeps_this_trainings(tmp_path, monkeypatch):
    """The cache may not fill the disk: over its limit, the photos used longest ago are removed
    (they are decoded again when needed); the photos of the training about to run stay."""
    import os

    import numpy as np
    from PIL import Image

    from core.data.cache import ImageCache, cache_files, limit_bytes, prune

    cache = ImageCache(tmp_path / "cache", 64)
    rng = np.random.default_rng(0)
    sha1s = [f"{i:02x}" + "0" * 38 for i in range(6)]
    for age, sha1 in enumerate(sha1s):
        photo = tmp_path / f"{sha1}.png"
        Image.fromarray(rng.integers(0, 255, (80, 80, 3), dtype=np.uint8)).save(photo)
        cache.get(photo, sha1)
        os.utime(cache.file_for(sha1), (1_000_000 + age, 1_000_000 + age))  # sha1s[0] used longest ago
    sizes = {p.name.split("_")[0]: size for _, size, p in cache_files(cache.root)}
    total = sum(sizes.values())
    # room for about half: the oldest go first, but sha1s[1] belongs to this training and stays
    removed, freed = prune(cache.root, total // 2, keep={sha1s[1]})
    left = {p.name.split("_")[0] for _, _, p in cache_files(cache.root)}
    assert sha1s[1] in left and sha1s[0] not in left and sha1s[-1] in left
    assert freed == total - sum(sizes[s] for s in left) and sum(sizes[s] for s in left) <= total // 2
    assert removed == len(sha1s) - len(left)
    # a removed photo is decoded again when asked for
    assert cache.get(tmp_path / f"{sha1s[0]}.png", sha1s[0]).shape == (64, 64, 3)
    monkeypatch.setenv("LATIH_PHOTO_CACHE_MB", "0")
    assert limit_bytes() is None and prune(cache.root, limit_bytes()) == (0, 0)
    monkeypatch.setenv("LATIH_PHOTO_CACHE_MB", "1.5")
    assert limit_bytes() == int(1.5 * 2**20)
