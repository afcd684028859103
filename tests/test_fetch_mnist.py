"""Stage fetch_mnist: the download path against a local HTTP server, the directory and sample
sources, no silent fallback to the sample, and every bad input."""
import functools
import gzip
import hashlib
import http.server
import json
import socket
import threading

import pandas as pd
import pytest
import torch
import torchvision

from stages import fetch_mnist
from stages.lib.errors import StageError
from stages.lib.data import load_split
from stages.lib.mnist import read_idx, sample_mnist
from tests.conftest import (
    as_a_new_process,
    assert_clean_failure,
    params_with,
    run_stage,
    synthetic_digits,
    write_idx_dir,
    write_params,
)

OUT = ["--out", "data/mnist"]


@pytest.fixture
def mirror(tmp_path, monkeypatch):
    """A local HTTP server serving four small gzipped IDX files; torchvision's mirrors point at it."""
    served = tmp_path / "served"
    files = write_idx_dir(served, gz=True)
    handler = functools.partial(http.server.SimpleHTTPRequestHandler, directory=str(served))
    handler.log_message = lambda *args: None
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{server.server_port}/"])
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources",
                        [(name, hashlib.md5(data).hexdigest()) for name, data in files.items()])
    yield served
    server.shutdown()


def unused_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def fetch(tmp_path, monkeypatch, **changes):
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, params_with(**{"data.cache_dir": str(tmp_path / "cache"), **changes}))
    as_a_new_process()
    fetch_mnist.main(OUT)
    return json.loads((tmp_path / "metrics/data.json").read_text())


def class_counts(tmp_path, split):
    counts = pd.read_csv(tmp_path / "plots/data/class_counts.csv")
    return dict(counts[counts["split"] == split][["digit", "count"]].itertuples(index=False))


def test_download_from_mirror_verifies_and_is_reused(tmp_path, monkeypatch, mirror):
    metrics = fetch(tmp_path, monkeypatch, **{"data.source": "mnist"})
    assert metrics["source"] == "mnist"
    assert (metrics["n_train"], metrics["n_test"]) == (60, 20)
    images, labels = load_split(tmp_path / "data/mnist", "train")
    expected_images, expected_labels = synthetic_digits(60, 1)
    assert torch.equal(images, expected_images) and torch.equal(labels, expected_labels)
    assert class_counts(tmp_path, "train") == {d: 6 for d in range(10)}
    # a second run uses the cache: it works with the mirror gone
    for f in mirror.iterdir():
        f.unlink()
    assert fetch(tmp_path, monkeypatch, **{"data.source": "mnist"})["source"] == "mnist"


def test_md5_mismatch_fails_and_writes_nothing(tmp_path, monkeypatch, mirror):
    resources = torchvision.datasets.MNIST.resources
    monkeypatch.setattr(torchvision.datasets.MNIST, "resources", [(resources[0][0], "0" * 32)] + resources[1:])
    with pytest.raises(StageError, match="train-images-idx3-ubyte.gz: MD5 mismatch"):
        fetch(tmp_path, monkeypatch)
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_unreachable_mirror_stops_with_how_to_get_the_files_and_how_to_run_the_sample(tmp_path, monkeypatch):
    # the sample never replaces the committed full-scale results silently
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{unused_port()}/"])
    with pytest.raises(StageError) as raised:
        fetch(tmp_path, monkeypatch)
    message = str(raised.value)
    assert "train-images-idx3-ubyte.gz" in message and "\n" not in message
    assert "make mnist FROM=<their folder>" in message and "dvc exp run -S data.source=sample" in message
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_sample_source_is_stratified_seeded_and_shuffled(tmp_path, monkeypatch):
    metrics = fetch(tmp_path, monkeypatch, **{"data.source": "sample"})
    assert (metrics["n_train"], metrics["n_test"]) == (4000, 1000)
    assert set(class_counts(tmp_path, "test").values()) == {100}
    first = (tmp_path / "data/mnist/test.pt").read_bytes()
    _, labels = load_split(tmp_path / "data/mnist", "test")
    assert len(set(labels[:20].tolist())) > 3  # not sorted by class
    fetch(tmp_path, monkeypatch, **{"data.source": "sample"})
    assert (tmp_path / "data/mnist/test.pt").read_bytes() == first
    assert not torch.equal(sample_mnist(1)["test"][1], labels)


@pytest.mark.parametrize("gz", [False, True])
def test_directory_source(tmp_path, monkeypatch, gz):
    write_idx_dir(tmp_path / "idx", gz=gz)
    metrics = fetch(tmp_path, monkeypatch, **{"data.source": str(tmp_path / "idx")})
    assert metrics["source"] == str(tmp_path / "idx") and metrics["n_test"] == 20
    images, labels = load_split(tmp_path / "data/mnist", "test")
    assert torch.equal(images, synthetic_digits(20, 2)[0]) and labels.dtype == torch.int64


