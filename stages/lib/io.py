"""Atomic outputs and checked inputs.

A stage writes each output under a staging folder next to its final path and renames them all only
when every output has been written; on any error the staged files are removed, so a failed run
leaves no partial outputs behind.
"""
import hashlib
import json
import math
import os
import shutil
from contextlib import contextmanager
from pathlib import Path

import torch

from stages.lib.config import StageError


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


@contextmanager
def staged_outputs():
    """Yield `stage(path) -> temporary path`; all temporaries are renamed to their paths on success.

    The temporary lives in a hidden staging folder beside the output and keeps the output's own
    name, so writers that look at the name (savefig, to_csv, torch.save's archive root) behave
    exactly as for the final path and the bytes written are the same.
    """
    staged, staging_dirs = [], set()

    def stage(path):
        final = Path(path)
        staging = final.parent / f".staging-{os.getpid()}"
        staging.mkdir(parents=True, exist_ok=True)
        staging_dirs.add(staging)
        temporary = staging / final.name
        _remove(temporary)
        staged.append((temporary, final))
        return temporary

    try:
        yield stage
        for temporary, final in staged:
            _remove(final)
            os.replace(temporary, final)
    finally:
        for staging in staging_dirs:
            _remove(staging)


def _finite_or_none(obj):
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    if isinstance(obj, dict):
        return {k: _finite_or_none(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_finite_or_none(v) for v in obj]
    return obj


def write_json(path, obj):
    """JSON with NaN and inf written as null (strict JSON, readable by `dvc metrics`)."""
    Path(path).write_text(json.dumps(_finite_or_none(obj), indent=2, allow_nan=False) + "\n")


def read_json(path):
    path = Path(path)
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run the stage that writes it (dvc repro)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StageError(f"{path}: not valid JSON ({error}); rerun the stage that writes it") from None


def sha256(path):
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def load_tensors(path, expected):
    """Load a torch file of named tensors and check it has `expected` = {name: dtype}.

    Checkpoints are loaded with weights_only=True; a missing, truncated or foreign file is a
    StageError naming it.
    """
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; run `dvc repro` to produce it")
    try:
        tensors = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as error:  # torch raises several types for corrupt files
        raise StageError(f"{path}: cannot be read ({type(error).__name__}); delete it and rerun `dvc repro`") from None
    if not isinstance(tensors, dict):
        raise StageError(f"{path}: expected a dict of tensors, got {type(tensors).__name__}")
    for name, dtype in expected.items():
        if not isinstance(tensors.get(name), torch.Tensor):
            raise StageError(f"{path}: missing tensor '{name}'; rerun the stage that writes it")
        if dtype is not None and tensors[name].dtype != dtype:
            raise StageError(f"{path}: tensor '{name}' has dtype {tensors[name].dtype}, expected {dtype}")
    return tensors
