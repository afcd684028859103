"""What the report reads, checked: the homework's numbers (reference/seed.yaml), the literature's
(reference/anchors.yaml), and every stage output it sets beside them. A missing or malformed input is one
StageError line naming the file and what to rerun.

The models are data: each trained model has metrics/train/<model>.json (its numbers) and, beside its
checkpoint, its card models/<model>.json: its `role` ('baseline': Problem 3's models; 'defence': section
5's) and its human `label`; a defence may add the homework `claim` it tests (a key of reference/seed.yaml's
claims) and a `summary`, the sentence that says how it was trained. Models come in the order of their
labels, the baselines first. The attacks are data too: each robustness record lists its
attacks with their labels."""
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Literal

import numpy as np
import pandas as pd
from PIL import Image
from pydantic import BaseModel, ConfigDict, Field, TypeAdapter, ValidationError

from stages.lib.errors import StageError
from stages.lib.io import NUMBER, read_csv, read_json
from stages.lib.params import Count, Name, Section, read_yaml, validate_params

SEED = "reference/seed.yaml"
ANCHORS = "reference/anchors.yaml"
ROLES = ("baseline", "defence")
KINDS = ("untargeted", "targeted")
CURVES = ("epsilon", "images", "worst", "only_autoattack")  # plots/robustness/<model>.csv beside one column per attack
WHITE = 250  # a grey level at least this is blank paper in a figure

Share = Annotated[float, Field(ge=0, le=1)]


class Anchor(Section):
    defence: str
    attack: str
    family: Literal["pgd", "autoattack", "other"]  # which of our measures it is set against: PGD, or the worst case
    accuracy: Share
    source: str
    model: Name | None = None  # this pipeline's model trained by the same method, set beside it by name


class Anchors(Section):
    """reference/anchors.yaml: the literature's robust accuracies at one budget, with their sources."""
    epsilon: Annotated[float, Field(gt=0, le=1)]
    images: Count
    anchors: Annotated[list[Anchor], Field(min_length=1)]


class Measured(BaseModel):
    accuracy: Share
    images: Count
    correct: Annotated[int, Field(ge=0)]
    low: Share
    high: Share


class ThreatModel(BaseModel):
    norm: str
    epsilon_units: str
    epsilon: list[float]


class Images(BaseModel):
    count: Count
    selection: str
    seed: int


class AttackRun(BaseModel):
    """One attack of the evaluation: its label and settings (all kept)."""
    model_config = ConfigDict(extra="allow")
    label: str


class Check(BaseModel):
    model_config = ConfigDict(extra="allow")
    check: Literal["iterative_vs_single_step", "more_steps", "large_budget", "gradient_free", "transfer"]
    verdict: Literal["pass", "warning"]


class RobustnessDescription(BaseModel):
    """plots/robustness/<model>.json, what the report reads of it (the robustness stage may write more)."""
    interval: str
    threat_model: ThreatModel
    images: Images
    attacks: dict[str, AttackRun]
    checks: list[Check]
    versions: dict[str, Any]
    clean: Measured
    worst_case: Annotated[dict[str, Measured], Field(min_length=1)]


@dataclass(frozen=True)
class Inputs:
    """Everything the report sets on its page. Figures are {file name: image}; tables are pandas frames."""
    seed: dict
    anchors: dict
    data: dict  # metrics/data.json
    trained: list  # [{name, role, label, final_test_acc, …, history}], baselines then defences, in label order
    observations: dict  # Problem 1: {setting: {observation: value}}
    loss_figures: dict
    xor: dict  # Problem 2: {"nonlinear": row, "linear": row, "history": frame}
    xor_figures: dict
    sweep: pd.DataFrame
    sweep_curves: pd.DataFrame
    predictions: pd.DataFrame  # every model's prediction per test image, clean and on each adversarial set
    attacks: dict  # Problem 4: {kind: {"images": frame, "steps_median": number}}
    attack_figures: dict  # {kind: {"gallery": [image per row], "grid.png": image}}, where the attack fooled any
    sets: pd.DataFrame  # plots/transfer/sets.csv, indexed by set
    source: str  # the model the adversarial sets are made on
    receiver: str  # the model Problem 4 shows them to
    transfer_figures: dict
    explorer: dict
    evaluated: dict  # {model: {"curve", "about", "images"}} of the robustness stages, in the order of `trained`
    robustness_transfer: pd.DataFrame

    @property
    def labels(self):
        return {m["name"]: m["label"] for m in self.trained}

    def role(self, role):
        return [m for m in self.trained if m["role"] == role]