def test_read_idx_rejects_truncated_and_wrong_magic(tmp_path):
    write_idx_dir(tmp_path)
    path = tmp_path / "t10k-images-idx3-ubyte"
    good = path.read_bytes()
    path.write_bytes(good[:-5])
    with pytest.raises(StageError, match="truncated"):
        read_idx(path, "images")
    path.write_bytes(good)
    with pytest.raises(StageError, match="wrong magic"):
        read_idx(path, "labels")


def bad_source(tmp_path, name):
    """A directory of IDX files with one file broken in the way `name` says."""
    directory = tmp_path / "idx"
    write_idx_dir(directory)
    target = directory / "t10k-labels-idx1-ubyte"
    if name == "missing":
        target.unlink()
    elif name == "truncated":
        target.write_bytes(target.read_bytes()[:-3])
    elif name == "wrong magic":
        target.write_bytes((directory / "t10k-images-idx3-ubyte").read_bytes())
    elif name == "bad gzip":
        target.rename(directory / "t10k-labels-idx1-ubyte.gz")
    return str(directory)


@pytest.mark.parametrize("broken, needle", [
    ("missing", "t10k-labels-idx1-ubyte: not found"),
    ("truncated", "truncated"),
    ("wrong magic", "wrong magic"),
    ("bad gzip", "t10k-labels-idx1-ubyte.gz: cannot be read"),
])
def test_bad_files_are_named_and_nothing_is_written(tmp_path, monkeypatch, broken, needle):
    source = bad_source(tmp_path, broken)
    with pytest.raises(StageError, match=needle):
        fetch(tmp_path, monkeypatch, **{"data.source": source})
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_the_command_line_gives_one_line_and_exit_2_for_a_bad_file(tmp_path):
    write_params(tmp_path, params_with(**{"data.source": bad_source(tmp_path, "truncated")}))
    result = run_stage("fetch_mnist", *OUT, cwd=tmp_path)
    assert result.returncode == 2
    assert_clean_failure(result, "t10k-labels-idx1-ubyte: truncated or padded IDX file")
    assert not (tmp_path / "data").exists() and not (tmp_path / "metrics").exists()


def test_import_installs_checked_files_where_the_stage_finds_them_offline(tmp_path, monkeypatch):
    from stages.lib import mnist

    files = write_idx_dir(tmp_path / "have", gz=True)
    monkeypatch.setattr(mnist, "OFFICIAL_MD5", {name.removesuffix(".gz"): hashlib.md5(gzip.decompress(data)).hexdigest()
                                                for name, data in files.items()})
    monkeypatch.setattr(torchvision.datasets.MNIST, "mirrors", [f"http://127.0.0.1:{unused_port()}/"])
    monkeypatch.chdir(tmp_path)
    write_params(tmp_path, params_with(**{"data.cache_dir": str(tmp_path / "cache")}))
    fetch_mnist.main(["--import", str(tmp_path / "have")])
    assert sorted(p.name for p in (tmp_path / "cache/MNIST/raw").iterdir()) == sorted(n.removesuffix(".gz") for n in files)
    metrics = fetch(tmp_path, monkeypatch)  # mnist, mirrors unreachable: the imported files are used
    assert metrics == {"source": "mnist", "official": True, "n_train": 60, "n_test": 20}
    imported = (tmp_path / "data/mnist/train.pt").read_bytes()
    # the same bytes as reading the folder directly (and as a download, which torchvision unpacks alike)
    assert fetch(tmp_path, monkeypatch, **{"data.source": str(tmp_path / "have")})["official"] is True
    assert (tmp_path / "data/mnist/train.pt").read_bytes() == imported


@pytest.mark.parametrize("damage", ["other digits", "truncated"])
def test_import_refuses_files_that_are_not_the_official_ones(tmp_path, monkeypatch, damage):
    write_idx_dir(tmp_path / "have")
    if damage == "truncated":
        from stages.lib import mnist

        monkeypatch.setattr(mnist, "OFFICIAL_MD5", {
            p.name: hashlib.md5(p.read_bytes()).hexdigest() for p in (tmp_path / "have").iterdir()})
        path = tmp_path / "have/t10k-images-idx3-ubyte"
        path.write_bytes(path.read_bytes()[:-100])
    write_params(tmp_path, params_with(**{"data.cache_dir": str(tmp_path / "cache")}))
    monkeypatch.chdir(tmp_path)
    name = "train-images-idx3-ubyte" if damage == "other digits" else "t10k-images-idx3-ubyte"
    with pytest.raises(StageError, match=f"{name}: not the official {name} .*; nothing was imported"):
        fetch_mnist.main(["--import", str(tmp_path / "have")])
    assert not (tmp_path / "cache").exists()


