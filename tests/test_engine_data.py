"""Datasets (every format, on small data made here), the decode cache, splits and batch augmentation."""
from __future__ import annotations

import gzip
import pickle
import struct
import tarfile
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from experiments import data as data_mod
from experiments.config import get_protocol
from experiments.data import Batches, load_dataset, make_splits, random_crop, resolve_source

SHARED_ARCHIVE = Path(__file__).resolve().parents[2] / "shared" / "data" / "cifar10-jpeg.tar.gz"


def images(n: int, size: int = 8, channels: int = 3, seed: int = 0) -> np.ndarray:
    shape = (n, size, size, channels) if channels > 1 else (n, size, size)
    return np.random.default_rng(seed).integers(0, 256, shape, dtype=np.uint8)


def write_cifar(root: Path, cifar100: bool) -> tuple[np.ndarray, np.ndarray]:
    """A tiny CIFAR in torchvision's pickle layout; returns (train images NHWC, train labels)."""
    x = images(12, 32)
    y = [i % 3 for i in range(12)]
    flat = x.transpose(0, 3, 1, 2).reshape(12, -1)
    label_key, names_key = ("fine_labels", "fine_label_names") if cifar100 else ("labels", "label_names")
    folder = root / ("cifar-100-python" if cifar100 else "cifar-10-batches-py")
    folder.mkdir(parents=True)
    train = ["train"] if cifar100 else [f"data_batch_{i}" for i in range(1, 6)]
    chunks = np.array_split(np.arange(12), len(train))
    for name, idx in zip(train, chunks, strict=True):
        (folder / name).write_bytes(pickle.dumps({"data": flat[idx], label_key: [y[i] for i in idx]}))
    (folder / ("test" if cifar100 else "test_batch")).write_bytes(pickle.dumps({"data": flat[:3], label_key: y[:3]}))
    (folder / ("meta" if cifar100 else "batches.meta")).write_bytes(pickle.dumps({names_key: ["a", "b", "c"]}))
    return x, np.array(y)


@pytest.mark.parametrize("name", ["cifar10", "cifar100"])
def test_cifar_pickle_layout(tmp_path, name):
    x, y = write_cifar(tmp_path / "data", cifar100=name == "cifar100")
    ds = load_dataset(name, tmp_path / "data", tmp_path / "cache")
    assert ds.classes == ("a", "b", "c") and ds.input_shape == (3, 32, 32)
    assert torch.equal(ds.train.x.permute(0, 2, 3, 1), torch.from_numpy(x)) and ds.train.y.tolist() == y.tolist()
    assert len(ds.test) == 3


def write_image_folder(root: Path, suffix: str = ".png", per_class: int = 3, size: int = 8, mode: str = "RGB") -> dict:
    """train/<class>/ and test/<class>/ images under a nested prefix, plus a stray README; returns the pixels."""
    pixels = {}
    for split in ("train", "test"):
        for c, cls in enumerate(("cat", "dog")):
            folder = root / "nested" / split / cls
            folder.mkdir(parents=True)
            for i, img in enumerate(images(per_class, size, 3 if mode == "RGB" else 1, seed=c + 10 * (split == "test"))):
                Image.fromarray(img).save(folder / f"{i:04d}{suffix}")
                pixels[(split, cls, i)] = img
    (root / "README.md").write_text("not an image")
    return pixels


def make_tar(source: Path, target: Path) -> Path:
    with tarfile.open(target, "w:gz") as tar:
        tar.add(source, arcname=".")
    return target


@pytest.mark.parametrize("packed", [False, True], ids=["tree", "tar.gz"])
def test_image_folder_png_exact(tmp_path, packed):
    pixels = write_image_folder(tmp_path / "tree")
    path = make_tar(tmp_path / "tree", tmp_path / "set.tar.gz") if packed else tmp_path / "tree"
    ds = load_dataset("imagefolder", path, tmp_path / "cache")
    assert ds.classes == ("cat", "dog") and len(ds.train) == 6 and len(ds.test) == 6
    assert ds.train.y.tolist() == [0, 0, 0, 1, 1, 1]
    assert np.array_equal(ds.train.x[4].permute(1, 2, 0).numpy(), pixels[("train", "dog", 1)])


def test_image_folder_jpeg_and_grayscale(tmp_path):
    write_image_folder(tmp_path / "jpg", ".jpg")
    archive = make_tar(tmp_path / "jpg", tmp_path / "c.tar.gz")
    assert load_dataset("cifar10-jpeg", archive, tmp_path / "c").input_shape == (3, 8, 8)
    write_image_folder(tmp_path / "gray", ".png", mode="L")
    assert load_dataset("imagefolder", tmp_path / "gray", tmp_path / "c").input_shape == (1, 8, 8)


