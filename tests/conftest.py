"""Shared helpers: small MNIST-format data the tests make, params files, running a stage's CLI."""
import copy
import gzip
import html
import json
import os
import re
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import yaml

from stages.lib.data import save_split, split_path
from stages.lib.params import read_yaml

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_PARAMS = read_yaml(ROOT / "params.yaml")


def idx_bytes(tensor, magic):
    """An IDX file's bytes for a uint8 tensor."""
    header = struct.pack(">I", magic) + b"".join(struct.pack(">I", d) for d in tensor.shape)
    return header + tensor.to(torch.uint8).numpy().tobytes()


def synthetic_digits(n, seed=0):
    """n 28 x 28 uint8 images whose label is where a bright 6 x 6 block sits (easy to learn), plus noise."""
    generator = torch.Generator().manual_seed(seed)
    labels = torch.arange(n) % 10
    images = torch.randint(0, 60, (n, 28, 28), generator=generator, dtype=torch.int64)
    for i, label in enumerate(labels.tolist()):
        row, col = divmod(label, 5)
        images[i, 4 + row * 12: 10 + row * 12, 1 + col * 5: 7 + col * 5] = 250
    return images.to(torch.uint8), labels.to(torch.int64)


def write_idx_dir(directory, n_train=60, n_test=20, gz=False):
    """The four MNIST IDX files of synthetic digits; returns {file name: bytes written}."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    written = {}
    for prefix, n, seed in (("train", n_train, 1), ("t10k", n_test, 2)):
        images, labels = synthetic_digits(n, seed)
        for kind, tensor, magic in (("images-idx3", images, 0x803), ("labels-idx1", labels, 0x801)):
            data = idx_bytes(tensor, magic)
            name = f"{prefix}-{kind}-ubyte" + (".gz" if gz else "")
            if gz:
                data = gzip.compress(data, mtime=0)
            (directory / name).write_bytes(data)
            written[name] = data
    return written


def params_with(**changes):
    """The default params with dotted-key changes, e.g. params_with(**{"train.lr": 0.5})."""
    params = copy.deepcopy(DEFAULT_PARAMS)
    for key, value in changes.items():
        node = params
        *parents, last = key.split(".")
        for part in parents:
            node = node[part]
        node[last] = value
    return params


def check_params_with(tmp_path, **changes):
    """The whole-file check (the check_params stage, in-process) of the default params with dotted-key
    changes; returns the sections, typed as the stages read them."""
    from stages.check_params import load_all

    return load_all(write_params(tmp_path, params_with(**changes)))


def write_params(directory, params):
    path = Path(directory) / "params.yaml"
    path.write_text(yaml.safe_dump(params, sort_keys=False))
    return path


def as_a_new_process():
    """Forget the inputs earlier in-process stage runs (or the test itself) read: in a real run each stage
    is its own process, and the output staging refuses to replace only what that process read."""
    from stages.lib import io

    io._inputs_read.clear()


@pytest.fixture(autouse=True)
def _each_test_as_a_new_process():
    as_a_new_process()


def run_main(module, *args, cwd):
    """Call stages.<module>.main(args) in cwd, in this process (no interpreter start-up): a StageError
    propagates. The torch thread count is restored afterwards."""
    import importlib

    threads, previous = torch.get_num_threads(), os.getcwd()
    os.chdir(cwd)
    as_a_new_process()
    try:
        importlib.import_module(f"stages.{module}").main([str(a) for a in args])
    finally:
        os.chdir(previous)
        torch.set_num_threads(threads)


def run_stage(module, *args, cwd):
    """Run `python -m stages.<module>` in cwd; the stages package comes from this checkout."""
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run([sys.executable, "-m", f"stages.{module}", *args], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def assert_clean_failure(result, *needles):
    """Exit status != 0 and one line on stderr that names what is wrong."""
    assert result.returncode != 0, result.stdout + result.stderr
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for needle in needles:
        assert needle in lines[0], lines[0]


def files_under(directory):
    return sorted(str(p.relative_to(directory)) for p in Path(directory).rglob("*") if p.is_file())


def make_mnist_dir(path):
    """path/data/mnist with a small synthetic MNIST, as fetch_mnist writes it."""
    (path / "data/mnist").mkdir(parents=True)
    for split, n, seed in (("train", 600, 1), ("test", 200, 2)):
        save_split(split_path(path / "data/mnist", split), *synthetic_digits(n, seed))
    return path


@pytest.fixture
def mnist_dir(tmp_path):
    return make_mnist_dir(tmp_path)


def tiny_classifier():
    """A small fixed network on 28 x 28 images (weights drawn under seed 0), in eval mode."""
    from torch import nn

    torch.manual_seed(0)
    return nn.Sequential(nn.Flatten(), nn.Linear(784, 32), nn.Tanh(), nn.Linear(32, 10)).eval()


@pytest.fixture(scope="module")
def fixed_model():
    return tiny_classifier()


class DvcProject:
    """A temporary git + DVC copy of this repository's pipeline (never the working tree)."""

    def __init__(self, path):
        self.path = path
        self.env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
                    "PYTHONPATH": str(path), "DVC_NO_ANALYTICS": "1"}
        self.dvc_command = [sys.executable, "-m", "dvc"]

    def run(self, *args, check=True):
        result = subprocess.run(args, cwd=self.path, env=self.env, capture_output=True, text=True, timeout=900)
        if check:
            assert result.returncode == 0, f"{args}\n{result.stdout}\n{result.stderr}"
        return result

    def dvc(self, *args, check=True):
        return self.run(*self.dvc_command, *args, check=check)

    def stage_names(self):
        return self.dvc("stage", "list", "--name-only").stdout.split()


