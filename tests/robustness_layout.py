"""Section 5's inputs in the robustness stages' layout (per model: metrics/robustness/<model>.json,
plots/robustness/<model>.csv and .json, plots/robustness/images/<model>.csv; plots/robustness/transfer.csv),
written from a small table of accuracies, for building the report in a test; and a copy of the committed
outputs with them (and with the keys the training stages record beside their numbers)."""
import json
import shutil
from pathlib import Path

import pandas as pd

from stages.lib.autoattack import settings
from stages.lib.stats import METHOD, interval
from stages.lib.units import UNITS
from tests.conftest import ROOT

EPSILONS = (0.0, 0.1, 0.2, 0.3, 0.4)  # L-inf, [0, 1] units
HEADLINE = ("0.1", "0.3")
# model -> attack -> accuracy at each of EPSILONS
CURVES = {
    "model1": {"fgsm": (0.99, 0.856, 0.43, 0.202, 0.11), "pgd": (0.99, 0.762, 0.02, 0.0, 0.0),
               "minimal": (0.99, 0.802, 0.122, 0.002, 0.0), "worst": (0.99, 0.762, 0.02, 0.0, 0.0)},
    "model2": {"fgsm": (0.99, 0.86, 0.45, 0.21, 0.12), "pgd": (0.99, 0.756, 0.03, 0.0, 0.0),
               "minimal": (0.99, 0.79, 0.13, 0.004, 0.0), "worst": (0.99, 0.756, 0.03, 0.0, 0.0)},
    "retrain": {"fgsm": (0.99, 0.9, 0.6, 0.3, 0.15), "pgd": (0.99, 0.84, 0.1, 0.0, 0.0),
                "minimal": (0.99, 0.88, 0.2, 0.01, 0.0), "worst": (0.99, 0.84, 0.1, 0.0, 0.0)},
    "adversarial_training": {"fgsm": (0.986, 0.982, 0.976, 0.97, 0.4), "pgd": (0.986, 0.98, 0.974, 0.934, 0.06),
                             "minimal": (0.986, 0.984, 0.98, 0.97, 0.5), "worst": (0.986, 0.98, 0.97, 0.912, 0.054)},
}
# each model's card, models/<model>.json (a summary formatted with its metrics): the model's role, its label, and
# for a defence the homework's claim it tests and how it was trained
MODEL_KEYS = {
    "model1": {"role": "baseline", "label": "model 1"},
    "model2": {"role": "baseline", "label": "model 2"},
    "retrain": {"role": "defence", "label": "defence 1 (retrained)", "claim": "defence_retrain",
                "summary": "Retrained on {adversarial_images:,} adversarial images of model 1 added to the training "
                           "set."},
    "adversarial_training": {"role": "defence", "label": "defence 2 (adversarial training)",
                             "claim": "defence_adversarial_loss",
                             "summary": "Trained on adversarial examples made on the fly (the loss on them, the compound "
                                        "loss)."},
}
IMAGES = {"model1": 1000, "model2": 1000, "retrain": 1000, "adversarial_training": 3500}
CHECKS = ("iterative_vs_single_step", "more_steps", "large_budget", "gradient_free", "transfer")
ONLY_AUTOATTACK = {"model1": 0, "model2": 0, "retrain": 0, "adversarial_training": 11}
TRANSFER = [  # setting, epsilon, margin, median L-inf ([0, 1] units), accuracy per model
    ("pgd", 0.0, None, None, (0.99, 0.99, 0.99, 0.986)),
    ("pgd", 0.1, None, None, (0.78, 0.93, 0.968, 0.98)),
    ("pgd", 0.3, None, None, (0.0, 0.058, 0.404, 0.968)),
    ("margin", None, 0.0, 0.14, (0.0, 0.96, 0.984, 0.986)),
    ("margin", None, 4.0, 0.18, (0.0, 0.828, 0.96, 0.984)),
]


def attack_record(with_transfer):
    record = {"fgsm": {"label": "FGSM", "steps": 1, "step_size": "epsilon"},
              "pgd": {"label": "PGD-50 × 10", "steps": 50, "step_size": 0.01, "restarts": 10,
                      "random_start": "uniform in the epsilon ball"},
              "minimal": {"label": "the homework's attack", "step_size_model_units": 0.01, "step_size": 0.005,
                          "max_steps": 300, "bounded": False}}
    if with_transfer:
        record["transfer"] = {"label": "transfer from model 1", "source": "model1", "steps": 50, "step_size": 0.01,
                              "made_by": "PGD-50 on model 1, one random start, every step taken (no early stop)"}
    for k in (10, 50, 200):
        record[f"pgd{k}"] = {"label": f"PGD-{k}", "steps": k, "step_size": 0.75 / k, "restarts": 1, "epsilon": [0.3]}
    record |= {name: {**a, "epsilon": [0.3], "part_of": "autoattack"} for name, a in settings(100, 5000).items()}
    record["autoattack"] = {"label": "AutoAttack, standard version", "reference_settings": True,
                            "library": "torchattacks", "attacks": list(settings(100, 5000)),
                            "run": "one after another, each on the images every earlier attack failed on",
                            "epsilon": [0.3]}
    return record


