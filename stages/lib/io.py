"""Atomic outputs, checked inputs, and the run log of wall-clock figures.

A stage writes each output under a staging folder next to its final path and renames them all only
when every output has been written; on any error the staged files are removed, so a failed run
leaves no partial outputs behind, and a write that fails (a full disk, a file-size limit) is one line
naming the output's final path. An output replaces only an output of its own kind (output_kind: a
checkpoint over a checkpoint, a checksummed folder over one, a figures folder over one, a .csv file
over a .csv file, ...), never one of the stage's own inputs (every reader here records the paths it
read): anything else is refused with one line naming the path, and nothing is touched. The staging
folders a killed run left behind are removed by the next run of any stage.

What the readers here return is checked: every number in a JSON or CSV output is finite, and a file
listed in its folder's SHA256SUMS has the content recorded there.
"""
import hashlib
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
OUTPUT_FOLDERS = ("data", "metrics", "models", "plots", "report")  # every dvc.yaml output lies in one (tests check)
CHECKSUMS = "SHA256SUMS"  # `sha256sum` format: `sha256sum -c SHA256SUMS` in the folder checks it too
FIGURE_SUFFIXES = (".png", ".gif")
FILE_ENDINGS = (".json", ".csv", ".md", ".html", ".txt", *FIGURE_SUFFIXES, "-ubyte")  # "-ubyte": MNIST's IDX files
EMPTY_FOLDER = "an empty folder"
NUMBER = (int, float)  # what a metric's value must be (bool is an int to Python: refused apart)
_inputs_read = set()   # every input file this process read through this module, resolved
_verified = set()      # (path, size, mtime) of every file whose checksum this process verified


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


def _remove_if_stale(staging):
    pid = staging.name.removeprefix(STAGING_PREFIX)
    if pid.isdigit() and int(pid) != os.getpid() and not _alive(int(pid)):
        _remove(staging)


def _clean_stale_staging():
    """Remove the staging folders that killed runs (kill -9) left anywhere in OUTPUT_FOLDERS (a walk of a
    few hundred entries: milliseconds)."""
    for folder in OUTPUT_FOLDERS:
        for parent, folders, _ in os.walk(folder):
            for name in [f for f in folders if f.startswith(STAGING_PREFIX)]:
                folders.remove(name)
                _remove_if_stale(Path(parent) / name)


def output_kind(path):
    """The kind of output that the existing `path` holds, by its content or its name: "a checkpoint" (a
    file that loads as models.save_cnn writes one), "a file of tensors" (another dict that torch loads),
    "a .csv file" (each of FILE_ENDINGS), "a checksummed folder" (its SHA256SUMS and the files listed
    there), "a folder of figures", EMPTY_FOLDER; None for anything else."""
    path = Path(path)
    if path.is_dir():
        entries = list(path.iterdir())
        if not entries:
            return EMPTY_FOLDER
        if not all(entry.is_file() for entry in entries):
            return None
        names = {entry.name for entry in entries}
        if CHECKSUMS in names:
            try:
                return "a checksummed folder" if names == {CHECKSUMS, *_listed_checksums(path)} else None
            except StageError:
                return None
        return "a folder of figures" if all(entry.suffix in FIGURE_SUFFIXES for entry in entries) else None
    with open(path, "rb") as file:
        is_zip = file.read(4) == b"PK\x03\x04"  # what torch.save writes
    if is_zip:
        import torch

        try:
            content = torch.load(path, map_location="cpu", weights_only=True, mmap=True)
        except Exception:  # torch raises several types for files it cannot load
            content = None
        if isinstance(content, dict):
            return "a checkpoint" if {"spec", "state_dict"} <= content.keys() else "a file of tensors"
    ending = next((e for e in FILE_ENDINGS if path.name.endswith(e)), None)
    return None if ending is None else f"a {ending} file"


def _refuse_another_kind(temporary, final):
    """A StageError unless the output at `temporary` may replace what `final` holds."""
    if not final.exists():
        return
    if final.is_dir() != temporary.is_dir():
        kinds = ("folder", "file") if final.is_dir() else ("file", "folder")
        raise StageError(f"{final}: is an existing {kinds[0]}, and this output is a {kinds[1]}; name a "
                         f"{kinds[1]} path (no output was changed)")
    held, new = output_kind(final), output_kind(temporary)
    if held is None or (held != new and held != EMPTY_FOLDER):
        if held is None and final.is_dir():
            names = sorted(p.name for p in final.iterdir())
            held = f"other files ({', '.join(names[:3])}{', …' if len(names) > 3 else ''})"
        raise StageError(f"{final}: holds {held or 'a file that no stage writes'}, and this output is "
                         f"{new or 'of another kind'}; a stage replaces only an output of the same kind: name "
                         "another path (no output was changed)")


