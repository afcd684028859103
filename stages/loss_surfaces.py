"""Stage loss_surfaces (seed section 1): a sigmoid neuron S(wx + b) over a (w, b) grid, at the seed's
target y and at a class label.

Writes (plots/loss_surfaces/): the seed's five surfaces side by side at its target and the four loss and
gradient surfaces at the class label (figures/seed_target.png, figures/class_label.png); |∂L/∂w| of each
loss against z = wx + b at the class label (figures/gradient_magnitudes.png, gradients.csv); the neuron
trained by gradient descent with each loss from the same confidently wrong start (figures/descent.png,
descent.csv); the grid values as a long table for `dvc plots` heat maps (grid.csv); every observation
(observations.csv) and the headline ones in metrics/loss_surfaces.json.
"""
from typing import Annotated, Literal

import pandas as pd
import torch
from pydantic import Field, field_validator

from stages.lib import cli, plotting
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.params import Positive, Section, StageParams, load_params
from stages.lib.surfaces import (LABEL_FIGURE, LOSSES, SEED_FIGURE, TITLES, analytic, autograd_gradients, descend,
                                 gradient_magnitudes, grid, observations, sigmoid)

FIGURES = "plots/loss_surfaces/figures"
TABLE = "plots/loss_surfaces/grid.csv"
GRADIENTS = "plots/loss_surfaces/gradients.csv"
DESCENT = "plots/loss_surfaces/descent.csv"
OBSERVATIONS = "plots/loss_surfaces/observations.csv"
METRICS = "metrics/loss_surfaces.json"
GRADIENT_POINTS = 401   # points along z in gradients.csv
DESCENT_ROWS = 400      # at most this many log-spaced steps of each run in descent.csv


MAX_GRID_SIDE = 2001  # points per axis
MAX_ABS = 1e6         # |x| and the ranges' ends: beyond it sigmoid is 0 or 1 everywhere on the grid
MAX_DESCENT_STEPS = 1_000_000
Finite = Annotated[float, Field(ge=-MAX_ABS, le=MAX_ABS)]
Interval = Annotated[list[Finite], Field(min_length=2, max_length=2)]
Probability = Annotated[float, Field(gt=0, lt=1)]


class DescentSection(Section):
    """Params section `loss_surfaces.descent`: the neuron trained on (x, label) by gradient descent."""
    start: Interval                       # (w, b) where both runs begin
    lr: Positive
    target_error: Annotated[float, Field(gt=0, lt=0.5)]  # learned once |S - label| <= this
    max_steps: Annotated[int, Field(ge=1, le=MAX_DESCENT_STEPS)]


class LossSurfacesSection(Section):
    """Params section `loss_surfaces`: one sigmoid neuron S(wx + b), its targets and the (w, b) grid."""
    x: Finite
    y: Annotated[float, Field(ge=0, le=1)]
    label: Literal[0, 1]
    w_range: Interval
    b_range: Interval
    step: Positive
    flat_threshold: Positive
    wrong_by: Probability
    descent: DescentSection

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

    @field_validator("descent")
    @classmethod
    def _wrong_start(cls, descent, info):
        x, label = info.data.get("x"), info.data.get("label")
        if x is None or label is None:  # their own errors are reported
            return descent
        output = sigmoid(descent.start[0] * x + descent.start[1])
        if abs(output - label) <= 0.5:
            raise ValueError(f"must start on the wrong side of label {label} (S = {output:.3g} at x = {x:g}, "
                             f"the label's side of 0.5), got start {descent.start!r}")
        return descent


class Params(StageParams):
    loss_surfaces: LossSurfacesSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path).loss_surfaces


def log_spaced(count, rows):
    """At most `rows` steps from 0 to count - 1, log-spaced, both ends included."""
    steps = torch.logspace(0, torch.log10(torch.tensor(float(count))), rows, dtype=torch.float64).round() - 1
    return sorted(set(steps.long().clamp(0, count - 1).tolist()) | {0, count - 1})