def check_record(model, n, warnings=()):
    """The stage's five checks with plausible numbers; those named in `warnings` warn."""
    same = {"difference": 0.0, "low": -0.01, "high": 0.01, "p_value": 1.0, "only_first": 0, "only_second": 0,
            "words": "no difference detectable at this sample size"}
    numbers = {
        "iterative_vs_single_step": [{"epsilon": e, "fgsm": 0.9, "pgd": 0.8, "pgd_minus_fgsm": {  # 3 only FGSM fooled
            **same, "only_first": 3 if e == 0.1 else 0}} for e in EPSILONS[1:]],
        "more_steps": [{"steps": 10, "accuracy": 0.93}, {"steps": 50, "accuracy": 0.92, "minus_fewer_steps": same},
                       {"steps": 200, "accuracy": 0.92, "minus_fewer_steps": same}],
        "large_budget": {"worst": 0.0, "pgd": 0.0, "at_most": 0.1},
        "gradient_free": {"square_only": 30 if "gradient_free" in warnings else 0, "images": n,
                          "drop": (30 if "gradient_free" in warnings else 0) / n, "alpha": 0.002},
        "transfer": [{"epsilon": e, "transfer": 0.95, "white_box": 0.9, "transfer_only": 0,
                      "white_box_minus_transfer": same} for e in EPSILONS[1:]]}
    checks = [{"check": c, "epsilon": 0.3, "numbers": numbers[c], "verdict": "warning" if c in warnings else "pass"}
              for c in CHECKS if c != "transfer" or model != "model1"]
    for c in checks:
        if c["check"] == "transfer":
            c["source"] = "model1"
    return checks


def write_robustness(root, curves=CURVES, images=IMAGES, warnings=None):
    """The robustness stages' outputs under root, from `curves` (model -> attack -> accuracies) and
    `warnings` (model -> the checks that warn)."""
    warnings = warnings or {}
    root = Path(root)
    (root / "metrics/robustness").mkdir(parents=True, exist_ok=True)
    (root / "plots/robustness").mkdir(parents=True, exist_ok=True)
    for model, attacks in curves.items():
        n = images[model]
        table = pd.DataFrame({"epsilon": EPSILONS, "images": n, **attacks,
                              "transfer": attacks["pgd"] if model != "model1" else [None] * len(EPSILONS),
                              "only_autoattack": [ONLY_AUTOATTACK.get(model, 0) if e == 0.3 else None for e in EPSILONS],
                              "worst_low": [interval(a, n)["low"] for a in attacks["worst"]],
                              "worst_high": [interval(a, n)["high"] for a in attacks["worst"]]})
        table.to_csv(root / f"plots/robustness/{model}.csv", index=False)
        worst = dict(zip((f"{e:g}" for e in EPSILONS), attacks["worst"]))
        (root / f"metrics/robustness/{model}.json").write_text(json.dumps(
            {"clean": worst["0"], **{f"robust_{e}": worst[e] for e in HEADLINE}}))
        (root / f"plots/robustness/{model}.json").write_text(json.dumps({
            "model": model, "interval": METHOD,
            "threat_model": {"norm": "Linf", "epsilon_units": UNITS, "epsilon": list(EPSILONS)},
            "images": {"count": n, "test_set_size": 10000, "seed": 0,
                       "selection": f"the first {n:,} of a random permutation of the 10,000 test images"},
            "attacks": attack_record(model != "model1"),
            "checks": check_record(model, n, warnings.get(model, ())),
            "versions": {"python": "3.11.7", "torch": "2.5.1", "torchattacks": "3.5.1"},
            "clean": interval(worst["0"], n),
            "worst_case": {e: interval(worst[e], n) for e in HEADLINE}}))
        (root / "plots/robustness/images").mkdir(exist_ok=True)
        fooled = [round((1 - a) * n) for a in attacks["worst"]]  # k images fooled at each budget, spread evenly
        pd.DataFrame([{"test_index": i, "label": i % 10} | {f"{e:g}": "pgd" if i * 7919 % n < k else ""
                                                           for e, k in zip(EPSILONS, fooled)}
                      for i in range(n)]).to_csv(root / f"plots/robustness/images/{model}.csv", index=False)
    pd.DataFrame([{"source": "model1", "setting": setting, "epsilon": epsilon, "margin": margin,
                   "median_linf": linf, "images": 1000,  # a model past the table's: its last column
                   **{m: accuracies[min(i, len(accuracies) - 1)] for i, m in enumerate(curves)}}
                  for setting, epsilon, margin, linf, accuracies in TRANSFER]).to_csv(
        root / "plots/robustness/transfer.csv", index=False)


def add_model_cards(root):
    """The card the training stages write beside each checkpoint, models/<model>.json (MODEL_KEYS), for each
    model of root's metrics/train, where missing: the committed models get them when those stages next rerun."""
    for path in sorted(Path(root, "metrics/train").glob("*.json")):
        card = Path(root, "models", path.name)
        if not card.exists():
            metrics = json.loads(path.read_text())
            card.write_text(json.dumps({k: v.format(**metrics) for k, v in MODEL_KEYS[path.stem].items()}, indent=2))


def outputs_copy(path, curves=CURVES, warnings=None, images=IMAGES):
    """The committed outputs the report reads under path (with the models' cards), with section 5's inputs in
    the robustness stages' layout (from `curves`, `warnings` and `images`)."""
    for name in ("plots", "metrics", "reference"):
        shutil.copytree(ROOT / name, path / name, ignore=shutil.ignore_patterns("robustness*"), dirs_exist_ok=True)
    (path / "models").mkdir(exist_ok=True)
    for card in (ROOT / "models").glob("*.json"):
        shutil.copy(card, path / "models" / card.name)
    add_model_cards(path)
    write_robustness(path, curves, images, warnings)
    return path
