"""Reading and validating params.yaml, and the command-line wrapper every stage runs under.

Every stage validates all of its params before it computes or writes anything. A bad value raises
`StageError` with one line that names the key; `run` prints that line and exits with status 2.
"""
import argparse
import math
import random
import sys
from pathlib import Path

import numpy as np
import torch
import yaml

PARAMS_FILE = "params.yaml"


class StageError(Exception):
    """A problem the user can fix: bad params, a missing or corrupt input file, unreachable data."""


def run(main):
    """Run a stage's main(); a StageError becomes one line on stderr and exit status 2."""
    try:
        main()
    except StageError as error:
        print(f"error: {error}", file=sys.stderr)
        sys.exit(2)


def parser(description):
    """An argument parser with the --params option every stage takes."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--params", default=PARAMS_FILE, help="params file (default: %(default)s)")
    return p


def load_params(path=PARAMS_FILE):
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; run the stage from the repository root")
    try:
        params = yaml.safe_load(path.read_text())
    except yaml.YAMLError as error:
        raise StageError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    if not isinstance(params, dict):
        raise StageError(f"{path}: expected a mapping of sections at the top level")
    return params


def value(params, key):
    """The value at a dotted key such as 'train.batch_size'."""
    node = params
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            raise StageError(f"params.yaml: missing key '{key}'")
        node = node[part]
    return node


def _bad(key, expected, got):
    return StageError(f"params.yaml: '{key}' must be {expected}, got {got!r}")


def check_number(key, x, *, integer=False, low=None, high=None, low_open=False, high_open=False):
    """Validate one number against an interval; the message names the key."""
    kind = "an integer" if integer else "a number"
    bounds = []
    if low is not None:
        bounds.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        bounds.append(f"{'<' if high_open else '<='} {high}")
    expected = " ".join([kind] + ([" and ".join(bounds)] if bounds else []))
    if isinstance(x, bool) or not isinstance(x, (int, float)) or (integer and not isinstance(x, int)):
        raise _bad(key, expected, x)
    if not math.isfinite(x):
        raise _bad(key, expected, x)
    if low is not None and (x < low or (low_open and x == low)):
        raise _bad(key, expected, x)
    if high is not None and (x > high or (high_open and x == high)):
        raise _bad(key, expected, x)
    return x


def number(params, key, *, optional=False, **bounds):
    """The number at `key`, checked against bounds (see check_number); None allowed if optional."""
    x = value(params, key)
    if optional and x is None:
        return None
    return check_number(key, x, **bounds)


def number_list(params, key, *, min_len=1, **bounds):
    """A list of numbers at `key`, each checked against bounds."""
    xs = value(params, key)
    if not isinstance(xs, list) or len(xs) < min_len:
        raise _bad(key, f"a list of at least {min_len} number(s)", xs)
    return [check_number(f"{key}[{i}]", x, **bounds) for i, x in enumerate(xs)]


def choice(params, key, options):
    x = value(params, key)
    if x not in options:
        raise _bad(key, "one of " + ", ".join(map(str, options)), x)
    return x


def text(params, key):
    x = value(params, key)
    if not isinstance(x, str) or not x:
        raise _bad(key, "a non-empty string", x)
    return x


def resolve_device(params, key="device"):
    """'auto' picks the GPU when there is one; 'cpu' and 'cuda' force a device."""
    name = choice(params, key, ["auto", "cpu", "cuda"])
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    elif name == "cuda" and not torch.cuda.is_available():
        raise StageError(f"params.yaml: '{key}' is 'cuda' but no GPU is available; use 'auto' or 'cpu'")
    return torch.device(name)


def seed_everything(seed):
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def warn(message):
    print(f"warning: {message}", file=sys.stderr)


def interval(params, key):
    """[low, high] with low < high."""
    x = value(params, key)
    if not isinstance(x, list) or len(x) != 2:
        raise _bad(key, "[low, high]", x)
    low, high = (check_number(f"{key}[{i}]", v) for i, v in enumerate(x))
    if not low < high:
        raise _bad(key, "[low, high] with low < high", x)
    return low, high
