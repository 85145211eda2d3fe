"""Datasets decoded once into cached uint8 arrays, stratified splits, and batched GPU-style loading.

Every dataset becomes ``train_x, test_x`` (uint8, N x H x W x C), ``train_y, test_y`` (int64) and
class names, cached on disk under a key holding the source's sha256. Training keeps the whole
split as one tensor on the device and augments whole batches (a gather of random windows, a
``torch.where`` flip) with seeded ``torch.Generator`` s; there is no per-sample transform anywhere.
"""
from __future__ import annotations

import gzip
import hashlib
import io
import logging
import os
import pickle
import struct
import tarfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import partial
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from filelock import FileLock

from .config import Protocol, choose

log = logging.getLogger(__name__)

CACHE_FORMAT = 1  # bump when decoding changes
REPO_ROOT = Path(__file__).resolve().parent.parent
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff")
FASHION_CLASSES = ("T-shirt/top", "Trouser", "Pullover", "Dress", "Coat", "Sandal", "Shirt", "Sneaker", "Bag",
                   "Ankle boot")
Arrays = dict[str, np.ndarray]  # train_x, train_y, test_x, test_y, classes


def cache_dir(override: Path | None = None) -> Path:
    return Path(override or os.environ.get("DYCLOT_CACHE") or Path.home() / ".cache" / "dyclot")


# --------------------------------------------------------------------------- decoders
def decode_cifar_pickles(root: Path, train_files: tuple[str, ...], test_file: str, label_key: str,
                         meta_file: str, names_key: str) -> Arrays:
    """torchvision's python-pickle layout (``cifar-10-batches-py`` / ``cifar-100-python``)."""
    def load(name: str) -> dict:
        with open(root / name, "rb") as f:
            return pickle.load(f, encoding="latin1")

    def images_labels(names: tuple[str, ...]) -> tuple[np.ndarray, np.ndarray]:
        batches = [load(n) for n in names]
        x = np.concatenate([b["data"] for b in batches]).reshape(-1, 3, 32, 32).transpose(0, 2, 3, 1)
        return np.ascontiguousarray(x, dtype=np.uint8), np.concatenate([b[label_key] for b in batches]).astype(np.int64)

    train_x, train_y = images_labels(train_files)
    test_x, test_y = images_labels((test_file,))
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y, classes=np.array(load(meta_file)[names_key]))


def _read_files(path: Path, keep: Callable[[str], bool]) -> list[tuple[str, bytes]]:
    """(relative path, bytes) of the kept files of a directory tree or a tar archive, sorted by path."""
    if path.is_dir():
        files = ((p.relative_to(path).as_posix(), p) for p in path.rglob("*") if p.is_file())
        found = [(name, p.read_bytes()) for name, p in files if keep(name)]
    else:  # one pass in archive order: seeking backwards in a .tar.gz would decompress it again
        with tarfile.open(path) as tar:
            found = [(m.name, tar.extractfile(m).read()) for m in tar if m.isfile() and keep(m.name)]
    return sorted(found)


