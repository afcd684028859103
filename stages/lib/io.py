"""Atomic outputs, checked inputs, and the run log of wall-clock figures.

A stage writes each output under a staging folder next to its final path and renames them all only
when every output has been written; on any error the staged files are removed, so a failed run
leaves no partial outputs behind. An output may not replace one of the stage's own inputs (every
reader here records the paths it read), nor a folder by a file or a file by a folder: such a run is
refused with one line naming the path, and nothing is touched.
"""
import json
import math
import os
import shutil
import time
from contextlib import contextmanager
from pathlib import Path

import pandas as pd

from stages.lib.errors import StageError, warn

STAGING_PREFIX = ".staging-"
NUMBER = (int, float)  # what a metric's value must be (bool is an int to Python: refused apart)
_inputs_read = set()   # every input file this process read through this module, resolved


def mark_input(path):
    """Record `path` as an input of this run: staged_outputs refuses to replace it."""
    _inputs_read.add(Path(path).resolve())


def _clashing_input(final):
    """The input that an output at `final` would replace or lie inside, or None."""
    final = final.resolve()
    return next((i for i in sorted(_inputs_read) if i == final or final in i.parents), None)


def _remove(path):
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    elif path.exists() or path.is_symlink():
        path.unlink()


def _alive(pid):
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def _clean_stale_staging(folder):
    """Remove staging folders that a killed run (kill -9) left behind."""
    for staging in folder.glob(STAGING_PREFIX + "*"):
        pid = staging.name.removeprefix(STAGING_PREFIX)
        if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
            _remove(staging)


@contextmanager
def staged_outputs():
    """Yield `stage(path) -> temporary path`; all temporaries replace their paths on success.

    The temporary lives in a hidden staging folder beside the output and keeps the output's own
    name, so writers that look at the name (savefig, to_csv, torch.save's archive root) behave
    exactly as for the final path and the bytes written are the same. The outputs are committed
    together: if one cannot be put in place, those already replaced are put back as they were.
    """
    staged, staging_dirs, created = [], set(), []

    def stage(path):
        final = Path(path)
        clash = _clashing_input(final)
        if clash is not None:
            what = "is" if clash == final.resolve() else "holds"
            shown = clash.relative_to(Path.cwd()) if clash.is_relative_to(Path.cwd()) else clash
            raise StageError(f"{final}: {what} one of this stage's inputs ({shown}); name another output path "
                             "(no output was changed)")
        missing = [d for d in (final.parent, *final.parent.parents) if not d.exists()]
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            created.extend(missing)  # innermost first
            staging = final.parent / f"{STAGING_PREFIX}{os.getpid()}"
            if staging not in staging_dirs:
                _clean_stale_staging(final.parent)
                staging.mkdir(exist_ok=True)
                staging_dirs.add(staging)
        except OSError as error:  # the user's path in the message, never the staging folder's
            raise StageError(f"{final}: cannot be written ({error.strerror or error}); no output was changed") from None
        temporary = staging / final.name
        _remove(temporary)
        staged.append((temporary, final))
        return temporary

    committed = False
    try:
        yield stage
        _commit(staged)
        committed = True
    finally:
        _inputs_read.clear()  # this run's inputs: the next run in this process reads its own
        for staging in staging_dirs:
            _remove(staging)
        if not committed:  # the folders made for outputs that never came
            for folder in created:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def output_name(path):
    """The final path of a staged temporary (the path itself if it is not one)."""
    path = Path(path)
    return path.parent.parent / path.name if path.parent.name.startswith(STAGING_PREFIX) else path


def save_tensors(obj, path):
    """torch.save to path; a write that fails or comes up short (a full disk, a file-size limit), which
    torch reports as a RuntimeError, is one StageError naming the output."""
    import torch  # here and in load_tensors, not at the top: the report stage starts without torch (1.3 s)

    try:
        torch.save(obj, path)
    except RuntimeError as error:
        raise StageError(f"{output_name(path)}: could not be written in full ({' '.join(str(error).split())}); "
                         "is the disk full or a file-size limit set?") from None


