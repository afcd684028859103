"""params.yaml as typed, frozen sections, validated as a whole before a stage does any work.

The file is read as DVC reads it (YAML 1.2, so `1e-05`, `1.0e9` and `.5` are numbers, as
`dvc exp run -S` writes them); a key written twice, an unknown key or section, a value of the wrong
type or out of range is one `StageError` line that names the key. Library code never sees these
objects: each stage's `read_params` turns them into the plain values it passes on.
"""
import math
import typing
from pathlib import Path
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, PlainValidator, ValidationError, field_validator
from ruamel.yaml import YAML
from ruamel.yaml.error import YAMLError

from stages.lib.cli import StageError

PARAMS_FILE = "params.yaml"

Count = Annotated[int, Field(ge=1)]
Seed = Annotated[int, Field(ge=0)]
Positive = Annotated[float, Field(gt=0)]
Name = Annotated[str, Field(pattern=r"^[A-Za-z0-9_]+$")]  # used in file and stage names

MAX_GRID_SIDE = 2001          # loss_surfaces: points per axis
MAX_CHANNELS = 512            # model: per conv block (activations of a 1,000-image batch stay < 2 GB)
MAX_HIDDEN = 4096
MAX_XOR_HISTORY = 200_000_000  # xor: (epochs + 1) x (n_seeds + 1) recorded losses and accuracies
MAX_XOR_FRAMES = 2000         # xor: snapshots kept for the GIF


class Section(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=True, allow_inf_nan=False)


def unique(values):
    if len(set(values)) != len(values):
        raise ValueError(f"must not repeat a value, got {values!r}")
    return values


class Data(Section):
    source: Annotated[str, Field(min_length=1)]  # auto | mnist | sample | a directory of IDX files
    cache_dir: Annotated[str, Field(min_length=1)]
    download_timeout: Positive
    seed: Seed

    @field_validator("cache_dir")
    @classmethod
    def _cache_dir_is_a_directory(cls, value):
        if Path(value).exists() and not Path(value).is_dir():
            raise ValueError(f"must be a directory, but {value!r} is a file")
        return value


Interval = Annotated[list[float], Field(min_length=2, max_length=2)]


class LossSurfaces(Section):
    x: float
    y: Annotated[float, Field(ge=0, le=1)]
    w_range: Interval
    b_range: Interval
    step: Positive
    flat_threshold: Positive

    @field_validator("w_range", "b_range")
    @classmethod
    def _increasing(cls, value):
        if not value[0] < value[1]:
            raise ValueError(f"must be [low, high] with low < high, got {value!r}")
        return value

    @field_validator("step")
    @classmethod
    def _bounded_grid(cls, step, info):
        for name in ("w_range", "b_range"):
            low, high = info.data.get(name, (0.0, 0.0))
            if (high - low) / step + 1 > MAX_GRID_SIDE:
                raise ValueError(f"gives {round((high - low) / step) + 1} points along {name}; "
                                 f"at most {MAX_GRID_SIDE} are allowed")
        return step


class Xor(Section):
    activation: Literal["tanh", "sigmoid", "relu"]
    hidden: Annotated[int, Field(ge=1, le=64)]
    init: Literal["normal", "uniform", "xavier"]
    init_scale: Positive
    lr: Positive
    epochs: Count
    n_seeds: Count
    seed: Seed
    snapshot_epochs: list[Seed]
    gif_every: Count

    @field_validator("snapshot_epochs")
    @classmethod
    def _within_training(cls, value, info):
        epochs = info.data.get("epochs", math.inf)
        late = [e for e in value if e > epochs]
        if late:
            raise ValueError(f"must be epochs in 0..xor.epochs ({epochs}), got {late[0]}")
        return unique(value)

    @field_validator("gif_every")
    @classmethod
    def _bounded_frames(cls, value, info):
        frames = info.data.get("epochs", 0) // value + 1
        if frames > MAX_XOR_FRAMES:
            raise ValueError(f"gives {frames} GIF frames; at most {MAX_XOR_FRAMES} are allowed (raise it)")
        return value

    @field_validator("n_seeds")
    @classmethod
    def _bounded_history(cls, value, info):
        size = (info.data.get("epochs", 0) + 1) * (value + 1)
        if size > MAX_XOR_HISTORY:
            raise ValueError(f"with xor.epochs {info.data['epochs']:,} records {size:,} losses; "
                             f"at most {MAX_XOR_HISTORY:,} fit in memory")
        return value