def decode_image_folder(path: Path) -> Arrays:
    """``train/<class>/*`` and ``test/<class>/*`` (or ``val/``) images, in a tree or a .tar(.gz)."""
    from PIL import Image

    def split_of(name: str) -> str | None:
        parts = name.split("/")
        ok = len(parts) >= 3 and parts[-3] in ("train", "test", "val") and name.lower().endswith(IMAGE_SUFFIXES)
        return parts[-3] if ok else None

    found: dict[str, list[tuple[str, str, bytes]]] = {"train": [], "test": [], "val": []}
    for name, raw in _read_files(path, lambda n: split_of(n) is not None):
        found[split_of(name)].append((name.split("/")[-2], name, raw))
    test = found["test"] or found["val"]
    if not found["train"] or not test:
        raise ValueError(f"{path} is not an image folder: it needs train/<class>/<image> and test/<class>/<image> "
                         f"(or val/<class>/<image>) entries")
    classes = sorted({c for c, _, _ in found["train"]})
    unknown = sorted({c for c, _, _ in test} - set(classes))
    if unknown:
        raise ValueError(f"{path}: test classes {unknown} have no training images")
    images = {split: [Image.open(io.BytesIO(raw)) for _, _, raw in entries]
              for split, entries in (("train", found["train"]), ("test", test))}
    mode = "L" if all(im.mode in ("L", "1") for ims in images.values() for im in ims) else "RGB"
    size = images["train"][0].size
    arrays: Arrays = {"classes": np.array(classes)}
    for split, entries in (("train", found["train"]), ("test", test)):
        for im, (_, name, _) in zip(images[split], entries, strict=True):
            if im.size != size:
                raise ValueError(f"{path}: image {name} is {im.size[0]}x{im.size[1]}, others are {size[0]}x{size[1]}")
        x = np.stack([np.asarray(im.convert(mode)) for im in images[split]])
        arrays[f"{split}_x"] = x if x.ndim == 4 else x[..., None]
        arrays[f"{split}_y"] = np.array([classes.index(c) for c, _, _ in entries], dtype=np.int64)
    return arrays


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (optionally gzip-compressed) of unsigned bytes."""
    data = (gzip.open if path.suffix == ".gz" else open)(path, "rb").read()
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise ValueError(f"{path} is not an IDX file of unsigned bytes")
    ndim = data[3]
    shape = struct.unpack(f">{ndim}I", data[4:4 + 4 * ndim])
    return np.frombuffer(data, np.uint8, offset=4 + 4 * ndim).reshape(shape)


def _idx_file(root: Path, stem: str) -> Path:
    return next((root / f"{stem}{ext}" for ext in (".gz", "") if (root / f"{stem}{ext}").exists()), root / f"{stem}.gz")


def decode_fashion_mnist(root: Path) -> Arrays:
    arrays: Arrays = {"classes": np.array(FASHION_CLASSES)}
    for split, prefix in (("train", "train"), ("test", "t10k")):
        arrays[f"{split}_x"] = read_idx(_idx_file(root, f"{prefix}-images-idx3-ubyte"))[..., None].copy()
        arrays[f"{split}_y"] = read_idx(_idx_file(root, f"{prefix}-labels-idx1-ubyte")).astype(np.int64)
    return arrays


def make_synthetic(num_classes: int = 10, train_per_class: int = 40, test_per_class: int = 20, size: int = 32) -> Arrays:
    """A small learnable set for tests: each class a random low-frequency colour pattern, plus noise."""
    rng = np.random.default_rng(0)
    templates = rng.uniform(40, 215, (num_classes, 4, 4, 3)).repeat(size // 4, 1).repeat(size // 4, 2)

    def split(per_class: int) -> tuple[np.ndarray, np.ndarray]:
        y = np.repeat(np.arange(num_classes), per_class)
        x = templates[y] + rng.normal(0, 40, (len(y), size, size, 3))
        return np.clip(x, 0, 255).astype(np.uint8), y.astype(np.int64)

    (train_x, train_y), (test_x, test_y) = split(train_per_class), split(test_per_class)
    return dict(train_x=train_x, train_y=train_y, test_x=test_x, test_y=test_y,
                classes=np.array([f"class{i}" for i in range(num_classes)]))


# --------------------------------------------------------------------------- dataset registry
def _has(*names: str) -> Callable[[Path], bool]:
    return lambda p: p.is_dir() and all((p / n).exists() or (p / f"{n}.gz").exists() for n in names)


def _is_image_folder(p: Path) -> bool:
    if p.is_file():
        return p.name.endswith((".tar.gz", ".tgz", ".tar"))
    return p.is_dir() and any(d.is_dir() for d in p.glob("**/train"))


@dataclass(frozen=True)
class DatasetSpec:
    name: str
    decode: Callable[[Path], Arrays] | None  # None: generated, needs no path
    accepts: Callable[[Path], bool] = lambda p: False  # is this path the dataset itself?
    names: tuple[str, ...] = ()  # what the dataset is called inside a data root
    defaults: tuple[Path, ...] = ()  # where it is looked for without --data-root / DYCLOT_DATA
    how_to_get: str = ""
    hflip: bool = True
    download: Callable[[Path], None] | None = None


def _torchvision_download(cls_name: str, root: Path) -> None:
    import torchvision

    getattr(torchvision.datasets, cls_name)(str(root), download=True)


DATASETS: dict[str, DatasetSpec] = {s.name: s for s in (
    DatasetSpec("cifar10", partial(decode_cifar_pickles, train_files=tuple(f"data_batch_{i}" for i in range(1, 6)),
                                   test_file="test_batch", label_key="labels", meta_file="batches.meta",
                                   names_key="label_names"),
                _has("data_batch_1", "test_batch", "batches.meta"), ("cifar-10-batches-py",),
                how_to_get="add --download (fetches torchvision's CIFAR-10 python version) or pass --data-root",
                download=partial(_torchvision_download, "CIFAR10")),
    DatasetSpec("cifar100", partial(decode_cifar_pickles, train_files=("train",), test_file="test",
                                    label_key="fine_labels", meta_file="meta", names_key="fine_label_names"),
                _has("train", "test", "meta"), ("cifar-100-python",),
                how_to_get="add --download (fetches torchvision's CIFAR-100 python version) or pass --data-root",
                download=partial(_torchvision_download, "CIFAR100")),
    DatasetSpec("cifar10-jpeg", decode_image_folder, _is_image_folder, ("cifar10-jpeg.tar.gz", "cifar10-jpeg"),
                (REPO_ROOT.parent / "shared" / "data" / "cifar10-jpeg.tar.gz",),
                how_to_get="pass --data-root PATH/cifar10-jpeg.tar.gz (train/<class>/*.jpg, test/<class>/*.jpg)"),
    DatasetSpec("imagefolder", decode_image_folder, _is_image_folder,
                how_to_get="pass --data-root pointing at a folder or .tar.gz with train/<class>/ and test/<class>/"),
    DatasetSpec("fashion-mnist", decode_fashion_mnist, _has("train-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
                ("fashion-mnist", "FashionMNIST/raw"), (Path("/usr/share/datasets/fashion-mnist"),),
                how_to_get="apt-get install dataset-fashion-mnist, or pass --data-root to a folder of the IDX files",
                hflip=False),  # every shoe faces left, in train and test: flips only make unseen images
    DatasetSpec("synthetic", None),
)}


def resolve_source(spec: DatasetSpec, data_root: Path | None, cache: Path, download: bool = False) -> Path:
    """The dataset's path: ``data_root`` > ``$DYCLOT_DATA`` > the spec's defaults; else a FileNotFoundError."""
    env = os.environ.get("DYCLOT_DATA")
    roots = [Path(data_root)] if data_root else [*([Path(env)] if env else []), *spec.defaults, cache / "data"]
    candidates = [c for root in roots for c in (*(root / n for n in spec.names), root)]
    for candidate in candidates:
        if spec.accepts(candidate):
            return candidate
    if download and spec.download:
        target = Path(data_root or env or cache / "data")
        spec.download(target)
        return next(c for c in (target / n for n in spec.names) if spec.accepts(c))
    looked = ", ".join(dict.fromkeys(map(str, candidates))) or "nowhere (no --data-root given)"
    raise FileNotFoundError(f"{spec.name} data not found; looked in: {looked}. To get it: {spec.how_to_get}")


def content_hash(path: Path) -> str:
    """sha256 of a file, or of a directory tree's relative paths and file contents."""
    digest = hashlib.sha256()
    files = [path] if path.is_file() else sorted(p for p in path.rglob("*") if p.is_file())
    for file in files:
        if file != path:
            digest.update(file.relative_to(path).as_posix().encode() + b"\0")
        with open(file, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
    return digest.hexdigest()


def _channel_stats(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-channel mean and std of uint8 N x H x W x C images, exactly, from 256-bin histograms."""
    levels = np.arange(256, dtype=np.float64)
    counts = np.stack([np.bincount(x[..., c].ravel(), minlength=256) for c in range(x.shape[-1])]).astype(np.float64)
    mean = counts @ levels / counts.sum(1)
    return mean, np.sqrt(np.maximum(counts @ levels ** 2 / counts.sum(1) - mean ** 2, 1e-6))


def _atomic_save_npz(path: Path, arrays: Arrays) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with open(tmp, "wb") as f:
        np.savez(f, **arrays)
    os.replace(tmp, path)


@dataclass(frozen=True)
class Split:
    x: torch.Tensor  # uint8, N x C x H x W (channels-last strides)
    y: torch.Tensor  # int64

    def __len__(self) -> int:
        return len(self.y)

    def take(self, index: torch.Tensor) -> Split:
        return Split(self.x[index], self.y[index])


@dataclass(frozen=True)
class Dataset:
    name: str
    classes: tuple[str, ...]
    train: Split
    test: Split
    mean: tuple[float, ...]  # per channel, 0-255 scale, of the whole training set
    std: tuple[float, ...]
    hflip: bool
    source: str  # the path decoded, or "generated"
    source_sha256: str | None

    @property
    def input_shape(self) -> tuple[int, int, int]:
        return tuple(self.train.x.shape[1:])


def data_identity(name: str, data_root: Path | None = None, cache: Path | None = None,
                  download: bool = False) -> tuple[str, str | None]:
    """What ``load_dataset(name, ...)`` would decode, as env.json records it (``data_source``, ``data_sha256``):
    the resolved path and its content's sha256, or ``("generated", None)`` for generated data; nothing decoded."""
    spec = DATASETS[choose("dataset", name, DATASETS)]
    if spec.decode is None:
        return "generated", None
    path = resolve_source(spec, data_root, cache_dir(cache), download)
    return str(path), content_hash(path)


def load_dataset(name: str, data_root: Path | None = None, cache: Path | None = None, download: bool = False) -> Dataset:
    """Decode ``name`` once (cached under the source's content hash) and return it as tensors."""
    spec = DATASETS[choose("dataset", name, DATASETS)]
    cache = cache_dir(cache)
    source, sha = data_identity(name, data_root, cache, download)
    if spec.decode is None:
        arrays = make_synthetic()
    else:
        cached = cache / f"{spec.name}-{sha[:16]}-v{CACHE_FORMAT}.npz"
        cache.mkdir(parents=True, exist_ok=True)
        with FileLock(f"{cached}.lock"):
            if not cached.exists():
                log.info("decoding %s from %s (once; cached in %s)", name, source, cached)
                arrays = spec.decode(Path(source))
                _atomic_save_npz(cached, arrays)
            with np.load(cached) as stored:
                arrays = {k: stored[k] for k in stored.files}
    mean, std = _channel_stats(arrays["train_x"])

    def split(prefix: str) -> Split:
        return Split(torch.from_numpy(arrays[f"{prefix}_x"]).permute(0, 3, 1, 2), torch.from_numpy(arrays[f"{prefix}_y"]))

    return Dataset(name, tuple(map(str, arrays["classes"])), split("train"), split("test"), tuple(mean.tolist()),
                   tuple(std.tolist()), spec.hflip, source, sha)


# --------------------------------------------------------------------------- splits
def stratified_take(y: torch.Tensor, counts: list[int | None], seed: int, what: str) -> list[torch.Tensor]:
    """Disjoint per-class random picks: ``counts[k]`` images of every class for part k (None = the rest)."""
    generator = torch.Generator().manual_seed(seed)
    parts: list[list[torch.Tensor]] = [[] for _ in counts]
    for label in torch.unique(y).tolist():
        members = torch.nonzero(y == label).flatten()
        members = members[torch.randperm(len(members), generator=generator)]
        needed = sum(c for c in counts if c is not None)
        if needed > len(members):
            raise ValueError(f"{what}: class {label} has {len(members)} images, the protocol asks for {needed} "
                             f"({' + '.join(str(c) for c in counts if c is not None)})")
        start = 0
        for part, count in zip(parts, counts, strict=True):
            stop = len(members) if count is None else start + count
            part.append(members[start:stop])
            start = stop
    return [torch.sort(torch.cat(p)).values for p in parts]


def make_splits(data: Dataset, protocol: Protocol) -> tuple[Split, Split | None, Split]:
    """(train, val or None, test) for a protocol: val is carved out of train, never out of test."""
    val_index, train_index = stratified_take(
        data.train.y, [protocol.val_per_class, protocol.train_per_class], protocol.split_seed, f"{data.name} train")
    test = data.test
    if protocol.test_per_class is not None:
        (test_index,) = stratified_take(test.y, [protocol.test_per_class], protocol.split_seed, f"{data.name} test")
        test = test.take(test_index)
    return data.train.take(train_index), data.train.take(val_index) if len(val_index) else None, test


# --------------------------------------------------------------------------- batches
@dataclass(frozen=True)
class Augmentations:
    """One epoch's random crops and flips, one row per training batch (``batches x batch_size``).

    ``dy``/``dx``: the crop window's top-left corner in the padded image; ``flip``: mirror the image.
    """
    dy: torch.Tensor  # int64
    dx: torch.Tensor  # int64
    flip: torch.Tensor | None  # bool; None when the dataset is not flipped

    def to(self, device: torch.device) -> Augmentations:
        """On ``device``, copied without waiting (pinned host memory, ``non_blocking``) where it is a GPU."""
        def move(t: torch.Tensor | None) -> torch.Tensor | None:
            if t is None or t.device == device:
                return t
            return t.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else t.to(device)
        return Augmentations(move(self.dy), move(self.dx), move(self.flip))


def draw_augmentations(batches: int, batch_size: int, shifts: tuple[int, int], hflip: bool,
                       generator: torch.Generator) -> Augmentations:
    """An epoch's crop offsets (``0..shifts-1`` rows, columns) and flips, drawn batch by batch.

    The draws are those engine version 2 has made since it began, in its order: per batch the row
    offsets, the column offsets, then (if ``hflip``) the flips, each one call on ``generator``.
    Drawing them all at the start of the epoch gives the same numbers and leaves ``generator`` in
    the same state as drawing them before each batch.
    """
    dy, dx, flip = [], [], []
    for _ in range(batches):
        dy.append(torch.randint(0, shifts[0], (batch_size,), generator=generator))
        dx.append(torch.randint(0, shifts[1], (batch_size,), generator=generator))
        if hflip:
            flip.append(torch.rand(batch_size, generator=generator) < 0.5)
    return Augmentations(torch.stack(dy), torch.stack(dx), torch.stack(flip) if hflip else None)


def crop(padded: torch.Tensor, index: torch.Tensor, dy: torch.Tensor, dx: torch.Tensor, size: int) -> torch.Tensor:
    """The ``size`` x ``size`` window at ``(dy[i], dx[i])`` of image ``index[i]`` of ``padded`` (N x C x H x W).

    One gather from the windows view (``unfold``): no boolean mask, so no ``nonzero`` and no wait
    for the device (docs/engine.md, Batches). Returns a B x C x size x size tensor.
    """
    windows = padded.unfold(2, size, 1).unfold(3, size, 1)  # N x C x shifts_y x shifts_x x size x size, a view
    return windows.permute(0, 2, 3, 1, 4, 5)[index, dy, dx]


def random_crop(padded: torch.Tensor, size: int, generator: torch.Generator) -> torch.Tensor:
    """A random ``size`` x ``size`` window of every padded image (offsets drawn as in :func:`draw_augmentations`)."""
    n, _, height, width = padded.shape
    drawn = draw_augmentations(1, n, (height - size + 1, width - size + 1), False, generator).to(padded.device)
    return crop(padded, torch.arange(n, device=padded.device), drawn.dy[0], drawn.dx[0], size)


def flip_where(x: torch.Tensor, flip: torch.Tensor) -> torch.Tensor:
    """``x[i]`` mirrored left-right where ``flip[i]``: one ``torch.where``, no boolean indexing."""
    return torch.where(flip.view(-1, 1, 1, 1), x.flip(-1), x)


class Batches:
    """Normalised float batches from a uint8 split held on the device.

    Training batches are shuffled by one ``randperm`` of ``order_generator`` per epoch, padded
    (``pad`` zeros), randomly cropped and, if ``hflip``, flipped, with ``aug_generator`` (the
    epoch's draws made at its start, :func:`draw_augmentations`, and moved to the device once);
    the last partial batch is dropped. Evaluation batches come in order, unaugmented, all of them.
    Nothing in an epoch waits for the device.
    """

    def __init__(self, split: Split, batch_size: int, mean: tuple[float, ...], std: tuple[float, ...],
                 device: torch.device, train: bool = False, pad: int = 4, hflip: bool = True,
                 order_generator: torch.Generator | None = None, aug_generator: torch.Generator | None = None,
                 memory_format: torch.memory_format = torch.contiguous_format) -> None:
        self.train, self.batch_size, self.hflip, self.memory_format = train, batch_size, hflip, memory_format
        self.order_generator, self.aug_generator = order_generator, aug_generator
        self.size = split.x.shape[-1]
        self.images = (F.pad(split.x, (pad,) * 4) if train and pad else split.x).to(device)
        self.labels = split.y.to(device)
        self.mean = torch.tensor(mean, device=device).view(1, -1, 1, 1)
        self.std = torch.tensor(std, device=device).view(1, -1, 1, 1)
        if train and len(self.labels) < batch_size:
            raise ValueError(f"the training split has {len(self.labels)} images, fewer than batch_size={batch_size}")

    def __len__(self) -> int:
        n = len(self.labels)
        return n // self.batch_size if self.train else -(-n // self.batch_size)

    def __iter__(self) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        n, device = len(self.labels), self.labels.device
        order = torch.randperm(n, generator=self.order_generator) if self.train else torch.arange(n)
        if self.train:
            shifts = (self.images.shape[-2] - self.size + 1, self.images.shape[-1] - self.size + 1)
            drawn = draw_augmentations(len(self), self.batch_size, shifts, self.hflip, self.aug_generator).to(device)
        order = order.pin_memory().to(device, non_blocking=True) if device.type == "cuda" else order.to(device)
        for i in range(len(self)):
            index = order[i * self.batch_size:(i + 1) * self.batch_size]
            if self.train:
                x = crop(self.images, index, drawn.dy[i], drawn.dx[i], self.size)
                if drawn.flip is not None:
                    x = flip_where(x, drawn.flip[i])
            else:
                x = self.images[index]
            x = ((x.float() - self.mean) / self.std).contiguous(memory_format=self.memory_format)
            yield x, self.labels[index]
