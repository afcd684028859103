"""The numbers README.md and docs/ restate from the committed results cannot drift from them.

CLAIMS is a table: the doc, a phrase with a `{}` for each number, where the numbers come from, and a
function that reads them from the committed files under a root directory (metrics/, plots/, params.yaml,
dvc.lock, reference/) and formats them the way the doc writes them. The test asserts that the phrase,
so filled in, appears in the doc (whitespace collapsed, so a phrase may wrap). A rerun that moves a
result makes the phrase it changed fail, naming the doc, the phrase expected and the source; the last
test changes one metric in a scratch copy and checks exactly that.

Figures that are no committed result (timings, the homework's sample run, earlier machines' results)
are not here: the docs say which machine and run each comes from.
"""
import csv
import json
import re
import shutil
from functools import cache
from pathlib import Path

import pytest
import yaml

from stages.lib.report.words import number_word
from stages.lib.stats import HIGHER, LOWER, UNDETECTED, independent, paired_flags, wilson

ROOT = Path(__file__).resolve().parents[1]
DOCS = ["README.md", *sorted(f"docs/{page.name}" for page in (ROOT / "docs").glob("*.md"))]
SOURCES = ["metrics", "plots", "reference", "params.yaml", "dvc.lock"]  # what the claims read
MODELS = ["model1", "model2", "retrain", "adversarial_training", "trades"]
DEFENDED = ["adversarial_training", "trades"]  # evaluated on 3,500 images, set beside the literature
BATCHES = [32, 64, 128]


# --- reading the committed files under a root -------------------------------------------------------

@cache
def _text(path):
    return Path(path).read_text()


def js(root, path):
    return json.loads(_text(root / path))


def yml(root, path):
    return yaml.safe_load(_text(root / path))


def rows(root, path):
    return list(csv.DictReader(_text(root / path).splitlines()))


def row(root, path, **match):
    """The one row of a CSV whose columns equal `match` (compared as text)."""
    found = [r for r in rows(root, path) if all(r[key] == str(value) for key, value in match.items())]
    assert len(found) == 1, f"{path}: {len(found)} rows match {match}"
    return found[0]


def params(root):
    return yml(root, "params.yaml")


def curve(root, point, column="test_acc"):
    """One sweep point's per-epoch column, epoch 1 first."""
    return [float(r[column]) for r in rows(root, f"plots/sweep/{point}.csv")]


def lock_size(root, prefix):
    """Bytes of the outputs dvc.lock records under `prefix`."""
    lock = yml(root, "dvc.lock")
    outs = {out["path"]: out["size"] for stage in lock["stages"].values() for out in stage.get("outs", [])}
    return sum(size for path, size in outs.items() if path == prefix or path.startswith(prefix + "/"))


def lock_files(root, path):
    """How many files dvc.lock records in the output folder `path`."""
    lock = yml(root, "dvc.lock")
    return next(out["nfiles"] for stage in lock["stages"].values() for out in stage.get("outs", []) if out["path"] == path)


# --- formatting as the docs write it ----------------------------------------------------------------

def pct(x, digits=1):
    """A fraction in percent; an exact 0 is written "0"."""
    text = f"{100 * x:.{digits}f}"
    return "0" if float(text) == 0 else text


def ci(accuracy, images, digits=1):
    """(low, high) of an accuracy's 95 % Wilson interval, in percent; the count is round(acc * n)."""
    return tuple(pct(bound, digits) for bound in wilson(round(accuracy * images), images))


def frac(x, digits=3):
    """A fraction as the docs' tables write it: 0.774, and an exact 0 as "0"."""
    return "0" if x == 0 else f"{x:.{digits}f}"


def ci_frac(accuracy, images):
    return tuple(f"{bound:.3f}" for bound in wilson(round(accuracy * images), images))


def count(n):
    return f"{int(n):,}"


def num(x):
    """A parameter as the docs write it: 5.0 as 5, 0.25 as 0.25."""
    return f"{x:g}"


def sci(x):
    """9.078e-05 as 9.1·10⁻⁵."""
    mantissa, exponent = f"{x:.1e}".split("e")
    return f"{mantissa}·10" + str(int(exponent)).translate(str.maketrans("-0123456789", "⁻⁰¹²³⁴⁵⁶⁷⁸⁹"))


def side(low, high, other):
    """Where `other` lies against [low, high], as the docs say it."""
    return "above" if other > high else "below" if other < low else "inside"


def mb(size):
    return f"{size / 1e6:.1f} MB"


# --- the committed results the claims share ---------------------------------------------------------

def n_test(r):
    return js(r, "metrics/data.json")["n_test"]


def acc(r, model):
    return js(r, f"metrics/train/{model}.json")["final_test_acc"]


def acc_ci(r, model):
    """'99.29 % (99.1-99.4 %)' pieces: the final test accuracy on all test images and its interval."""
    return (pct(acc(r, model), 2), *ci(acc(r, model), n_test(r)))


def transfer_set(r, kind):
    return row(r, "plots/transfer/sets.csv", set=kind)


def attacked(r):
    return int(transfer_set(r, "untargeted")["images"])


def receiver(r, kind, model="model2"):
    """A receiver's accuracy on model1's `kind` adversarial images, and its interval."""
    accuracy = float(transfer_set(r, kind)[f"{model}_accuracy"])
    return (pct(accuracy), *ci(accuracy, attacked(r)))


def robustness(r, model):
    return {float(line["epsilon"]): line for line in rows(r, f"plots/robustness/{model}.csv")}


def worst(r, model, epsilon):
    """The worst case per image at epsilon: (accuracy, images, low, high) from plots/robustness."""
    line = robustness(r, model)[epsilon]
    return float(line["worst"]), int(line["images"]), float(line["worst_low"]), float(line["worst_high"])


def worst_ci(r, model, epsilon, digits=1):
    """'83.6', '500', '80.1', '86.6': the worst case, its count and its interval as the docs write them."""
    accuracy, images, low, high = worst(r, model, epsilon)
    return pct(accuracy, digits), count(images), pct(low, digits), pct(high, digits)


def anchors(r):
    """The literature's figures, in reference/anchors.yaml's order: (defence, attack, accuracy)."""
    return [(a["defence"], a["attack"], a["accuracy"]) for a in yml(r, "reference/anchors.yaml")["anchors"]]


def anchor(r, defence, attack):
    (accuracy,) = [a for d, at, a in anchors(r) if d.startswith(defence) and at.startswith(attack)]
    return accuracy



MADRY = ("Madry", "PGD-100")
MADRY_AA = ("Madry", "AutoAttack")
MADRY_CHALLENGE = ("Madry", "the strongest")
WONG = ("Wong", "PGD-50")
WONG_AA = ("Wong", "AutoAttack")
TRADES = ("TRADES", "AutoAttack")


def homework_transfer(r, kind):
    """The homework's model2 figure on `kind` images: accuracy, images, interval."""
    figure = yml(r, "reference/seed.yaml")["transfer"][kind]
    return figure["accuracy"], figure["images"]