def _commit(staged):
    for temporary, final in staged:
        if final.exists() and final.is_dir() != temporary.is_dir():
            kinds = ("folder", "file") if final.is_dir() else ("file", "folder")
            raise StageError(f"{final}: is an existing {kinds[0]}, and this output is a {kinds[1]}; name a "
                             f"{kinds[1]} path (no output was changed)")
        if not os.access(final.parent, os.W_OK) or (final.exists() and not os.access(final, os.W_OK)):
            raise StageError(f"{final}: cannot be written (permission denied); no output was changed")
    done = []  # [final, its previous version moved aside or None, replaced]
    try:
        for temporary, final in staged:
            previous = None
            if final.exists() or final.is_symlink():
                previous = temporary.parent / f".previous-{final.name}"
                os.replace(final, previous)
            done.append([final, previous, False])
            os.replace(temporary, final)
            done[-1][2] = True
    except BaseException:
        for final, previous, replaced in reversed(done):
            if replaced:
                _remove(final)
            if previous is not None:
                os.replace(previous, final)
        raise


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


def write_csv(path, rows):
    """Rows (dicts or a DataFrame) as CSV, floats with 9 significant digits."""
    pd.DataFrame(rows).to_csv(path, index=False, float_format="%.9g")


def read_csv(path, required=(), numeric=()):
    """A CSV table written by a stage, with at least the `required` and `numeric` columns, the latter
    holding numbers (or nothing); a missing or unreadable file, a missing column or a column of text
    where numbers belong is a StageError naming it."""
    mark_input(path)
    try:
        table = pd.read_csv(path)
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run `dvc repro` to make it") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise StageError(f"{path}: not a readable CSV ({error}); rerun the stage that writes it") from None
    missing = [column for column in (*required, *numeric) if column not in table.columns]
    if missing:
        raise StageError(f"{path}: missing column '{missing[0]}'; rerun the stage that writes it")
    for column in numeric:
        if not (pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column])):
            raise StageError(f"{path}: column '{column}' holds text where numbers belong; rerun the stage that writes it")
    return table


def read_json(path, required=(), rerun="the stage that writes it"):
    """A JSON file written by a stage, holding at least the `required` keys: a sequence of names, or a
    mapping of name to the type (or tuple of types; NUMBER for a number) its value must have. Anything
    else (missing, unreadable, emptied, a number turned into text) is a StageError naming the file, the
    key and what to rerun."""
    path = Path(path)
    mark_input(path)
    try:
        value = json.loads(path.read_text())
    except FileNotFoundError:
        raise StageError(f"{path}: not found; run the stage that writes it (dvc repro)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as error:
        raise StageError(f"{path}: not valid JSON ({error}); rerun {rerun}") from None
    missing = [key for key in required if not isinstance(value, dict) or key not in value]
    if missing:
        raise StageError(f"{path}: missing '{missing[0]}'; rerun {rerun}")
    for key, kind in (required.items() if isinstance(required, dict) else ()):
        kinds = kind if isinstance(kind, tuple) else (kind,)
        if not isinstance(value[key], kinds) or (isinstance(value[key], bool) and bool not in kinds):
            expected = "a number" if set(kinds) == set(NUMBER) else " or ".join(k.__name__ for k in kinds)
            raise StageError(f"{path}: '{key}' must be {expected}, got {value[key]!r}; rerun {rerun}")
    return value


def load_tensors(path, expected):
    """Load a torch file of named tensors and check it has `expected` = {name: dtype}.

    Checkpoints are loaded with weights_only=True; a missing, truncated or foreign file is a
    StageError naming it.
    """
    import torch

    path = Path(path)
    mark_input(path)
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


RUN_LOG = "logs/runs.jsonl"


def log_run(stage_name, **figures):
    """Append wall-clock figures (seconds, images/s: they change from run to run) to the git-ignored
    run log, so that DVC-tracked outputs stay byte-identical on a rerun."""
    record = {"stage": stage_name, "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), **figures}
    try:  # after the outputs are committed: a log that cannot be written must not fail the stage
        Path(RUN_LOG).parent.mkdir(parents=True, exist_ok=True)
        with open(RUN_LOG, "a") as log:
            log.write(json.dumps(_finite_or_none(record)) + "\n")
    except OSError as error:
        warn(f"{RUN_LOG}: the run's figures were not logged ({error.strerror or error})")