@pytest.fixture
def dvc_project(tmp_path):
    return make_dvc_project(tmp_path)


def make_dvc_project(tmp_path):
    path = tmp_path / "repo"
    path.mkdir()
    for name in ("dvc.yaml", "params.yaml", ".gitignore", ".dvcignore"):
        if (ROOT / name).exists():
            shutil.copy(ROOT / name, path / name)
    shutil.copytree(ROOT / "reference", path / "reference")
    shutil.copytree(ROOT / ".dvc", path / ".dvc", ignore=shutil.ignore_patterns("tmp", "cache"))
    shutil.copytree(ROOT / "stages", path / "stages", ignore=shutil.ignore_patterns("__pycache__"))
    project = DvcProject(path)
    project.run("git", "init", "-q")
    project.run("git", "add", "-A")
    project.run("git", "-c", "user.name=test", "-c", "user.email=test@example.com", "commit", "-qm", "copy")
    return project


CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def render_offline(page, workdir):
    """(DOM after the page's scripts ran, screenshot path) of an HTML file in headless Chromium with
    the network off (a fresh network namespace when possible). Skips the test where Chromium is missing."""
    if CHROMIUM is None:
        pytest.skip("Chromium is not installed (apt-get install chromium); .ci/run installs it")
    no_network = ["unshare", "--net"] if shutil.which("unshare") and subprocess.run(
        ["unshare", "--net", "true"], capture_output=True).returncode == 0 else []
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
             "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
             f"--user-data-dir={workdir / 'chromium-profile'}", "--virtual-time-budget=20000",
             "--window-size=1280,2400", "--hide-scrollbars"]
    url = Path(page).resolve().as_uri()
    dom = subprocess.run([*no_network, CHROMIUM, *flags, "--dump-dom", url], capture_output=True, text=True,
                         timeout=180)
    assert dom.returncode == 0, dom.stderr[-2000:]
    screenshot = workdir / "screenshot.png"
    shot = subprocess.run([*no_network, CHROMIUM, *flags, f"--screenshot={screenshot}", url], capture_output=True,
                          text=True, timeout=180)
    assert shot.returncode == 0 and screenshot.is_file(), shot.stderr[-2000:]
    return dom.stdout, screenshot


def assert_no_network_references(text):
    """No script, stylesheet or image is loaded from http(s)."""
    import re

    loads = re.findall(r"<(?:script|link|img)\b[^>]*\b(?:src|href)\s*=\s*[\"']?(https?:)", text, re.IGNORECASE)
    assert not loads, f"{len(loads)} network references"


def assert_not_blank(screenshot):
    from PIL import Image, ImageStat

    image = Image.open(screenshot).convert("L")
    assert ImageStat.Stat(image).stddev[0] > 5, "the screenshot is blank"


CHART_CHECK = ROOT / "tests/chart_check.js"


def charts_drawn(page, workdir):
    """(What each chart of an HTML page drew, screenshot path): per vegaEmbed call, {chart, items,
    distinct_x} (the data marks' items with finite coordinates, their distinct x positions) or {chart,
    error}; from headless Chromium with tests/chart_check.js injected after the page's first script, the
    Vega bundle."""
    text = Path(page).read_text()
    end = text.index("</script>") + len("</script>")
    checked = Path(workdir) / "chart-check.html"
    checked.write_text(text[:end] + "<script>" + CHART_CHECK.read_text() + "</script>" + text[end:])
    dom, screenshot = render_offline(checked, Path(workdir))
    found = re.findall(r'<pre id="chart-check">(.*?)</pre>', dom, re.S)
    assert found, "the chart check wrote nothing: the page's scripts did not run"
    return json.loads(html.unescape(found[-1])), screenshot


def assert_every_chart_drew(page, workdir):
    """Every chart of the page drew data marks at two or more x positions, and the page is not blank."""
    charts, screenshot = charts_drawn(page, workdir)
    calls = len(re.findall(r"vegaEmbed\('#", Path(page).read_text()))
    assert calls and len(charts) == calls, f"{page}: {len(charts)} of {calls} charts rendered"
    empty = [c for c in charts if "error" in c or c["items"] == 0 or c["distinct_x"] < 2]
    assert not empty, f"{page}: charts that drew no data: {empty}"
    assert_not_blank(screenshot)
    return charts