def observation(r, setting, name):
    return float(row(r, "plots/loss_surfaces/observations.csv", setting=setting, observation=name)["value"])


def ce_above_l2_everywhere(r):
    """'1,681' when cross-entropy exceeds L2 on every grid point at both targets."""
    points = observation(r, "seed_target", "grid_points")
    whole = all(observation(r, s, "ce_gt_l2_fraction") == 1 for s in ("seed_target", "class_label"))
    return count(points) if whole else "not all"


def xor(r, variant):
    return row(r, "plots/xor/variants.csv", variant=variant)


def xor_seeds(r, variant):
    """'14', '100', '8.5', '22.1': seeds that solve XOR, of how many, and the interval."""
    line = xor(r, variant)
    seeds, solved = int(line["seeds"]), float(line["seeds_solved_fraction"])
    return (str(round(solved * seeds)), str(seeds), *ci(solved, seeds))


def sweep(r, point):
    return js(r, f"metrics/sweep/{point}.json")


def sweep_best(r):
    """The sweep's best accuracy, its interval, the batch sizes that reach it, their lr and epoch."""
    best = js(r, "metrics/sweep_summary.json")["best_test_acc"]
    points = [s for s in (sweep(r, p["point"]) for p in rows(r, "plots/sweep_summary/table.csv"))
              if s["best_test_acc"] == best]
    lrs, epochs = {num(s["lr"]) for s in points}, {s["best_epoch"] for s in points}
    return (pct(best, 2), count(n_test(r)), *ci(best, n_test(r)),
            " and ".join(str(s["batch_size"]) for s in points), "/".join(sorted(lrs)),
            "/".join(str(e) for e in sorted(epochs)))


def last_ten_range(r, lr="0.1"):
    """Over the last 10 epochs at `lr`: the smallest and largest span of test accuracy, in points."""
    spans = [100 * (max(curve(r, f"{b}-{lr}")[-10:]) - min(curve(r, f"{b}-{lr}")[-10:])) for b in BATCHES]
    return f"{min(spans):.2f}", f"{max(spans):.2f}"


def loss_fall(r, lr="0.1"):
    """How many times the train loss falls from epoch 10 to the last, over the batch sizes at `lr`."""
    falls = [curve(r, f"{b}-{lr}", "train_loss")[9] / curve(r, f"{b}-{lr}", "train_loss")[-1] for b in BATCHES]
    return f"{min(falls):.0f}", f"{max(falls):.0f}"


def min_losses(r, lr="0.1"):
    losses = [sweep(r, f"{b}-{lr}")["min_train_loss"] for b in BATCHES]
    return f"{min(losses):.1g}", f"{max(losses):.1g}"


def falls(r, lr):
    """The sum of epoch-to-epoch falls of test accuracy, in points, for batch 32 / 64 / 128."""
    return tuple(f"{100 * sum(max(0.0, a - b) for a, b in zip(c, c[1:])):.2f}"
                 for c in (curve(r, f"{b}-{lr}") for b in BATCHES))


def stagnates(r, point="128-0.1"):
    """Batch 128 at lr 0.1: points below its peak at the end, its final accuracy, and where that lies
    against the peak's interval."""
    s = sweep(r, point)
    low, high = wilson(round(s["best_test_acc"] * n_test(r)), n_test(r))
    return (f"{100 * (s['best_test_acc'] - s['final_test_acc']):.2f}", pct(s["final_test_acc"], 2),
            side(low, high, s["final_test_acc"]))


def over_fitting(r):
    """Sweep points whose test loss ends at least 10 % above its minimum while the train loss falls."""
    points = [p["point"] for p in rows(r, "plots/sweep_summary/table.csv")]
    return str(sum(1 for p in points if curve(r, p, "test_loss")[-1] >= 1.1 * min(curve(r, p, "test_loss"))
                   and curve(r, p, "train_loss")[-1] < curve(r, p, "train_loss")[0]))


def sweep_row(r, line):
    """A row of the sweep table as docs/results.md writes it, from plots/sweep_summary/table.csv."""
    return (f"| {line['point']} | {line['batch_size']} | {line['lr']} | {line['final_test_acc']} | "
            f"{line['best_test_acc']} | {line['best_epoch']} | {float(line['min_train_loss']):.4g} | "
            f"{line['epochs']} | {line['diverged']} |")


def gallery_row(r, kind, index):
    """A row of results.md's gallery table: the homework's label and prediction (or target), ours."""
    homework = yml(r, "reference/seed.yaml")["attack"][kind]["gallery"][index]
    ours = row(r, f"plots/attack_{kind}/images.csv", index=index)
    if kind == "untargeted":
        return (f"| {index} (untargeted) | {homework['label']} → {homework['predicted']} | "
                f"{ours['label']} → {ours['predicted']} ({ours['steps']} steps) |")
    return (f"| {index} (targeted) | {homework['label']}, target {homework['target']} | {ours['label']}, "
            f"target {ours['target']} → {ours['predicted']} ({ours['steps']} steps) |")


def against_anchor(r, defence, attack, model="adversarial_training"):
    """Our model's accuracy at ε 0.3 by the anchor's kind of attack (PGD: our PGD; else our worst case)
    against the anchor, both samples counted (stats.independent)."""
    anchors = yml(r, "reference/anchors.yaml")
    found = [a for a in anchors["anchors"] if defence in a["defence"] and attack in a["attack"]]
    line = robustness(r, model)[0.3]
    n = int(line["images"])
    ours = float(line["pgd"] if found[0]["family"] == "pgd" else line["worst"])
    return independent(round(ours * n), n, found[0]["accuracy"], anchors["images"]), found[0]["accuracy"]


def paired_words(d):
    """'1.2 points higher', '0.8 points lower' or 'no difference detectable', of a paired comparison."""
    return relation(d, "higher", "lower").replace("detectable from", "detectable")


def relation(d, more="above", less="below"):
    """'1.6 points above', '2.7 points below' or 'no difference detectable from', as the docs say it (a paired
    comparison says 'higher' / 'lower')."""
    size = f"{abs(100 * d['difference']):.1f} points"
    return (f"{size} {more}" if d["words"] == HIGHER else f"{size} {less}" if d["words"] == LOWER
            else "no difference detectable from")


def magnitudes(d):
    """The difference's 95 % interval as the docs write it: the sizes, smaller first."""
    ends = (sorted(abs(100 * x) for x in (d["low"], d["high"])) if d["words"] != UNDETECTED
            else (100 * d["low"], 100 * d["high"]))
    return tuple(f"{x:.1f}" for x in ends)


def anchor_phrase(r, defence, attack, model="adversarial_training"):
    d, accuracy = against_anchor(r, defence, attack, model)
    return relation(d), pct(accuracy), *magnitudes(d)


def paired_models(r, first, second, epsilon):
    """The first model against the second on the images both were evaluated on, from the per-image records."""
    def robust(model):
        return {line["test_index"]: line[epsilon] == "" for line in rows(r, f"plots/robustness/images/{model}.csv")}
    a, b = robust(first), robust(second)
    shared = [i for i in a if i in b]
    return paired_flags([a[i] for i in shared], [b[i] for i in shared])