def read_inputs():
    trained = read_trained()
    labels = {m["name"]: m["label"] for m in trained}
    sets, source, receiver = read_transfer_sets()
    explorer = read_json("plots/explorer/explorer.json", {"epsilon": list, "attack": dict, "sources": list,
                                                           "models": list, "digits": list, "images": list},
                         "`dvc repro explorer`")
    evaluated, transfer = read_robustness(labels)
    anchors = validate_params(Anchors, read_yaml(ANCHORS), ANCHORS).model_dump()
    top = max(next(iter(evaluated.values()))["about"]["worst_case"], key=float)
    if float(anchors["epsilon"]) != float(top):
        budgets = sorted(next(iter(evaluated.values()))["about"]["worst_case"], key=float)
        raise StageError(f"{ANCHORS}: 'epsilon' {anchors['epsilon']} is not a headline budget of the robustness "
                         f"stages ({', '.join(budgets)})")
    for path, names in (("plots/transfer/sets.csv", [source, receiver]),
                        ("plots/explorer/explorer.json", explorer["models"] + explorer["sources"])):
        unknown = [n for n in names if n not in labels]
        if unknown:
            raise StageError(f"{path}: names model '{unknown[0]}', which metrics/train lacks; rerun `dvc repro`")
    attacks = {kind: read_attack(kind) for kind in KINDS}
    nonlinear, linear, history = read_xor()
    return Inputs(
        seed=read_reference(SEED), anchors=anchors,
        data=read_json("metrics/data.json", {"source": str, "n_train": int, "n_test": int}), trained=trained,
        observations=read_observations(),
        loss_figures=figures("plots/loss_surfaces/figures", ("seed_target.png", "descent.png",
                                                             "gradient_magnitudes.png", "class_label.png")),
        xor={"nonlinear": nonlinear, "linear": linear, "history": history},
        xor_figures=figures("plots/xor/figures", ("problem.png", "nonlinear_hidden.png", "nonlinear_boundaries.png",
                                                  "linear_boundaries.png")),
        sweep=read_csv("plots/sweep_summary/table.csv", ("point",),
                       ("batch_size", "lr", "final_test_acc", "best_test_acc", "best_epoch", "min_train_loss")),
        sweep_curves=read_csv("plots/sweep_summary/curves.csv", ("point",),
                              ("epoch", "train_loss", "test_loss", "test_acc")),
        predictions=read_csv("plots/transfer/predictions.csv", numeric=("test_index", "label")),
        attacks={kind: a for kind, (a, _) in attacks.items()},
        attack_figures={kind: f for kind, (_, f) in attacks.items()},
        sets=sets, source=source, receiver=receiver,
        transfer_figures=figures("plots/transfer/figures", ("confusion_untargeted.png", "confusion_targeted.png")),
        explorer=explorer, evaluated=evaluated, robustness_transfer=transfer)


def read_reference(path):
    """A reference file's YAML, every number in it finite: a NaN or an infinity (`.nan`, `.inf`) is one line
    naming the file and the top-level key that holds it."""
    value = read_yaml(path)
    for key, section in value.items():
        try:
            json.dumps(section, allow_nan=False)
        except ValueError:
            raise StageError(f"{path}: '{key}' holds a number that is not finite (NaN or infinite); "
                             "correct it from the homework's write-up") from None
    return value