class Model(Section):
    channels: Annotated[list[Annotated[int, Field(ge=1, le=MAX_CHANNELS)]], Field(min_length=1, max_length=4)]
    kernel_size: Annotated[int, Field(ge=1, le=27)]
    hidden: Annotated[int, Field(ge=1, le=MAX_HIDDEN)]

    @field_validator("kernel_size")
    @classmethod
    def _odd(cls, value):
        if value % 2 == 0:
            raise ValueError(f"must be odd (same padding), got {value}")
        return value

    def spec(self):
        """The CNN's architecture arguments, as mnist_cnn takes them and checkpoints store them."""
        return {"channels": list(self.channels), "kernel_size": self.kernel_size, "hidden": self.hidden}


class TrainedModel(Section):
    seed: Seed


Momentum = Annotated[float, Field(ge=0, lt=1)]


class Train(Section):
    epochs: Count
    batch_size: Count
    lr: Positive
    momentum: Momentum
    eval_batch_size: Count
    models: Annotated[dict[Name, TrainedModel], Field(min_length=1)]


class Grid(Section):
    batch_size: Annotated[list[Count], Field(min_length=1)]
    lr: Annotated[list[Positive], Field(min_length=1)]

    @field_validator("batch_size", "lr")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)

    def points(self):
        return [(b, lr) for b in self.batch_size for lr in self.lr]


class Sweep(Grid):
    extra: Grid
    epochs: Count
    seed: Seed
    momentum: Momentum
    eval_batch_size: Count

    @field_validator("extra")
    @classmethod
    def _extra_points_are_new(cls, extra, info):
        grid = {(b, lr) for b in info.data.get("batch_size", []) for lr in info.data.get("lr", [])}
        repeated = [point_name(*p) for p in extra.points() if p in grid]
        if repeated:
            raise ValueError(f"repeats the grid's point {repeated[0]}")
        return extra

    def points(self):
        """Every (batch size, lr) of the sweep: the grid, then the extra points."""
        return super().points() + self.extra.points()


def point_name(batch_size, lr):
    """A sweep point's name; dvc.yaml spells it ${item.batch_size}-${item.lr} (the same for floats)."""
    return f"{batch_size}-{lr}"


class Gallery(Section):
    untargeted: list[Seed]
    targeted: list[Seed]


class Attack(Section):
    model: Name
    step_size: Positive
    max_steps: Annotated[int, Field(ge=1, le=100_000)]
    epsilon: Positive | None
    batch_size: Count
    n_images: Count | None
    seed: Seed
    grid_size: Annotated[int, Field(ge=1, le=1024)]
    gallery: Gallery


class Transfer(Section):
    models: Annotated[list[Name], Field(min_length=1)]  # the receivers of attack.model's adversarial sets

    @field_validator("models")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)


# Perturbation budgets are in the pixel units the models see ([-1, 1]): 2 spans the whole range.
Budget = Annotated[float, Field(ge=0, le=2)]


class Pgd(Section):
    steps: Annotated[int, Field(ge=1, le=10_000)]
    step_size: Positive
    restarts: Annotated[int, Field(ge=1, le=100)]


class Robustness(Section):
    models: Annotated[list[Name], Field(min_length=1)]
    source: Name          # whose PGD and margin-attack images are shown to every model
    epsilon: Annotated[list[Budget], Field(min_length=1)]
    pgd: Pgd
    margins: Annotated[list[Annotated[float, Field(ge=0)]], Field(min_length=1)]
    n_images: Count | None
    seed: Seed
    batch_size: Count

    @field_validator("models", "margins")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)

    @field_validator("epsilon")
    @classmethod
    def _increasing(cls, value):
        if any(b <= a for a, b in zip(value, value[1:])):
            raise ValueError(f"must increase, got {value!r}")
        return value


