"""What every stage's params have in common: params.yaml read as DVC reads it, strict typed sections,
and one error line naming the key. The schema of each section sits with the code that reads it (a
stage's own section in the stage's module, a shared one in its library room); a stage validates the
sections it reads, and stages/check_params.py validates the whole file before any stage runs.

The file is read as YAML 1.2, as DVC reads it, so `1e-05`, `1.0e9` and `.5` are numbers, as
`dvc exp run -S` writes them; a key written twice, an unknown key, a value of the wrong type or out of
range is one `StageError` line that names the key.
"""
import difflib
import typing
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from stages.lib.errors import StageError
from stages.lib.io import mark_input

PARAMS_FILE = "params.yaml"
MAX_SEED = 2 ** 32 - 1  # every seed fits torch.manual_seed and the attacks' per-image seeds (seed x 1e6 + i)

Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0, le=MAX_SEED)]
Positive = Annotated[float, Field(gt=0)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]  # used in file and stage names


class Section(BaseModel):
    """A section of params.yaml: every key known, typed, finite, and frozen once read."""
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


class StageParams(Section):
    """The top-level keys one stage reads, each section validated whole; the file's other sections
    belong to other stages (stages/check_params.py checks that none is unknown)."""
    model_config = ConfigDict(extra="ignore")


def unique(values):
    if len(set(values)) != len(values):
        raise ValueError(f"must not repeat a value, got {values!r}")
    return values


def read_yaml(path):
    """A YAML file as DVC reads it: YAML 1.2, and a key written twice is an error."""
    path = Path(path)
    mark_input(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; run the stage from the repository root")
    try:
        return YAML(typ="safe", pure=True).load(path.read_text())
    except RecursionError:
        raise StageError(f"{path}: nested too deeply to be read (no params section nests more than a few "
                         "levels)") from None
    except YAMLError as error:
        if type(error).__name__ == "DuplicateKeyError":
            mark = error.problem_mark
            raise StageError(f"{path}: line {mark.line + 1}: {error.problem}; write each key once") from None
        raise StageError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None
    except UnicodeDecodeError:
        raise StageError(f"{path}: not a text file (not UTF-8); restore it with `git checkout {path}`") from None


def read_mapping(path):
    """The params file's top-level mapping, or one StageError line."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise StageError(f"{path}: expected a mapping of sections at the top level")
    return raw


def load_params(schema, path=PARAMS_FILE):
    """The keys `schema` (a StageParams) names, validated; any problem is one StageError naming the key."""
    return validate_params(schema, read_mapping(path), Path(path).name)


def validate_params(schema, raw, name=PARAMS_FILE):
    """The keys `schema` names in `raw`, the file `name`'s top-level mapping; or one StageError line."""
    try:
        return schema.model_validate(raw)
    except ValidationError as error:
        raise StageError(describe(error.errors()[0], schema, name)) from None
    except RecursionError:  # a value nested thousands of levels deep, past any schema's depth
        raise StageError(f"{name}: a value is nested too deeply (no params section nests more than a few "
                         "levels)") from None


def dotted(loc):
    key = ""
    for part in (p for p in loc if p != "[key]"):  # pydantic's marker for an error in a mapping's key
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def unknown_key(name, key, allowed, where):
    """The line for a key that no schema knows, with the nearest known one."""
    *parents, last = key.split(".")
    initials = "".join(word[:1] for word in last.split("_"))  # learning_rate -> lr
    near = difflib.get_close_matches(last, allowed, n=1, cutoff=0.6) or [k for k in allowed if k == initials]
    hint = f" (did you mean '{'.'.join([*parents, near[0]])}'?)" if near else ""
    return f"{name}: unknown key '{key}'{hint}; {where} allows: {', '.join(allowed)}"


def describe(error, schema, name=PARAMS_FILE):
    """One line for one pydantic error, naming the key as it is written in params.yaml."""
    key = dotted(error["loc"])
    if error["type"] == "missing":
        return f"{name}: missing key '{key}'"
    if error["type"] == "extra_forbidden":
        return unknown_key(name, key, allowed_keys(schema, error["loc"][:-1]),
                           dotted(error["loc"][:-1]) or "the top level")
    message = error["msg"]
    for prefix, replacement in (("Value error, ", ""), ("Input should be", "must be"),
                                ("List should have", "must have"), ("String should match", "must match"),
                                ("Dictionary should have", "must have")):
        if message.startswith(prefix):
            message = replacement + message[len(prefix):]
    if not key:  # a rule across sections: its message names the keys
        return f"{name}: {message}"
    got = "" if ", got " in message else f", got {shown(error['input'])}"  # a validator's own message may say it
    return f"{name}: '{key}' {message}{got}"


def shown(value, limit=80):
    """repr(value) cut to `limit` characters, built piece by piece up to there: a value of a billion
    items (a YAML alias bomb) costs no more than a short one."""
    text = ""
    for piece in _repr_pieces(value, limit):
        text += piece
        if len(text) > limit:
            return text[:limit - 3] + "..."
    return text


def _repr_pieces(value, limit):
    """repr(value) in pieces, YAML's mappings and lists walked item by item, a long string cut first."""
    if isinstance(value, dict):
        yield "{"
        for i, (key, item) in enumerate(value.items()):
            yield ", " if i else ""
            yield from _repr_pieces(key, limit)
            yield ": "
            yield from _repr_pieces(item, limit)
        yield "}"
    elif isinstance(value, list):
        yield "["
        for i, item in enumerate(value):
            yield ", " if i else ""
            yield from _repr_pieces(item, limit)
        yield "]"
    else:
        yield repr(value[:limit + 1] if isinstance(value, str) else value)


def allowed_keys(schema, loc):
    """The keys allowed in the mapping at loc (a path of keys from the top of schema)."""
    node = schema
    for part in loc:
        is_section = isinstance(node, type) and issubclass(node, Section)
        node = node.model_fields[part].annotation if is_section else typing.get_args(node)[1]
    return list(node.model_fields)