def read_trained():
    """metrics/train/<name>.json of every trained model (its headline numbers), its card models/<name>.json
    (role, label, and a defence's claim and summary) and its per-epoch plots/train/<name>.csv (as "history"):
    [{"name": name, …}], the baselines then the defences, each in label order; at least one."""
    paths = sorted(Path("metrics/train").glob("*.json"))
    if not paths:
        raise StageError("metrics/train: holds no model's metrics; run `dvc repro` to train them")
    trained = []
    for path in paths:
        try:
            TypeAdapter(Name).validate_python(path.stem)
        except ValidationError:
            raise StageError(f"{path}: {path.stem!r} is not a model name (letters, digits and _); rename or remove "
                             "the file") from None
        metrics = read_json(path, {"final_test_acc": NUMBER})
        card_path = Path("models", f"{path.stem}.json")
        card = read_json(card_path, {"role": str, "label": str})
        if card["role"] not in ROLES:
            raise StageError(f"{card_path}: 'role' must be {' or '.join(ROLES)}, got {card['role']!r}; rerun the "
                             "stage that writes it")
        history = read_csv(f"plots/train/{path.stem}.csv", numeric=("epoch", "test_acc", "train_loss"))
        trained.append({"name": path.stem, **metrics, **card, "history": history})
    return sorted(trained, key=lambda m: (ROLES.index(m["role"]), m["label"]))


def figures(folder, names):
    """The named figures of a folder: {file name: image}."""
    found = {}
    for name in names:
        path = Path(folder) / name
        if not path.is_file():
            raise StageError(f"{path}: not found; run `dvc repro` to make it")
        found[name] = Image.open(path)
    return found