def flip(path, count=64):
    """Invert `count` bytes in the middle of the file at path (what a bad disk or a bad copy does)."""
    raw = bytearray(path.read_bytes())
    middle = len(raw) // 2
    raw[middle:middle + count] = bytes(b ^ 0xFF for b in raw[middle:middle + count])
    path.write_bytes(raw)


def test_the_prepared_data_records_its_sha256_and_loading_verifies_it_once(tmp_path, monkeypatch):
    from stages.lib import io

    write_idx_dir(tmp_path / "idx")
    fetch(tmp_path, monkeypatch, **{"data.source": str(tmp_path / "idx")})
    folder = tmp_path / "data/mnist"
    assert sorted(p.name for p in folder.iterdir()) == ["SHA256SUMS", "test.pt", "train.pt"]
    assert (folder / "SHA256SUMS").read_text() == "".join(  # the format of sha256sum: `sha256sum -c` checks it
        f"{hashlib.sha256((folder / name).read_bytes()).hexdigest()}  {name}\n" for name in ("test.pt", "train.pt"))
    hashed, sha256_of = [], io.sha256_of
    monkeypatch.setattr(io, "sha256_of", lambda path: hashed.append(path) or sha256_of(path))
    for _ in range(3):
        load_split(folder, "test")
    assert hashed == [folder / "test.pt"]


def test_prepared_data_that_changed_is_refused_by_the_stages_with_how_to_rebuild_it(tmp_path, monkeypatch):
    """Before: 64 bytes flipped in train.pt (DVC does not verify its cache) trained another model, silently."""
    write_idx_dir(tmp_path / "idx")
    fetch(tmp_path, monkeypatch, **{"data.source": str(tmp_path / "idx"), "model.channels": [4, 8],
                                    "model.hidden": 16, "train.epochs": 1})
    flip(tmp_path / "data/mnist/train.pt")
    result = run_stage("train", "model1", "--data", "data/mnist", "--model", "models/model1.pt", cwd=tmp_path)
    assert_clean_failure(result, "data/mnist/train.pt: content differs from the sha256 that data/mnist/SHA256SUMS "
                                 "records", "rebuild the prepared data: dvc repro -f fetch_mnist")
    assert result.returncode == 2 and not (tmp_path / "models").exists()
    (tmp_path / "data/mnist/SHA256SUMS").unlink()
    with pytest.raises(StageError, match=r"test\.pt: no checksum in \S+SHA256SUMS, so its content cannot be verified"):
        load_split(tmp_path / "data/mnist", "test")


def test_a_checkpoint_records_the_sha256_of_its_weights_and_loading_verifies_it(tmp_path):
    import zipfile

    from stages.lib.models import CnnSpec, load_cnn, mnist_cnn, save_cnn

    spec = CnnSpec(channels=[4, 8], kernel_size=5, hidden=16)
    save_cnn(mnist_cnn(spec), spec, tmp_path / "model.pt")
    load_cnn(tmp_path / "model.pt", torch.device("cpu"))
    largest = max(zipfile.ZipFile(tmp_path / "model.pt").infolist(), key=lambda entry: entry.file_size)
    raw = bytearray((tmp_path / "model.pt").read_bytes())
    start = largest.header_offset + largest.file_size // 2  # inside the weights' bytes (torch reads no CRC)
    raw[start:start + 64] = bytes(b ^ 0xFF for b in raw[start:start + 64])
    (tmp_path / "model.pt").write_bytes(raw)
    with pytest.raises(StageError, match=r"model\.pt: weights differ from the sha256 the checkpoint records"):
        load_cnn(tmp_path / "model.pt", torch.device("cpu"))


def test_a_source_that_is_no_folder_is_refused_naming_only_the_valid_sources(tmp_path, monkeypatch):
    """mnist | sample | a folder of IDX files, as params.yaml says: there is no 'auto'."""
    from stages.lib import mnist

    with pytest.raises(StageError) as raised:
        fetch(tmp_path, monkeypatch, **{"data.source": "auto"})
    assert str(raised.value) == ("params.yaml: 'data.source' is 'auto', which is neither mnist, sample nor an existing "
                                 "folder of IDX files")
    assert "auto" not in mnist.__doc__ + mnist.import_mnist.__doc__ + mnist.load_mnist.__doc__