def check(r, model, name):
    return next(c for c in js(r, f"plots/robustness/{model}.json")["checks"] if c["check"] == name)


def robust_row(r, model):
    """A row of defences.md's robust-accuracy table (clean, then the worst case at each ε)."""
    by_eps = robustness(r, model)
    cells = []
    for epsilon in (0.1, 0.2, 0.3, 0.4, 0.5):
        accuracy, _, low, high = worst(r, model, epsilon)
        if accuracy == 0:
            cell = "0" if epsilon >= 0.4 else f"0 ({pct(low)}-{pct(high)})"
        else:
            cell = f"{pct(accuracy)} % ({pct(low)}-{pct(high)})"
        cells.append(f"**{cell}**" if model in DEFENDED and epsilon == 0.3 else cell)
    return f"| {model} | {pct(float(by_eps[0.0]['worst']))} % | " + " | ".join(cells) + " |"


def attack_row(r, model):
    """A row of defences.md's each-attack table: FGSM, PGD, the homework's attack and the transfer from
    model1 at ε 0.1-0.5, and the images AutoAttack alone fooled at 0.3."""
    by_eps = robustness(r, model)
    cells = [" / ".join(frac(float(by_eps[e][attack])) for e in (0.1, 0.2, 0.3, 0.4, 0.5))
             if by_eps[0.1][attack] else "(the source)" for attack in ("fgsm", "pgd", "minimal", "transfer")]
    images = int(by_eps[0.3]["images"])
    return f"| {model} | " + " | ".join(cells) + f" | {count(by_eps[0.3]['only_autoattack'])} of {count(images)} |"


def transfer_row(r, model):
    """A row of defences.md's transfer table (PGD within each ε, then the homework's attack to each κ)."""
    lines = rows(r, "plots/robustness/transfer.csv")
    cells = [f"{float(line[model]):.3f}" for kind in ("pgd", "margin") for line in lines if line["setting"] == kind]
    return f"| {model} | " + " | ".join(cells) + " |"


def kappa(r, margin, model="model2"):
    line = row(r, "plots/robustness/transfer.csv", setting="margin", margin=margin)
    accuracy, images = float(line[model]), int(line["images"])
    return (pct(accuracy), *ci(accuracy, images))


def pgd_transfer(r, epsilon, model="model2"):
    return pct(float(row(r, "plots/robustness/transfer.csv", setting="pgd", epsilon=epsilon)[model]))


def homework_differences(r):
    """model2's accuracy on model1's untargeted / targeted sets minus the homework's, in points, then each
    difference's 95 % interval (stats.independent: both samples counted)."""
    found = []
    for kind in ("untargeted", "targeted"):
        line = row(r, "plots/transfer/sets.csv", set=kind)
        n = int(line["images"])
        theirs, their_images = homework_transfer(r, kind)
        found.append(independent(round(float(line["model2_accuracy"]) * n), n, theirs, their_images))
    return (*(pct(d["difference"]) for d in found),
            *(x for d in found for x in (pct(d["low"]), pct(d["high"]))))


def metric_values(r):
    """How many values `dvc metrics show` prints: every non-null leaf of the metrics files (the sweep
    points' own summaries, metrics/sweep/, are plain outputs, not metrics)."""
    def leaves(node):
        return sum(leaves(v) for v in node.values()) if isinstance(node, dict) else int(node is not None)
    files = [p for p in (r / "metrics").rglob("*.json") if p.parent.name != "sweep"]
    return (str(sum(leaves(json.loads(p.read_text())) for p in files)),)


def adversarial_examples_before_autoattack(r):
    """Images every attack but AutoAttack failed on at ε 0.3 (the images AutoAttack attacked)."""
    line = robustness(r, "adversarial_training")[0.3]
    return (count(round(float(line["worst"]) * int(line["images"])) + int(line["only_autoattack"])),)


def guard(r, model="adversarial_training"):
    pgd = [float(line["guard_pgd_acc"]) for line in rows(r, f"plots/train/{model}.csv")]
    held = js(r, f"metrics/train/{model}.json")["kept_epoch"] is None
    return pct(pgd[0]), pct(pgd[-1]), "no collapse" if held else "a collapse"


def checks_passed(r, model):
    """How many of a model's checks against masked gradients pass, as the docs say it: 'four of five', 'all five'."""
    checks = js(r, f"plots/robustness/{model}.json")["checks"]
    passed = sum(c["verdict"] == "pass" for c in checks)
    return (f"all {number_word(len(checks))}" if passed == len(checks)
            else f"{number_word(passed)} of {number_word(len(checks))}")


def retrain_vs_model1(r):
    return paired_models(r, "retrain", "model1", "0.1")


def trades_vs_adversarial_training(r, epsilon="0.3"):
    return paired_models(r, "trades", "adversarial_training", epsilon)


def epyc_stages(r):
    """The wall seconds of each stage in docs/performance.md's table of the 2-core AMD EPYC's rerun (not a
    committed result, but the one record of the rerun's time that README.md restates)."""
    table = re.search(r"^\| 2-core AMD EPYC, stage \| wall, s \|.*?\n((?:\|.*\n)+)",
                      _text(r / "docs/performance.md"), re.MULTILINE)
    return [int(line.split("|")[2].replace(",", "")) for line in table.group(1).splitlines()[1:]]


def epyc_stage_seconds(r):
    return (count(sum(epyc_stages(r))),)


# --- the claims ------------------------------------------------------------------------------------
# (doc, phrase with a {} for each value, source, values(root) -> a tuple of the values as text)

R, RES, DEF, DATA, DVC, PERF, GPU = ("README.md", "docs/results.md", "docs/defences.md", "docs/data.md",
                                     "docs/dvc.md", "docs/performance.md", "docs/gpu.md")
LOSS, XOR, SUMMARY = "plots/loss_surfaces/observations.csv", "plots/xor/variants.csv", "plots/sweep/*.csv"
ROB, TRANSFER = "plots/robustness/<model>.csv", "plots/transfer/sets.csv"

