"""Section 5's inputs in the robustness stages' layout (per model: metrics/robustness/<model>.json,
plots/robustness/<model>.csv and .json; plots/robustness/transfer.csv), written from a small table of
accuracies, for building the report in a test; and a copy of the committed outputs with them."""
import json
import shutil
from pathlib import Path

import pandas as pd

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
IMAGES = {"model1": 1000, "model2": 1000, "retrain": 1000, "adversarial_training": 3500}
ONLY_AUTOATTACK = {"model1": 0, "model2": 0, "retrain": 0, "adversarial_training": 11}
TRANSFER = [  # setting, epsilon, margin, median L-inf ([0, 1] units), accuracy per model
    ("pgd", 0.0, None, None, (0.99, 0.99, 0.99, 0.986)),
    ("pgd", 0.1, None, None, (0.78, 0.93, 0.968, 0.98)),
    ("pgd", 0.3, None, None, (0.0, 0.058, 0.404, 0.968)),
    ("margin", None, 0.0, 0.14, (0.0, 0.96, 0.984, 0.986)),
    ("margin", None, 4.0, 0.18, (0.0, 0.828, 0.96, 0.984)),
]


def write_robustness(root, curves=CURVES, images=IMAGES):
    """The robustness stages' outputs under root, from `curves` (model -> attack -> accuracies)."""
    root = Path(root)
    (root / "metrics/robustness").mkdir(parents=True, exist_ok=True)
    (root / "plots/robustness").mkdir(parents=True, exist_ok=True)
    for model, attacks in curves.items():
        n = images[model]
        table = pd.DataFrame({"epsilon": EPSILONS, "images": n, **attacks,
                              "only_autoattack": [ONLY_AUTOATTACK[model] if e == 0.3 else None for e in EPSILONS],
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
            "attacks": {"fgsm": {"steps": 1, "step_size": "epsilon"},
                        "pgd": {"steps": 50, "step_size": 0.01, "restarts": 10,
                                "random_start": "uniform in the epsilon ball"},
                        "seed_attack": {"step_size_model_units": 0.01, "step_size": 0.005, "max_steps": 300},
                        "autoattack": {"library": "torchattacks", "version": "standard",
                                       "attacks": ["APGD-CE", "APGD-T", "FAB-T", "Square"], "epsilon": [0.3]}},
            "versions": {"python": "3.11.7", "torch": "2.5.1", "torchattacks": "3.5.1"},
            "clean": interval(worst["0"], n),
            "worst_case": {e: interval(worst[e], n) for e in HEADLINE}}))
    pd.DataFrame([{"source": "model1", "setting": setting, "epsilon": epsilon, "margin": margin,
                   "median_linf": linf, "images": 1000, **dict(zip(curves, accuracies))}
                  for setting, epsilon, margin, linf, accuracies in TRANSFER]).to_csv(
        root / "plots/robustness/transfer.csv", index=False)


def outputs_copy(path, curves=CURVES):
    """The committed outputs the report reads under path, with section 5's inputs in the robustness
    stages' layout (from `curves`)."""
    for name in ("plots", "metrics", "reference"):
        shutil.copytree(ROOT / name, path / name, ignore=shutil.ignore_patterns("robustness*"), dirs_exist_ok=True)
    write_robustness(path, curves)
    return path
