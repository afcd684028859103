"""The data the stages share: the MNIST splits that fetch_mnist writes (uint8 images, int64 labels),
each with its sha256 in the folder's SHA256SUMS, verified on load (DVC does not verify its cache), and
how images enter the models (PIXEL_RANGE, to_model_input). Where MNIST comes from is
stages/lib/mnist.py.
"""
from pathlib import Path

import torch

from stages.lib.errors import StageError
from stages.lib.io import load_tensors, record_checksum, save_tensors, verify_checksum

SPLITS = ("train", "test")
IMAGE_SHAPE = (28, 28)
NUM_CLASSES = 10
PIXEL_RANGE = (-1.0, 1.0)  # the seed's pixel range: what the models see and the attacks clip to
REBUILD = "rebuild the prepared data: dvc repro -f fetch_mnist"


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


def class_counts(labels):
    """{"0": count, ..., "9": count} of int64 labels."""
    return {str(d): c for d, c in enumerate(torch.bincount(labels.cpu(), minlength=NUM_CLASSES).tolist())}


def split_path(data_dir, split):
    return Path(data_dir) / f"{split}.pt"


def save_split(path, images, labels):
    """The split's file, and its sha256 in the folder's SHA256SUMS."""
    save_tensors({"images": images.contiguous(), "labels": labels.contiguous()}, path)
    record_checksum(path)


def load_split(data_dir, split):
    """(images uint8 N x 28 x 28, labels int64 N) as written by the fetch_mnist stage, its sha256 verified."""
    path = split_path(data_dir, split)
    if path.is_file():  # a missing file: load_tensors says how to make it
        verify_checksum(path, REBUILD)
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