def write_idx(path: Path, array: np.ndarray) -> None:
    header = b"\0\0\x08" + bytes([array.ndim]) + struct.pack(f">{array.ndim}I", *array.shape)
    with gzip.open(path, "wb") as f:
        f.write(header + array.tobytes())


def test_fashion_mnist_idx(tmp_path):
    root = tmp_path / "fashion-mnist"
    root.mkdir()
    x = images(20, 28, channels=1)
    for prefix, n in (("train", 20), ("t10k", 10)):
        write_idx(root / f"{prefix}-images-idx3-ubyte.gz", x[:n])
        write_idx(root / f"{prefix}-labels-idx1-ubyte.gz", np.arange(n, dtype=np.uint8) % 10)
    ds = load_dataset("fashion-mnist", tmp_path, tmp_path / "cache")  # a root that contains fashion-mnist/
    assert ds.input_shape == (1, 28, 28) and len(ds.classes) == 10 and not ds.hflip
    assert torch.equal(ds.train.x[:, 0], torch.from_numpy(x)) and ds.test.y.tolist() == list(range(10))


def test_synthetic_is_deterministic():
    a, b = load_dataset("synthetic"), load_dataset("synthetic")
    assert torch.equal(a.train.x, b.train.x) and a.source == "generated" and a.input_shape == (3, 32, 32)


def test_cache_decodes_once_and_keys_on_content(tmp_path, monkeypatch):
    write_image_folder(tmp_path / "tree")
    cache = tmp_path / "cache"
    first = load_dataset("imagefolder", tmp_path / "tree", cache)
    (cached,) = cache.glob("imagefolder-*.npz")
    assert first.source_sha256[:16] in cached.name

    def no_decoding(path):
        raise AssertionError("decoded again")

    spec = data_mod.DATASETS["imagefolder"]
    monkeypatch.setitem(data_mod.DATASETS, "imagefolder", data_mod.DatasetSpec(**{**spec.__dict__, "decode": no_decoding}))
    again = load_dataset("imagefolder", tmp_path / "tree", cache)
    assert torch.equal(first.train.x, again.train.x)
    Image.fromarray(images(1, seed=99)[0]).save(tmp_path / "tree" / "nested" / "train" / "cat" / "0000.png")  # new content
    with pytest.raises(AssertionError, match="decoded again"):
        load_dataset("imagefolder", tmp_path / "tree", cache)


def test_splits_are_stratified_disjoint_and_fixed():
    ds = load_dataset("synthetic")
    protocol = get_protocol("smoke", train_per_class=10, val_per_class=5, test_per_class=3)
    (train, val, test), (train2, _, _) = make_splits(ds, protocol), make_splits(ds, protocol)
    assert torch.bincount(train.y).tolist() == [10] * 10 and torch.bincount(val.y).tolist() == [5] * 10
    assert torch.bincount(test.y).tolist() == [3] * 10 and torch.equal(train.x, train2.x)
    train_rows = {tuple(r) for r in train.x.flatten(1)[:, :64].tolist()}
    assert not train_rows & {tuple(r) for r in val.x.flatten(1)[:, :64].tolist()}


def test_batches_are_seeded_and_crops_are_windows():
    ds = load_dataset("synthetic")
    train, _, _ = make_splits(ds, get_protocol("smoke"))

    def epoch(seed: int) -> list[torch.Tensor]:
        gens = [torch.Generator().manual_seed(seed + k) for k in range(2)]
        batches = Batches(train, 32, ds.mean, ds.std, torch.device("cpu"), train=True, order_generator=gens[0],
                          aug_generator=gens[1], memory_format=torch.channels_last)
        return [x for x, _ in batches]

    first, again, other = epoch(0), epoch(0), epoch(5)
    assert len(first) == len(train) // 32 and first[0].shape == (32, 3, 32, 32)
    assert first[0].is_contiguous(memory_format=torch.channels_last)
    assert all(torch.equal(a, b) for a, b in zip(first, again, strict=True)) and not torch.equal(first[0], other[0])
    padded = torch.nn.functional.pad(train.x[:6], (4,) * 4)
    crops = random_crop(padded, 32, torch.Generator().manual_seed(1))
    windows = padded.unfold(2, 32, 1).unfold(3, 32, 1)  # N C 9 9 32 32
    for i in range(6):
        assert any(torch.equal(crops[i], windows[i, :, dy, dx]) for dy in range(9) for dx in range(9))