@contextmanager
def staged_outputs():
    """Yield `stage(path) -> temporary path`; all temporaries replace their paths on success.

    The temporary lives in a hidden staging folder beside the output and keeps the output's own
    name, so writers that look at the name (savefig, to_csv, torch.save's archive root) behave
    exactly as for the final path and the bytes written are the same. The outputs are committed
    together: if one cannot be put in place, those already replaced are put back as they were.
    """
    staged, staging_dirs, created = [], set(), []
    _clean_stale_staging()

    def stage(path):
        final = Path(path)
        clash = _clashing_input(final)
        if clash is not None:
            what = "is" if clash == final.resolve() else "holds"
            shown = clash.relative_to(Path.cwd()) if clash.is_relative_to(Path.cwd()) else clash
            raise StageError(f"{final}: {what} one of this stage's inputs ({shown}); name another output path "
                             "(no output was changed)")
        not_a_folder = next((d for d in final.parents if d.exists() and not d.is_dir()), None)
        if not_a_folder is not None:
            raise StageError(f"{final}: {not_a_folder} is a file, not a folder; name a path in a folder "
                             "(no output was changed)")
        missing = [d for d in (final.parent, *final.parent.parents) if not d.exists()]
        try:
            final.parent.mkdir(parents=True, exist_ok=True)
            created.extend(missing)  # innermost first
            staging = final.parent / f"{STAGING_PREFIX}{os.getpid()}"
            if staging not in staging_dirs:
                for stale in final.parent.glob(STAGING_PREFIX + "*"):  # outputs outside OUTPUT_FOLDERS
                    _remove_if_stale(stale)
                staging.mkdir(exist_ok=True)
                staging_dirs.add(staging)
        except OSError as error:  # the user's path in the message, never the staging folder's
            raise StageError(f"{final}: cannot be written ({error.strerror or error}); no output was changed") from None
        temporary = staging / final.name
        _remove(temporary)
        staged.append((temporary, final, str(path).endswith(("/", os.sep))))
        return temporary

    committed = False
    try:
        yield stage
        _commit(staged)
        committed = True
    except OSError as error:  # a full disk, a file-size limit: named by the output's final path
        output = _failed_output(error, [final for _, final, _ in staged])
        if output is None:
            raise
        raise StageError(f"{output}: could not be written ({error.strerror or error}); no output was changed") from None
    finally:
        _inputs_read.clear()  # this run's inputs: the next run in this process reads its own
        for staging in staging_dirs:
            _remove(staging)
        if not committed:  # the folders made for outputs that never came
            for folder in created:
                if folder.is_dir() and not any(folder.iterdir()):
                    folder.rmdir()


def _failed_output(error, finals):
    """The output an OSError is about: the final path of the file it names, or, when it names none (a
    write that fails names no file), the output staged last; None when it names a file that is no output."""
    if not error.filename:
        return finals[-1] if finals else None
    named = Path(os.fsdecode(error.filename))
    return output_name(named) if output_name(named) != named or named in finals else None


def output_name(path):
    """The final path of a staged temporary, or of a file inside one (the path itself if it is neither)."""
    parts = Path(path).parts
    staging = [i for i, part in enumerate(parts) if part.startswith(STAGING_PREFIX)]
    return Path(*parts[:staging[-1]], *parts[staging[-1] + 1:]) if staging else Path(path)


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
    for temporary, final, names_folder in staged:
        if names_folder and not temporary.is_dir():
            raise StageError(f"{final}/: names a folder (it ends in '/'), and this output is a file; name a file "
                             "path (no output was changed)")
        _refuse_another_kind(temporary, final)
        if not os.access(final.parent, os.W_OK) or (final.exists() and not os.access(final, os.W_OK)):
            raise StageError(f"{final}: cannot be written (permission denied); no output was changed")
    done = []  # [final, its previous version moved aside or None, replaced]
    try:
        for temporary, final, _ in staged:
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