def main(argv=None):
    args = cli.parser(__doc__).parse_args(argv)
    p = read_params(args.params)
    W, B = grid(p.w_range, p.b_range, p.step)
    settings = {"seed_target": p.y, "class_label": float(p.label)}
    surfaces = {name: analytic(W, B, p.x, y) for name, y in settings.items()}
    found = {name: observations(surfaces[name], autograd_gradients(W, B, p.x, y), y, p.flat_threshold, p.wrong_by)
             for name, y in settings.items()}
    z_all = W * p.x + B
    z = torch.linspace(z_all.min().item(), z_all.max().item(), GRADIENT_POINTS, dtype=torch.float64)
    magnitudes = gradient_magnitudes(z, p.x, float(p.label))
    runs = {loss: descend(loss, p.x, float(p.label), p.descent.start, p.descent.lr, p.descent.max_steps,
                          p.descent.target_error) for loss in LOSSES}
    errors = {loss: run[0] for loss, run in runs.items()}
    steps = {loss: run[1] for loss, run in runs.items()}
    for name, y in settings.items():  # the setting each observation was made in, for the report
        found[name] |= {"x": p.x, "target": y, "w_min": p.w_range[0], "w_max": p.w_range[1], "b_min": p.b_range[0],
                        "b_max": p.b_range[1], "step": p.step, "flat_threshold": p.flat_threshold,
                        "wrong_by": p.wrong_by}
    found["descent"] = {"x": p.x, "target": float(p.label), "start_w": p.descent.start[0],
                        "start_b": p.descent.start[1], "lr": p.descent.lr, "target_error": p.descent.target_error,
                        "max_steps": p.descent.max_steps,
                        "start_output": sigmoid(p.descent.start[0] * p.x + p.descent.start[1]),
                        **{f"steps_{loss}": steps[loss] for loss in LOSSES}}
    shown = [(name, q) for name, names in (("seed_target", SEED_FIGURE), ("class_label", LABEL_FIGURE)) for q in names]
    table = pd.concat(
        [pd.DataFrame({"w": W.flatten(), "b": B.flatten(), "quantity": f"{TITLES[q]}, y = {settings[name]:g}",
                       "value": surfaces[name][q].flatten()}) for name, q in shown], ignore_index=True)
    descent = [{"loss": loss, "step": step, "error": errors[loss][step]}
               for loss in LOSSES for step in log_spaced(len(errors[loss]), DESCENT_ROWS)]
    with staged_outputs() as stage:
        figures = stage(FIGURES)
        figures.mkdir()
        label_titles = {q: f"{TITLES[q]}, y = {p.label}" for q in LABEL_FIGURE}
        plotting.surfaces_side_by_side(W, B, surfaces["seed_target"], SEED_FIGURE,
                                       {q: f"{TITLES[q]}, y = {p.y:g}" for q in SEED_FIGURE},
                                       figures / "seed_target.png")
        plotting.surfaces_side_by_side(W, B, surfaces["class_label"], LABEL_FIGURE, label_titles,
                                       figures / "class_label.png")
        plotting.gradient_magnitudes(z, magnitudes, p.x, p.label, figures / "gradient_magnitudes.png")
        plotting.descent_curves(errors, steps, p.descent.target_error, figures / "descent.png")
        write_csv(stage(TABLE), table)
        write_csv(stage(GRADIENTS), {"z": z, "output": torch.sigmoid(z),
                                     **{f"abs_{loss}_grad_w": magnitudes[loss] for loss in LOSSES}})
        write_csv(stage(DESCENT), descent)
        write_csv(stage(OBSERVATIONS), [{"setting": name, "observation": k, "value": v}
                                        for name, values in found.items() for k, v in values.items()])
        write_json(stage(METRICS), {**{f"wrong_end_abs_{loss}_grad_w": found["class_label"][f"wrong_end_abs_{loss}_grad_w"]
                                       for loss in LOSSES},
                                    **{f"descent_steps_{loss}": steps[loss] for loss in LOSSES}})
    label = found["class_label"]
    print(f"loss_surfaces: {label['grid_points']} grid points; at y = {p.label}, where the neuron is most wrong, "
          f"|dL2/dw| {label['wrong_end_abs_l2_grad_w']:.2g} vs |dCE/dw| {label['wrong_end_abs_ce_grad_w']:.3f}; "
          f"gradient descent to |S - y| <= {p.descent.target_error:g}: L2 {steps['l2']} steps, CE {steps['ce']}")


if __name__ == "__main__":
    cli.run(main)