def masked_crop(padded: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """Engine version 2's first crop, kept as the reference: boolean-masked copies by shift group."""
    n, channels, height, width = padded.shape
    dy, dx = (torch.randint(0, s - size + 1, (n,), generator=generator) for s in (height, width))
    rows = padded.new_empty(n, channels, size, width)
    for shift in range(height - size + 1):
        rows[dy == shift] = padded[dy == shift, :, shift:shift + size]
    out = padded.new_empty(n, channels, size, size)
    for shift in range(width - size + 1):
        out[dx == shift] = rows[dx == shift, :, :, shift:shift + size]
    return out


def masked_epoch(split, batch_size: int, order: torch.Generator, aug: torch.Generator, hflip: bool) -> list:
    """Engine version 2's first training epoch, kept as the reference: per batch a masked crop, then a flip."""
    padded, out = torch.nn.functional.pad(split.x, (4,) * 4), []
    permutation = torch.randperm(len(split), generator=order)
    for i in range(len(split) // batch_size):
        index = permutation[i * batch_size:(i + 1) * batch_size]
        x = masked_crop(padded[index], split.x.shape[-1], aug)
        if hflip:
            flip = torch.rand(len(x), generator=aug) < 0.5
            x = torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)
        out.append((x, split.y[index]))
    return out


@pytest.mark.parametrize("hflip", [True, False])
def test_crops_and_flips_draw_and_give_what_the_masked_crop_gave(hflip):
    """Same generator states in, the same uint8 batches out and the same generator states after, over two
    epochs: CPU runs compute what they computed before the crop lost its boolean masks."""
    ds = load_dataset("synthetic")
    train, _, _ = make_splits(ds, get_protocol("smoke"))
    gens = {side: [torch.Generator().manual_seed(s) for s in (11, 12)] for side in ("ours", "reference")}
    batches = Batches(train, 32, (0.0,) * 3, (1.0,) * 3, torch.device("cpu"), train=True, hflip=hflip,
                      order_generator=gens["ours"][0], aug_generator=gens["ours"][1])
    for _ in range(2):
        ours = [(x, y) for x, y in batches]
        reference = masked_epoch(train, 32, *gens["reference"], hflip)
        assert len(ours) == len(reference) == len(train) // 32
        for (x, y), (x_ref, y_ref) in zip(ours, reference, strict=True):
            assert x.dtype == torch.float32 and torch.equal(x, x_ref.float()) and torch.equal(y, y_ref)
        for g_ours, g_ref in zip(gens["ours"], gens["reference"], strict=True):
            assert torch.equal(g_ours.get_state(), g_ref.get_state())
    padded = torch.nn.functional.pad(train.x[:40], (4,) * 4)
    assert torch.equal(random_crop(padded, 32, torch.Generator().manual_seed(3)),
                       masked_crop(padded, 32, torch.Generator().manual_seed(3)))


def test_bad_data_inputs(tmp_path):
    with pytest.raises(ValueError, match="did you mean 'cifar10'"):
        load_dataset("cifar1O", cache=tmp_path)
    with pytest.raises(FileNotFoundError, match=r"fashion-mnist data not found; looked in: .*nowhere.*apt-get install"):
        load_dataset("fashion-mnist", tmp_path / "nowhere", tmp_path)
    (tmp_path / "only" / "train" / "a").mkdir(parents=True)
    Image.fromarray(images(1)[0]).save(tmp_path / "only" / "train" / "a" / "x.png")
    with pytest.raises(ValueError, match="test/<class>"):
        load_dataset("imagefolder", tmp_path / "only", tmp_path)
    write_image_folder(tmp_path / "sizes")
    Image.fromarray(images(1, 9)[0]).save(tmp_path / "sizes" / "nested" / "test" / "cat" / "odd.png")
    with pytest.raises(ValueError, match="odd.png is 9x9"):
        load_dataset("imagefolder", tmp_path / "sizes", tmp_path)
    with pytest.raises(ValueError, match="class 0 has 40 images, the protocol asks for 104"):
        make_splits(load_dataset("synthetic"), get_protocol("smoke", train_per_class=100))
    with pytest.raises(ValueError, match="fewer than batch_size"):
        train = load_dataset("synthetic").train
        Batches(train, 1000, (0.0,) * 3, (1.0,) * 3, torch.device("cpu"), train=True)


def test_env_var_and_shared_archive_resolution(tmp_path, monkeypatch):
    monkeypatch.setenv("DYCLOT_DATA", str(tmp_path))
    archive = make_tar(write_image_folder(tmp_path / "t") and tmp_path / "t", tmp_path / "cifar10-jpeg.tar.gz")
    assert resolve_source(data_mod.DATASETS["cifar10-jpeg"], None, tmp_path) == archive
    monkeypatch.delenv("DYCLOT_DATA")
    if SHARED_ARCHIVE.exists():  # the default location beside the repo (dev machines and CI)
        assert resolve_source(data_mod.DATASETS["cifar10-jpeg"], None, tmp_path) == SHARED_ARCHIVE