def _non_finite_cell(path, table):
    """(column, line) of the first infinite or NaN number in table, read from the CSV at path; an empty
    cell (a missing value) is none."""
    numbers = table.select_dtypes("number")
    bad = numbers.isna() | numbers.isin([math.inf, -math.inf])
    if not bad.any(axis=None):
        return None
    raw = pd.read_csv(path, dtype=str, keep_default_na=False)  # to tell NaN written out from an empty cell
    for column in numbers.columns:
        for row in bad.index[bad[column]]:
            if raw.at[row, column].strip():
                return column, row + 2  # the file's line: the header is line 1
    return None


def read_csv(path, required=(), numeric=()):
    """A CSV table written by a stage, with at least the `required` and `numeric` columns, the latter
    holding numbers (or nothing), every number finite; a missing or unreadable file, a missing column, a
    column of text where numbers belong or a NaN or infinite number is a StageError naming it."""
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
    bad = _non_finite_cell(path, table)
    if bad is not None:
        column, line = bad
        raise StageError(f"{path}: column '{column}' line {line}: {table.at[line - 2, column]} is not a finite "
                         "number; rerun the stage that writes it")
    return table


def _non_finite_key(value, key=""):
    """The key (dotted, [i] for a list item) of the first NaN or infinite number in a JSON value, or None."""
    if isinstance(value, float) and not math.isfinite(value):
        return key
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for name, item in items:
        found = _non_finite_key(item, f"{key}[{name}]" if isinstance(name, int) else f"{key}.{name}" if key else name)
        if found is not None:
            return found
    return None


def read_json(path, required=(), rerun="the stage that writes it"):
    """A JSON file written by a stage, holding at least the `required` keys: a sequence of names, or a
    mapping of name to the type (or tuple of types; NUMBER for a number) its value must have, and no NaN
    or infinite number. Anything else (missing, unreadable, emptied, a number turned into text or NaN) is
    a StageError naming the file, the key and what to rerun."""
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
    key = _non_finite_key(value)
    if key is not None:
        raise StageError(f"{path}: '{key}' is not a finite number (NaN or infinite); rerun {rerun}")
    return value


def sha256_of(path):
    with open(path, "rb") as file:
        return hashlib.file_digest(file, "sha256").hexdigest()


def _listed_checksums(folder):
    """{file name: sha256} that folder's SHA256SUMS lists ({} when it has none); a StageError if unreadable."""
    path = Path(folder) / CHECKSUMS
    if not path.is_file():
        return {}
    listed = {}
    for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1):
        digest, _, name = line.partition("  ")
        if len(digest) != 64 or not name:
            raise StageError(f"{path}: line {number} is not '<sha256>  <file name>'")
        listed[name] = digest
    return listed


def record_checksum(path):
    """Write path's sha256 into its folder's SHA256SUMS (the line for its name added or replaced)."""
    path = Path(path)
    listed = {**_listed_checksums(path.parent), path.name: sha256_of(path)}
    (path.parent / CHECKSUMS).write_text("".join(f"{digest}  {name}\n" for name, digest in sorted(listed.items())))


def verify_checksum(path, remedy):
    """Refuse (a StageError that ends with `remedy`) a file whose content is not what its folder's
    SHA256SUMS records, or that it does not list; each file is hashed once per process."""
    path = Path(path)
    stat = path.stat()
    seen = (path.resolve(), stat.st_size, stat.st_mtime_ns)
    if seen in _verified:
        return
    recorded = _listed_checksums(path.parent).get(path.name)
    if recorded is None:
        raise StageError(f"{path}: no checksum in {path.parent / CHECKSUMS}, so its content cannot be verified; {remedy}")
    if sha256_of(path) != recorded:
        raise StageError(f"{path}: content differs from the sha256 that {path.parent / CHECKSUMS} records (the file "
                         f"changed after it was written); {remedy}")
    _verified.add(seen)


def tensors_sha256(tensors):
    """sha256 of a dict of tensors (a state_dict): each one's name, dtype, shape and bytes, in order."""
    import torch

    digest = hashlib.sha256()
    for name, tensor in tensors.items():
        digest.update(f"{name} {tensor.dtype} {list(tensor.shape)}\n".encode())
        digest.update(tensor.detach().cpu().contiguous().reshape(-1).view(torch.uint8).numpy())
    return digest.hexdigest()


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