CLAIMS = [
    # README.md: the front door
    (R, "model1 went from 99.31 to {} % and the sweep's best from 99.34 to {} %",
     "metrics/train/model1.json, metrics/sweep_summary.json",
     lambda r: (pct(acc(r, "model1"), 2), pct(js(r, "metrics/sweep_summary.json")["best_test_acc"], 2))),
    (R, "(`metrics/data.json`: `\"official\": {}`)", "metrics/data.json",
     lambda r: (json.dumps(js(r, "metrics/data.json")["official"]),)),
    # README.md: the answers table, problem 1
    (R, "CE > L2 on all {} grid points (w, b ∈ [{}, {}], step {})", LOSS + ", params.yaml",
     lambda r: (ce_above_l2_everywhere(r), *map(num, params(r)["loss_surfaces"]["w_range"]),
                num(params(r)["loss_surfaces"]["step"]))),
    (R, "\\|∂L2/∂w\\| {} vs \\|∂CE/∂w\\| {} = \\|x\\|", "metrics/loss_surfaces.json",
     lambda r: (sci(js(r, "metrics/loss_surfaces.json")["wrong_end_abs_l2_grad_w"]),
                f"{js(r, 'metrics/loss_surfaces.json')['wrong_end_abs_ce_grad_w']:.3f}")),
    (R, "\\|S − y\\| ≤ {} after {} steps with CE, {} with L2", "metrics/loss_surfaces.json, params.yaml",
     lambda r: (num(params(r)["loss_surfaces"]["descent"]["target_error"]),
                count(js(r, "metrics/loss_surfaces.json")["descent_steps_ce"]),
                count(js(r, "metrics/loss_surfaces.json")["descent_steps_l2"]))),
    # problem 2
    (R, "tanh network solves it at epoch {}; a linear one cannot", "reference/seed.yaml",
     lambda r: (count(yml(r, "reference/seed.yaml")["xor"]["solved_epoch"]),)),
    (R, "solved from epoch {} (seed {}); {} of {} seeds solve it in {} epochs ({}-{} %)",
     "metrics/xor.json, " + XOR + ", params.yaml",
     lambda r: (count(js(r, "metrics/xor.json")["nonlinear"]["first_solved_epoch"]), str(params(r)["xor"]["seed"]),
                *xor_seeds(r, "nonlinear")[:2], count(params(r)["xor"]["epochs"]), *xor_seeds(r, "nonlinear")[2:])),
    (R, "linear: {} of {} seeds ({}-{} %), never above {} of 4 points", XOR,
     lambda r: (*xor_seeds(r, "linear"), f"{4 * float(xor(r, 'linear')['max_final_accuracy_over_seeds']):g}")),
    # problem 3
    (R, "model1 {} % ({}-{} %), model2 {} % ({}-{} %) of {} test images",
     "metrics/train/model1.json, metrics/train/model2.json, metrics/data.json",
     lambda r: (*acc_ci(r, "model1"), *acc_ci(r, "model2"), count(n_test(r)))),
    (R, "sweep best {} % of {} ({}-{} %; batch {}, lr {}, epoch {})", "metrics/sweep_summary.json, metrics/sweep/",
     sweep_best),
    (R, "at lr 0.1 the test accuracy stays within {}-{} points over the last 10 epochs while the train loss "
        "falls {}-{}x from epoch 10 to 20", SUMMARY,
     lambda r: (*last_ten_range(r), *loss_fall(r))),
    (R, "lr 0.001 after 20 epochs: {} / {} / {} % at batch 32 / 64 / 128", "metrics/sweep/*-0.001.json",
     lambda r: tuple(pct(sweep(r, f"{b}-0.001")["final_test_acc"]) for b in BATCHES)),
    (R, "lr 10⁻⁵ stays at chance ({} %)", "metrics/sweep/128-1e-05.json",
     lambda r: (pct(sweep(r, "128-1e-05")["final_test_acc"]),)),
    # problem 4
    (R, "model2 keeps {} % of {} untargeted ({}-{} %) and {} % of {} targeted images ({}-{} %)",
     "reference/seed.yaml",
     lambda r: tuple(x for kind in ("untargeted", "targeted") for x in (
         pct(homework_transfer(r, kind)[0]), count(homework_transfer(r, kind)[1]), *ci(*homework_transfer(r, kind))))),
    (R, "both attacks fool model1 on {} {} correctly classified test images (median {} / {} steps)",
     "metrics/attack_*.json, " + TRANSFER,
     lambda r: ("all" if all(js(r, f"metrics/attack_{k}.json")["success_rate"] == 1 for k in ("untargeted", "targeted"))
                else "not all", count(attacked(r)), *(f"{js(r, f'metrics/attack_{k}.json')['steps_median']:.0f}"
                                                     for k in ("untargeted", "targeted")))),
    (R, "model2 keeps {} % ({}-{} %) / {} % ({}-{} %) of them", "metrics/transfer.json, " + TRANSFER,
     lambda r: (*receiver(r, "untargeted"), *receiver(r, "targeted"))),
    (R, "{} / {} points above the homework's figures (95 % intervals of the difference, both samples counted: "
        "{}-{} / {}-{})", "metrics/transfer.json, " + TRANSFER + ", reference/seed.yaml",
     lambda r: homework_differences(r)),
    # defence 1
    (R, "clean {} % of {} ({}-{} %); on model1's adversarial images {} % ({}-{} %) / {} % ({}-{} %) of {}",
     "metrics/train/retrain.json, " + TRANSFER,
     lambda r: (*acc_ci(r, "retrain")[:1], count(n_test(r)), *acc_ci(r, "retrain")[1:],
                *receiver(r, "untargeted", "retrain"), *receiver(r, "targeted", "retrain"), count(attacked(r)))),
    (R, "against a fresh attack at ε 0.1: {} % of {} ({}-{} %), model1 {} % ({}-{} %) on the same images: {} "
        "(paired, 95 % interval {}-{}; McNemar p = {}); at ε 0.3: {} of {} ({}-{} %)", ROB + ", plots/robustness/images/",
     lambda r: (*worst_ci(r, "retrain", 0.1), pct(worst(r, "model1", 0.1)[0]), *worst_ci(r, "model1", 0.1)[2:],
                relation(retrain_vs_model1(r), "higher", "lower"),
                *magnitudes(retrain_vs_model1(r)), f"{retrain_vs_model1(r)['p_value']:.0e}", *worst_ci(r, "retrain", 0.3))),
    # defence 2
    (R, "**{} % of {} ({}-{} %)** (PGD alone: {} %; AutoAttack fools {} images every other attack missed, {} of them "
        "by Square alone after every gradient attack: {}), model1 {} of {}; clean {} % of {} ({}-{} %)",
     ROB + ", plots/robustness/adversarial_training.json, metrics/train/adversarial_training.json",
     lambda r: (*worst_ci(r, "adversarial_training", 0.3), pct(float(robustness(r, "adversarial_training")[0.3]["pgd"])),
                robustness(r, "adversarial_training")[0.3]["only_autoattack"],
                check(r, "adversarial_training", "gradient_free")["numbers"]["square_only"],
                "a warning of partly masked gradients" if check(r, "adversarial_training", "gradient_free")["verdict"]
                == "warning" else "within the reference's threshold", *worst_ci(r, "model1", 0.3)[:2],
                *acc_ci(r, "adversarial_training")[:1], count(n_test(r)), *acc_ci(r, "adversarial_training")[1:])),
    # defence 3
    (R, "TRADES' loss: worst case at ε 0.3 **{} % of {} ({}-{} %)** (PGD alone: {} %; AutoAttack fools {} images every "
        "other attack missed; {} checks against masked gradients pass); clean {} % of {} ({}-{} %)",
     ROB + ", plots/robustness/trades.json, metrics/train/trades.json",
     lambda r: (*worst_ci(r, "trades", 0.3), pct(float(robustness(r, "trades")[0.3]["pgd"])),
                count(robustness(r, "trades")[0.3]["only_autoattack"]), checks_passed(r, "trades"),
                *acc_ci(r, "trades")[:1], count(n_test(r)), *acc_ci(r, "trades")[1:])),
    (R, "against adversarial training on the same {} images: {} (paired, 95 % interval {} to {} points; McNemar p = {}); {} the "
        "TRADES paper's model's {} % under AutoAttack (Croce and Hein 2020; 95 % interval {}-{}, both samples counted)",
     "plots/robustness/images/, reference/anchors.yaml, " + ROB,
     lambda r: (count(trades_vs_adversarial_training(r)["images"]), paired_words(trades_vs_adversarial_training(r)),
                *magnitudes(trades_vs_adversarial_training(r)), f"{trades_vs_adversarial_training(r)['p_value']:.2g}",
                *anchor_phrase(r, *TRADES, "trades"))),
    (R, "{} Madry et al.'s {} % under AutoAttack (95 % interval {}-{}), {} TRADES' {} % ({}-{}); our PGD-50 × 10 {} "
        "Madry et al.'s {} % under PGD-100 × 50 ({}-{})", "reference/anchors.yaml, " + ROB,
     lambda r: (*anchor_phrase(r, *MADRY_AA), *anchor_phrase(r, *TRADES), *anchor_phrase(r, *MADRY))),

    # docs/results.md
    (RES, "`dvc metrics show` prints the headline numbers ({} values)", "metrics/**/*.json", metric_values),
    (RES, "| model1 / model2 test accuracy ({} epochs, batch {}, lr {}) | not stated (curves only) | {} % / {} % of {} "
          "(best epoch {} % / {} %) |", "params.yaml, metrics/train/, plots/train/",
     lambda r: (str(params(r)["train"]["epochs"]), str(params(r)["train"]["batch_size"]), num(params(r)["train"]["lr"]),
                pct(acc(r, "model1"), 2), pct(acc(r, "model2"), 2), count(n_test(r)),
                *(pct(max(float(x["test_acc"]) for x in rows(r, f"plots/train/{m}.csv")), 2) for m in ("model1", "model2")))),
    (RES, "| {} images, model1 accuracy 0 | {} (every correctly classified test image), success {} %, median {} steps |",
     "reference/seed.yaml, metrics/attack_untargeted.json, " + TRANSFER,
     lambda r: (count(homework_transfer(r, "untargeted")[1]), count(attacked(r)),
                pct(js(r, "metrics/attack_untargeted.json")["success_rate"], 2),
                f"{js(r, 'metrics/attack_untargeted.json')['steps_median']:.0f}")),
    (RES, "| {} images, model1 accuracy 0 | {}, success {} %, median {} steps |",
     "reference/seed.yaml, metrics/attack_targeted.json",
     lambda r: (count(homework_transfer(r, "targeted")[1]), count(attacked(r)),
                pct(js(r, "metrics/attack_targeted.json")["success_rate"], 2),
                f"{js(r, 'metrics/attack_targeted.json')['steps_median']:.0f}")),
    *[(RES, f"| {kind}: model2 accuracy on them (transfer) | {{}} of {{}} ({{}}-{{}}) | {{}} of {{}} ({{}}-{{}}) |",
       "reference/seed.yaml, metrics/transfer.json",
       lambda r, kind=kind: (f"{homework_transfer(r, kind)[0]:.3f}", count(homework_transfer(r, kind)[1]),
                             *ci_frac(*homework_transfer(r, kind)),
                             f"{js(r, 'metrics/transfer.json')[kind]['model2_accuracy']:.3f}", count(attacked(r)),
                             *ci_frac(js(r, "metrics/transfer.json")[kind]["model2_accuracy"], attacked(r))))
      for kind in ("untargeted", "targeted")],
    (RES, "On all {} grid points (w, b ∈ [{}, {}], step {}; x = {}) CE > L2", LOSS + ", params.yaml",
     lambda r: (ce_above_l2_everywhere(r), *map(num, params(r)["loss_surfaces"]["w_range"]),
                num(params(r)["loss_surfaces"]["step"]), num(params(r)["loss_surfaces"]["x"]))),
    (RES, "max |∂CE/∂w| = {} against max |∂L2/∂w| = {}. A plateau (|∂L/∂w| < 10⁻³ while the output misses y by at "
          "least {}) covers {} % of the grid for L2 and {} for CE", LOSS,
     lambda r: (f"{observation(r, 'seed_target', 'max_abs_ce_grad_w'):.3f}",
                f"{observation(r, 'seed_target', 'max_abs_l2_grad_w'):.3f}", num(observation(r, "seed_target", "wrong_by")),
                pct(observation(r, "seed_target", "plateau_fraction_l2_grad_w")),
                "none" if observation(r, "seed_target", "plateau_fraction_ce_grad_w") == 0 else "some")),
    (RES, "(S = {}), |∂L2/∂w| = {} while |∂CE/∂w| = {} = |x|", LOSS,
     lambda r: (sci(observation(r, "class_label", "wrong_end_output")),
                sci(observation(r, "class_label", "wrong_end_abs_l2_grad_w")),
                f"{observation(r, 'class_label', 'wrong_end_abs_ce_grad_w'):.3f}")),
    (RES, "(lr {}) from the same start (w, b) = ({}, {}), S = {}, the neuron reaches |S − y| ≤ {} after {} steps with "
          "CE and {} with L2. Analytic and autograd gradients differ by at most {}", LOSS,
     lambda r: (num(observation(r, "descent", "lr")), num(observation(r, "descent", "start_w")),
                num(observation(r, "descent", "start_b")), f"{observation(r, 'descent', 'start_output'):.4f}",
                num(observation(r, "descent", "target_error")), count(observation(r, "descent", "steps_ce")),
                count(observation(r, "descent", "steps_l2")),
                f"{max(observation(r, s, 'max_analytic_autograd_diff') for s in ('seed_target', 'class_label')):.1e}")),
    (RES, "The tanh network (lr {}, N(0, {}) init, seed {}) classifies all four points from epoch {} on (the "
          "homework: {}). Over seeds 0-{} with the same {} epochs, {} of {} solve it ({}-{} %)",
     "params.yaml, metrics/xor.json, reference/seed.yaml, " + XOR,
     lambda r: (num(params(r)["xor"]["lr"]), num(params(r)["xor"]["init_scale"]), str(params(r)["xor"]["seed"]),
                count(js(r, "metrics/xor.json")["nonlinear"]["first_solved_epoch"]),
                count(yml(r, "reference/seed.yaml")["xor"]["solved_epoch"]), str(params(r)["xor"]["n_seeds"] - 1),
                count(params(r)["xor"]["epochs"]), *xor_seeds(r, "nonlinear"))),
    (RES, "The linear network solves it for {} of {} seeds ({}-{} %), and no seed gets above {} % ({} of 4 points)", XOR,
     lambda r: (*xor_seeds(r, "linear"), pct(float(xor(r, "linear")["max_final_accuracy_over_seeds"]), 0),
                f"{4 * float(xor(r, 'linear')['max_final_accuracy_over_seeds']):g}")),
    (RES, "model1 {} % / model2 {} % test accuracy of {} after {} epochs (batch {}, lr {}, seeds {} and {}; intervals "
          "{}-{} % / {}-{} %)", "metrics/train/, params.yaml",
     lambda r: (pct(acc(r, "model1"), 2), pct(acc(r, "model2"), 2), count(n_test(r)),
                str(params(r)["train"]["epochs"]), str(params(r)["train"]["batch_size"]), num(params(r)["train"]["lr"]),
                str(params(r)["train"]["models"]["model1"]["seed"]), str(params(r)["train"]["models"]["model2"]["seed"]),
                *acc_ci(r, "model1")[1:], *acc_ci(r, "model2")[1:])),
    *[(RES, "{}", "plots/sweep_summary/table.csv", lambda r, i=i: (sweep_row(r, rows(r, "plots/sweep_summary/table.csv")[i]),))
      for i in range(10)],
    (RES, "at lr 0.1 it is {}-{} % after 10 epochs and peaks at {} % / {} % / {} % (epoch {} / {} / {} for batch "
          "32 / 64 / 128) while the train loss falls {}-{}x more from epoch 10 to 20, to between {} and {}", SUMMARY,
     lambda r: (pct(min(curve(r, f"{b}-0.1")[9] for b in BATCHES)), pct(max(curve(r, f"{b}-0.1")[9] for b in BATCHES)),
                *(pct(sweep(r, f"{b}-0.1")["best_test_acc"], 2) for b in BATCHES),
                *(str(sweep(r, f"{b}-0.1")["best_epoch"]) for b in BATCHES), *loss_fall(r), *min_losses(r))),
    (RES, "Batch 128 ends {} points below its peak ({} %), {} the peak's 95 % interval", "metrics/sweep/128-0.1.json",
     stagnates),
    (RES, "The report counts {} of the 10 points as over-fitting", SUMMARY, lambda r: (over_fitting(r),)),
    (RES, "(lr 0.001: {} % / {} % / {} % after 20 epochs for batch 32 / 64 / 128)", "metrics/sweep/*-0.001.json",
     lambda r: tuple(pct(sweep(r, f"{b}-0.001")["final_test_acc"]) for b in BATCHES)),
    (RES, "accuracy add up to {} / {} / {} points) but not at lr 0.1 ({} / {} / {}: batch {} fluctuates most)", SUMMARY,
     lambda r: (*falls(r, "0.01"), *falls(r, "0.1"), str(BATCHES[max(range(3), key=lambda i: float(falls(r, "0.1")[i]))]))),
    (RES, "lr 1e-5 does not leave chance ({} %)", "metrics/sweep/128-1e-05.json",
     lambda r: (pct(sweep(r, "128-1e-05")["final_test_acc"]),)),
    (RES, "Both attacks fool model1 on all {} correctly classified test images (median {} untargeted and {} targeted "
          "steps of α = {} in the models' [-1, 1] pixel units)", "metrics/attack_*.json, params.yaml, " + TRANSFER,
     lambda r: (count(attacked(r)), f"{js(r, 'metrics/attack_untargeted.json')['steps_median']:.0f}",
                f"{js(r, 'metrics/attack_targeted.json')['steps_median']:.0f}", num(params(r)["attack"]["step_size"]))),
    (RES, "Model2 still classifies {} % of the untargeted and {} % of the targeted images correctly, against {} % of "
          "their clean originals, and predicts the attack's target for {} %", "metrics/transfer.json, " + TRANSFER,
     lambda r: (pct(js(r, "metrics/transfer.json")["untargeted"]["model2_accuracy"]),
                pct(js(r, "metrics/transfer.json")["targeted"]["model2_accuracy"]),
                pct(float(transfer_set(r, "untargeted")["model2_clean_accuracy"])),
                pct(js(r, "metrics/transfer.json")["targeted"]["model2_target_rate"]))),
    (RES, "less than its {} % / {} % suggest", "reference/seed.yaml",
     lambda r: tuple(pct(homework_transfer(r, kind)[0]) for kind in ("untargeted", "targeted"))),
    *[(RES, "{}", f"reference/seed.yaml, plots/attack_{kind}/images.csv",
       lambda r, kind=kind, index=index: (gallery_row(r, kind, index),))
      for kind, indices in (("untargeted", [614, 1186, 1486, 2471, 6851]), ("targeted", [5, 114, 5275, 1762, 3260]))
      for index in indices],

    # docs/defences.md
    (DEF, "a seeded `retrain.share` ({} %) of them, made on model1 by the homework's own attack (`attack.*`): {} "
          "copies on the full MNIST", "params.yaml, metrics/train/retrain.json",
     lambda r: (pct(params(r)["retrain"]["share"], 0), count(js(r, "metrics/train/retrain.json")["adversarial_images"]))),
    (DEF, "the first {} images of a seeded permutation; the first {} for `adversarial_training`", "params.yaml",
     lambda r: (count(params(r)["robustness"]["models"]["model1"]["n_images"]),
                count(params(r)["robustness"]["models"]["adversarial_training"]["n_images"]))),
    *[(DEF, "{}", f"plots/robustness/{model}.csv", lambda r, model=model: (robust_row(r, model),)) for model in MODELS],
    *[(DEF, "{}", f"plots/robustness/{model}.csv", lambda r, model=model: (attack_row(r, model),)) for model in MODELS],
    (DEF, "On the whole test set ({} images) the clean accuracies of this round's models are {} %, {} %, {} %, {} % and {} %",
     "metrics/train/", lambda r: (count(n_test(r)), *(pct(acc(r, m), 2) for m in MODELS))),
    (DEF, "{} epochs of {} images): {} % of {} against the worst case at ε 0.3 ({} images; {}-{} %), {} % clean on all {}",
     "params.yaml, metrics/data.json, " + ROB + ", metrics/train/adversarial_training.json",
     lambda r: (str(params(r)["adversarial_training"]["epochs"]),
                count(js(r, "metrics/data.json")["n_train"] - params(r)["adversarial_training"]["guard"]["images"]),
                *worst_ci(r, "adversarial_training", 0.3)[:2],
                count(round(worst(r, "adversarial_training", 0.3)[0] * worst(r, "adversarial_training", 0.3)[1])),
                *worst_ci(r, "adversarial_training", 0.3)[2:], pct(acc(r, "adversarial_training"), 2),
                count(n_test(r)))),
    (DEF, "PGD-50 × 10 alone leaves {} %; AutoAttack fools {} images every other attack failed on, so a PGD-only "
          "figure would overstate it by {} points", ROB,
     lambda r: (pct(float(robustness(r, "adversarial_training")[0.3]["pgd"])),
                robustness(r, "adversarial_training")[0.3]["only_autoattack"],
                f"{100 * (float(robustness(r, 'adversarial_training')[0.3]['pgd']) - worst(r, 'adversarial_training', 0.3)[0]):.1f}")),
    (DEF, "Its guard's PGD-10 accuracy rose from {} % in the first ramp epoch to {} %, with {}",
     "plots/train/adversarial_training.csv, metrics/train/adversarial_training.json", guard),
    (DEF, "our PGD-50 × 10 ({} %) is {} Madry et al.'s {} % under PGD-100 × 50 ({}-{}; theirs the stronger PGD) "
          "and {} Wong et al.'s {} % under PGD-50 × 10 ({}-{}); our worst case ({} %), which includes AutoAttack and "
          "so is at most what it alone gives, is {} Madry et al.'s {} % under AutoAttack ({}-{}), {} the challenge's "
          "strongest attack's {} % ({}-{}), {} Wong et al.'s {} % under AutoAttack ({}-{}) and {} TRADES' {} % ({}-{})",
     "reference/anchors.yaml, " + ROB,
     lambda r: (pct(float(robustness(r, "adversarial_training")[0.3]["pgd"])), *anchor_phrase(r, *MADRY),
                *anchor_phrase(r, *WONG), pct(worst(r, "adversarial_training", 0.3)[0]), *anchor_phrase(r, *MADRY_AA),
                *anchor_phrase(r, "Madry", "strongest"), *anchor_phrase(r, "Wong", "AutoAttack"),
                *anchor_phrase(r, *TRADES))),
    (DEF, "Square, gradient-free and run last, fooled {} that APGD-CE, APGD-T and FAB-T had also missed: {} points",
     "plots/robustness/adversarial_training.json",
     lambda r: (str(check(r, "adversarial_training", "gradient_free")["numbers"]["square_only"]),
                f"{100 * check(r, 'adversarial_training', 'gradient_free')['numbers']['drop']:.1f}")),
    (DEF, "PGD-10 / 50 / 200 leave {} / {} / {} %", "plots/robustness/adversarial_training.json",
     lambda r: tuple(pct(s["accuracy"]) for s in check(r, "adversarial_training", "more_steps")["numbers"])),
    (DEF, "configuration than the committed model's {} % and {} % of {} above", "metrics/train/, " + ROB,
     lambda r: (pct(acc(r, "adversarial_training"), 2), *worst_ci(r, "adversarial_training", 0.3)[:2])),
    (DEF, "it falls like the others ({} % at 0.4)", ROB, lambda r: (pct(worst(r, "adversarial_training", 0.4)[0]),)),
    (DEF, "`trades` (TRADES' loss, β = {}, {} steps of {}, {} epochs of {} images): {} % of {} against the worst case at "
          "ε 0.3 ({} images; {}-{} %), {} % clean on all {}",
     "params.yaml, metrics/data.json, " + ROB + ", metrics/train/trades.json",
     lambda r: (num(params(r)["trades"]["beta"]), str(params(r)["trades"]["steps"]), num(params(r)["trades"]["step_size"]),
                str(params(r)["trades"]["epochs"]),
                count(js(r, "metrics/data.json")["n_train"] - params(r)["trades"]["guard"]["images"]),
                *worst_ci(r, "trades", 0.3)[:2],
                count(round(worst(r, "trades", 0.3)[0] * worst(r, "trades", 0.3)[1])),
                *worst_ci(r, "trades", 0.3)[2:], pct(acc(r, "trades"), 2), count(n_test(r)))),
    (DEF, "Against TRADES' model, PGD-50 × 10 alone leaves {} % and AutoAttack fools {} images every other attack "
          "failed on ({} of them by Square alone: {} points); PGD-10 / 50 / 200 leave {} / {} / {} %; {} checks pass",
     "plots/robustness/trades.json, " + ROB,
     lambda r: (pct(float(robustness(r, "trades")[0.3]["pgd"])), count(robustness(r, "trades")[0.3]["only_autoattack"]),
                str(check(r, "trades", "gradient_free")["numbers"]["square_only"]),
                f"{100 * check(r, 'trades', 'gradient_free')['numbers']['drop']:.1f}",
                *(pct(x["accuracy"]) for x in check(r, "trades", "more_steps")["numbers"]), checks_passed(r, "trades"))),
    (DEF, "TRADES' guard (PGD-10 on its held-out images) rose from {} % in the first ramp epoch to {} %, with {}",
     "plots/train/trades.csv, metrics/train/trades.json", lambda r: guard(r, "trades")),
    (DEF, "On the same {} images TRADES against adversarial training: at ε 0.1 {} ({} to {} points), at ε 0.3 {} "
          "({} to {} points; McNemar's exact test: {} images only TRADES keeps, {} only adversarial training, p = {})",
     "plots/robustness/images/",
     lambda r: (count(trades_vs_adversarial_training(r)["images"]),
                paired_words(trades_vs_adversarial_training(r, "0.1")), *magnitudes(trades_vs_adversarial_training(r, "0.1")),
                paired_words(trades_vs_adversarial_training(r)), *magnitudes(trades_vs_adversarial_training(r)),
                str(trades_vs_adversarial_training(r)["only_first"]), str(trades_vs_adversarial_training(r)["only_second"]),
                f"{trades_vs_adversarial_training(r)['p_value']:.2g}")),
    (DEF, "it pays {} points of clean accuracy ({} against {} % of {})", "metrics/train/",
     lambda r: (f"{100 * (acc(r, 'adversarial_training') - acc(r, 'trades')):.2f}", pct(acc(r, "trades"), 2),
                pct(acc(r, "adversarial_training"), 2), count(n_test(r)))),
    (DEF, "Its worst case is {} the TRADES paper's model's {} % under AutoAttack (Croce and Hein 2020; {}-{})", "reference/anchors.yaml, " + ROB,
     lambda r: anchor_phrase(r, *TRADES, "trades")),
    (DEF, "`retrain`: {} % clean; on model1's adversarial test images {} % / {} % of {} (untargeted / targeted) against "
          "model2's {} % / {} %", "metrics/train/retrain.json, " + TRANSFER,
     lambda r: (pct(acc(r, "retrain"), 2), receiver(r, "untargeted", "retrain")[0], receiver(r, "targeted", "retrain")[0],
                count(attacked(r)), receiver(r, "untargeted")[0], receiver(r, "targeted")[0])),
    (DEF, "on the same {} images as model1: {} % against model1's {} % at ε 0.1, {} (95 % interval {}-{}; McNemar's "
          "exact test: {} images only retrain keeps, {} only model1, p = {})", ROB + ", plots/robustness/images/",
     lambda r: (str(retrain_vs_model1(r)["images"]), pct(worst(r, "retrain", 0.1)[0]), pct(worst(r, "model1", 0.1)[0]),
                relation(retrain_vs_model1(r), "higher", "lower"),
                *magnitudes(retrain_vs_model1(r)), str(retrain_vs_model1(r)["only_first"]),
                str(retrain_vs_model1(r)["only_second"]), f"{retrain_vs_model1(r)['p_value']:.0e}")),
    *[(DEF, "{}", "plots/robustness/transfer.csv", lambda r, model=model: (transfer_row(r, model),)) for model in MODELS],
    (DEF, "The homework's attack stopped at the first flip leaves model2 at {} % of {} ({}-{} %; {} % on all {}), far "
          "above the homework's {} % / {} %", "plots/robustness/transfer.csv, metrics/transfer.json, reference/seed.yaml",
     lambda r: (kappa(r, 0)[0], count(row(r, "plots/robustness/transfer.csv", setting="margin", margin=0)["images"]),
                *kappa(r, 0)[1:], pct(js(r, "metrics/transfer.json")["untargeted"]["model2_accuracy"]),
                count(attacked(r)), *(pct(homework_transfer(r, k)[0]) for k in ("untargeted", "targeted")))),
    (DEF, "κ 4 it leaves {} % ({}-{} %), by κ 8 {} % ({}-{} %); PGD images within ε 0.1 / 0.2 leave {} % / {} %",
     "plots/robustness/transfer.csv",
     lambda r: (*kappa(r, 4), *kappa(r, 8), pgd_transfer(r, 0.1), pgd_transfer(r, 0.2))),

    # docs/data.md: the committed main beside the earlier run's excerpt; what a clone holds
    (DATA, "the committed main has {} for model1 and {} / {} for model2 on the untargeted / targeted images",
     "metrics/train/model1.json, metrics/transfer.json",
     lambda r: (f"{acc(r, 'model1'):.5g}", *(f"{js(r, 'metrics/transfer.json')[k]['model2_accuracy']:.5g}"
                                            for k in ("untargeted", "targeted")))),
    (DATA, "{} (models {}, plots {}, report {}: the outputs' sizes in `dvc.lock`)", "dvc.lock",
     lambda r: (mb(sum(lock_size(r, p) for p in ("models", "plots", "report", "metrics", "data/params_check.txt"))),
                mb(lock_size(r, "models")), mb(lock_size(r, "plots")), mb(lock_size(r, "report")))),
    (DATA, "`data/mnist` (the prepared splits) | {} MB (`dvc.lock`)", "dvc.lock",
     lambda r: (f"{lock_size(r, 'data/mnist') / 1e6:.0f}",)),
    (DATA, "data/mnist ({} files and their listing, {} MB)", "dvc.lock",
     lambda r: (lock_files(r, "data/mnist"), f"{lock_size(r, 'data/mnist') / 1e6:.0f}")),

    # docs/dvc.md: what a recompute moved, with the committed side from the results
    (DVC, "the 2-core Intel Xeon's, model1 0.9931; the committed main has {}", "metrics/train/model1.json",
     lambda r: (f"{acc(r, 'model1'):.5g}",)),
    (DVC, "model1 99.31 → {} %, model2 99.25 → {} % of {}", "metrics/train/",
     lambda r: (pct(acc(r, "model1"), 2), pct(acc(r, "model2"), 2), count(n_test(r)))),
    (DVC, "best 99.34 → {} %", "metrics/sweep_summary.json",
     lambda r: (pct(js(r, "metrics/sweep_summary.json")["best_test_acc"], 2),)),
    (DVC, "9,931 → {} images", TRANSFER, lambda r: (count(attacked(r)),)),
    (DVC, "success {} % both; median steps 28 → {} and 40 → {}", "metrics/attack_*.json",
     lambda r: (pct(min(js(r, f"metrics/attack_{k}.json")["success_rate"] for k in ("untargeted", "targeted")), 0),
                *(f"{js(r, f'metrics/attack_{k}.json')['steps_median']:.0f}" for k in ("untargeted", "targeted")))),
    (DVC, "its test accuracy is 99.26 % against the committed {} %", "metrics/train/model1.json",
     lambda r: (pct(acc(r, "model1"), 2),)),

    ("docs/params.md", "`train@model1` at 1 thread gave 99.26 % against the committed {} % at 2",
     "metrics/train/model1.json", lambda r: (pct(acc(r, "model1"), 2),)),

    (R, "its stages add up to {} s", "docs/performance.md's table of the AMD EPYC's stages", epyc_stage_seconds),
    (PERF, "These {} stages add up to **{} s", "docs/performance.md's table of the AMD EPYC's stages",
     lambda r: (str(len(epyc_stages(r))), *epyc_stage_seconds(r))),

    # docs/performance.md and docs/gpu.md: the counts behind the EPYC's timings
    (PERF, "AutoAttack at the reference's settings took 2,784 s (on the {} images every other attack failed on at ε "
           "0.3)", ROB, adversarial_examples_before_autoattack),
    (PERF, "`robustness@adversarial_training` and `robustness@trades` ({} images each)", "params.yaml",
     lambda r: (count(params(r)["robustness"]["models"]["trades"]["n_images"]),)),
    (GPU, "4,538 s for adversarial_training's {} images and 3,947 s for TRADES' {}", "params.yaml",
     lambda r: tuple(count(params(r)["robustness"]["models"][m]["n_images"]) for m in DEFENDED)),
]