def row_strips(path):
    """A figure of rows of panels (each row: its title lines, then its images) cut into one image per
    row: each cut lies in the blank band after a row's images (the tall runs of non-blank lines)."""
    image = Image.open(path).convert("RGB")
    blank = np.asarray(image.convert("L")).min(axis=1) >= WHITE
    edges = np.flatnonzero(np.diff(np.concatenate([[1], blank.astype(np.int8), [1]])))
    runs = list(zip(edges[::2], edges[1::2]))  # [begin, end) of each run of non-blank lines
    tallest = max(end - begin for begin, end in runs)
    image_ends = [end for begin, end in runs if end - begin > tallest / 2]
    cuts = [0] + [(end + min(b for b, _ in runs if b >= end)) // 2 for end in image_ends[:-1]] + [image.height]
    return [image.crop((0, top, image.width, bottom)) for top, bottom in zip(cuts, cuts[1:])]


def read_observations():
    """plots/loss_surfaces/observations.csv as {setting: {observation: value}}."""
    table = read_csv("plots/loss_surfaces/observations.csv", ("setting", "observation"), ("value",))
    found = {}
    for row in table.itertuples():
        found.setdefault(row.setting, {})[row.observation] = row.value
    for setting in ("seed_target", "class_label", "descent"):
        if setting not in found:
            raise StageError(f"plots/loss_surfaces/observations.csv: no '{setting}' rows; rerun "
                             "`dvc repro loss_surfaces`")
    return found


def read_xor():
    """(The non-linear variant's row, the linear one's, the loss history) of the xor stage."""
    path = "plots/xor/variants.csv"
    variants = read_csv(path, ("variant", "activation"),
                        ("accuracy", "first_solved_epoch", "seeds", "seeds_solved_fraction",
                         "max_final_accuracy_over_seeds", "final_loss")).set_index("variant")
    missing = [v for v in ("nonlinear", "linear") if v not in variants.index]
    if missing:
        raise StageError(f"{path}: no '{missing[0]}' row; rerun `dvc repro xor`")
    history = read_csv("plots/xor/history.csv", numeric=("epoch", "nonlinear_loss", "linear_loss"))
    return variants.loc["nonlinear"], variants.loc["linear"], history


def read_attack(kind):
    """({"images": the attack's per-image table, "steps_median"}, its figures: the gallery cut into its rows
    and the grid, where the attack fooled any image)."""
    images = read_csv(f"plots/attack_{kind}/images.csv", ("success",),
                      ("index", "label", "target", "steps", "predicted", "linf", "gallery_row"))
    metrics = read_json(f"metrics/attack_{kind}.json", {"success_rate": NUMBER, "steps_median": (*NUMBER, type(None))})
    shown = {}
    if images["success"].any():
        path = Path(f"plots/attack_{kind}/figures/gallery.png")
        if not path.is_file():
            raise StageError(f"{path}: not found; run `dvc repro attack@{kind}`")
        strips, rows = row_strips(path), int((images["gallery_row"] >= 0).sum())
        if len(strips) != rows:
            raise StageError(f"{path}: {len(strips)} rows for {rows} gallery images; rerun `dvc repro attack@{kind}`")
        shown = {"gallery": strips, **figures(f"plots/attack_{kind}/figures", ("grid.png",))}
    return {"images": images, "steps_median": metrics["steps_median"]}, shown


def read_transfer_sets():
    """(plots/transfer/sets.csv indexed by set, the model the sets are made on, the first other model shown them)."""
    path = "plots/transfer/sets.csv"
    sets = read_csv(path, ("set", "source"), ("images",)).set_index("set")
    source = sets["source"].iloc[0]
    receivers = [c.removesuffix("_clean_accuracy") for c in sets.columns
                 if c.endswith("_clean_accuracy") and c != f"{source}_clean_accuracy"]
    if not receivers:
        raise StageError(f"{path}: names no receiving model; rerun `dvc repro -f transfer`")
    return sets, source, receivers[0]


def read_robustness(labels):
    """({model: {"curve", "about", "images"}} of every model the robustness stages evaluated,
    and plots/robustness/transfer.csv): its curves against ε, its record and its per-image record; `labels`
    {model: label} in the trained models' order."""
    transfer = read_csv("plots/robustness/transfer.csv", ("source", "setting"),
                        ("epsilon", "margin", "median_linf", "images"))
    names = [c for c in transfer.columns if c not in ("source", "setting", "epsilon", "margin", "median_linf", "images")]
    if not names:
        raise StageError("plots/robustness/transfer.csv: names no model; rerun `dvc repro robustness_transfer`")
    unknown = [n for n in [*names, *transfer["source"]] if n not in labels]
    if unknown:
        raise StageError(f"plots/robustness/transfer.csv: names model '{unknown[0]}', which metrics/train lacks; "
                         "rerun `dvc repro`")
    evaluated = {}
    for name in sorted(names, key=list(labels).index):  # the trained models' order
        path = f"plots/robustness/{name}.json"
        about = validate_params(RobustnessDescription, read_json(path), path).model_dump()
        curve = read_csv(f"plots/robustness/{name}.csv", numeric=CURVES)
        text = [a for a in about["attacks"] if a in curve.columns and not pd.api.types.is_numeric_dtype(curve[a])]
        if text:
            raise StageError(f"plots/robustness/{name}.csv: column '{text[0]}' holds text where numbers belong; "
                             f"rerun `dvc repro robustness@{name}`")
        sources = [a["source"] for a in about["attacks"].values() if "source" in a]
        sources += [c["source"] for c in about["checks"] if "source" in c]
        if any(s not in labels for s in sources):
            raise StageError(f"{path}: names model '{next(s for s in sources if s not in labels)}', which "
                             "metrics/train lacks; rerun `dvc repro`")
        evaluated[name] = {"curve": curve, "about": about,
                           "images": read_per_image(f"plots/robustness/images/{name}.csv", list(about["worst_case"]))}
    return evaluated, transfer


def read_per_image(path, budgets):
    """plots/robustness/images/<model>.csv as text: per image, per budget, the attacks that fooled it
    (an empty cell: none did)."""
    try:
        table = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (OSError, pd.errors.ParserError, UnicodeDecodeError) as error:
        raise StageError(f"{path}: cannot be read ({error}); rerun `dvc repro robustness`") from None
    missing = [c for c in ("test_index", "label", *budgets) if c not in table.columns]
    if missing or not table["test_index"].str.fullmatch(r"[0-9]+").all():
        raise StageError(f"{path}: " + (f"no column '{missing[0]}'" if missing else "a test_index that is not a "
                                        "count") + "; rerun `dvc repro robustness`")
    return table