class Retrain(Section):
    share: Annotated[float, Field(gt=0, le=1)]  # of the training images that get an adversarial copy
    kind: Literal["untargeted", "targeted"]
    seed: Seed


class Guard(Section):
    images: Count         # held out of the training set, attacked after every epoch
    pgd_steps: Count
    max_drop: Annotated[float, Field(gt=0, le=1)]  # PGD accuracy below best - max_drop: collapsed


class AdversarialTraining(Section):
    method: Literal["fgsm", "pgd"]
    epsilon: Annotated[float, Field(gt=0, le=2)]
    step_size: Positive
    pgd_steps: Count
    adversarial_share: Annotated[float, Field(ge=0, le=1)]
    epochs: Count
    batch_size: Count
    lr: Positive
    eval_batch_size: Count
    seed: Seed
    guard: Guard


def _threads(value):
    if value == "auto" or (type(value) is int and value >= 1):
        return value
    raise ValueError("must be 'auto' or an integer >= 1")


class Params(Section):
    device: Literal["auto", "cpu", "cuda"]
    threads: Annotated[str | int, PlainValidator(_threads)]
    data: Data
    loss_surfaces: LossSurfaces
    xor: Xor
    model: Model
    train: Train
    sweep: Sweep
    attack: Attack
    transfer: Transfer
    retrain: Retrain
    adversarial_training: AdversarialTraining
    robustness: Robustness


def read_yaml(path):
    """A YAML file as DVC reads it: YAML 1.2, and a key written twice is an error."""
    path = Path(path)
    if not path.is_file():
        raise StageError(f"{path}: not found; run the stage from the repository root")
    try:
        return YAML(typ="safe", pure=True).load(path.read_text())
    except YAMLError as error:
        if type(error).__name__ == "DuplicateKeyError":
            mark = error.problem_mark
            raise StageError(f"{path}: line {mark.line + 1}: {error.problem}; write each key once") from None
        raise StageError(f"{path}: not valid YAML ({' '.join(str(error).split())})") from None


def load_params(path=PARAMS_FILE):
    """The whole params file, validated; any problem is one StageError line naming the key."""
    raw = read_yaml(path)
    if not isinstance(raw, dict):
        raise StageError(f"{path}: expected a mapping of sections at the top level")
    try:
        return Params.model_validate(raw)
    except ValidationError as error:
        raise StageError(describe(error.errors()[0], Path(path).name)) from None


def _dotted(loc):
    key = ""
    for part in (p for p in loc if p != "[key]"):  # pydantic's marker for an error in a mapping's key
        key += f"[{part}]" if isinstance(part, int) else f".{part}" if key else str(part)
    return key


def describe(error, name=PARAMS_FILE):
    """One line for one pydantic error, naming the key as it is written in params.yaml."""
    key = _dotted(error["loc"])
    if error["type"] == "missing":
        return f"{name}: missing key '{key}'"
    if error["type"] == "extra_forbidden":
        section = _dotted(error["loc"][:-1]) or "the top level"
        return f"{name}: unknown key '{key}'; {section} allows: {', '.join(_allowed_keys(error['loc'][:-1]))}"
    message = error["msg"]
    for prefix, replacement in (("Value error, ", ""), ("Input should be", "must be"),
                                ("List should have", "must have"), ("String should match", "must match"),
                                ("Dictionary should have", "must have")):
        if message.startswith(prefix):
            message = replacement + message[len(prefix):]
    return f"{name}: '{key}' {message}, got {error['input']!r}"


def _allowed_keys(loc):
    """The keys allowed in the mapping at loc."""
    node = Params
    for part in loc:
        is_section = isinstance(node, type) and issubclass(node, Section)
        node = node.model_fields[part].annotation if is_section else typing.get_args(node)[1]
    return list(node.model_fields)