# --- the check --------------------------------------------------------------------------------------

def flat(text):
    return re.sub(r"\s+", " ", text)


def phrase(root, claim):
    _, template, _, values = claim
    return template.format(*values(root))


def mismatch(root, claim):
    """None when the doc says what the committed files give; otherwise one line naming the doc, the
    phrase expected and its source."""
    doc, _, source, _ = claim
    expected = phrase(root, claim)
    if flat(expected) in flat(_text(root / doc)):
        return None
    return f"{doc} should say {expected!r} (from {source})"


def claim_id(claim):
    doc, template, source, _ = claim
    words = re.sub(r"[{}|*`\\]+", " ", template).split()
    return f"{doc}: {' '.join(words[:8])}" if words else f"{doc}: a table row from {source}"


@pytest.mark.parametrize("claim", CLAIMS, ids=[f"{i:02d} {claim_id(c)}" for i, c in enumerate(CLAIMS)])
def test_the_doc_says_what_the_committed_results_give(claim):
    assert mismatch(ROOT, claim) is None, mismatch(ROOT, claim)


def test_every_doc_with_claims_exists():
    assert {doc for doc, *_ in CLAIMS} <= set(DOCS)


def test_a_changed_metric_fails_the_claims_that_restate_it(tmp_path):
    for name in [*SOURCES, "README.md", "docs"]:
        source, copy = ROOT / name, tmp_path / name
        (shutil.copytree if source.is_dir() else shutil.copy)(source, copy)
    assert [mismatch(tmp_path, claim) for claim in CLAIMS if mismatch(tmp_path, claim)] == []

    model1 = tmp_path / "metrics/train/model1.json"
    model1.write_text(json.dumps({**json.loads(model1.read_text()), "final_test_acc": 0.9871}, indent=2) + "\n")
    _text.cache_clear()
    failures = [mismatch(tmp_path, claim) for claim in CLAIMS if mismatch(tmp_path, claim)]
    _text.cache_clear()
    print("\n".join(failures))
    assert failures and all("metrics/train/" in failure for failure in failures)
    assert "README.md should say 'model1 98.71 % (98.5-98.9 %), model2 99.25 % (99.1-99.4 %) of 10,000 test images' " \
           "(from metrics/train/model1.json, metrics/train/model2.json, metrics/data.json)" in failures
