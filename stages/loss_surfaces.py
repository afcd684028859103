"""Stage loss_surfaces (seed section 1): a sigmoid neuron S(wx + b) over a (w, b) grid.

Writes a 3-D surface figure per quantity and the seed's five side by side (plots/loss_surfaces/figures/),
the grid values as a long table for `dvc plots` heat maps (grid.csv), every observation
(observations.csv) and the headline ones in metrics/loss_surfaces.json.
"""
from typing import Annotated

import pandas as pd
from pydantic import Field, field_validator

from stages.lib import cli, plotting
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.params import Positive, Section, StageParams, load_params
from stages.lib.surfaces import QUANTITIES, SEED_FIGURE, TITLES, analytic, autograd_gradients, grid, observations

FIGURES = "plots/loss_surfaces/figures"
TABLE = "plots/loss_surfaces/grid.csv"
OBSERVATIONS = "plots/loss_surfaces/observations.csv"
METRICS = "metrics/loss_surfaces.json"
HEADLINE = ("ce_gt_l2_fraction", "flat_fraction_l2_grad_w", "flat_fraction_ce_grad_w")  # the rest: OBSERVATIONS


MAX_GRID_SIDE = 2001  # points per axis
MAX_ABS = 1e6         # |x| and the ranges' ends: beyond it sigmoid is 0 or 1 everywhere on the grid
Finite = Annotated[float, Field(ge=-MAX_ABS, le=MAX_ABS)]
Interval = Annotated[list[Finite], Field(min_length=2, max_length=2)]


class LossSurfacesSection(Section):
    """Params section `loss_surfaces`: one sigmoid neuron S(wx + b), its target y and the (w, b) grid."""
    x: Finite
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


class Params(StageParams):
    loss_surfaces: LossSurfacesSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path).loss_surfaces


def main(argv=None):
    args = cli.parser(__doc__).parse_args(argv)
    p = read_params(args.params)
    W, B = grid(p.w_range, p.b_range, p.step)
    surfaces = analytic(W, B, p.x, p.y)
    found = observations(surfaces, autograd_gradients(W, B, p.x, p.y), p.flat_threshold)
    table = pd.concat(
        [pd.DataFrame({"w": W.flatten(), "b": B.flatten(), "quantity": name, "value": surfaces[name].flatten()})
         for name in QUANTITIES], ignore_index=True)
    with staged_outputs() as stage:
        figures = stage(FIGURES)
        figures.mkdir()
        for name in QUANTITIES:
            plotting.surface_figure(W, B, surfaces[name], TITLES[name], figures / f"{name}.png")
        plotting.surfaces_side_by_side(W, B, surfaces, SEED_FIGURE, TITLES, figures / "all.png")
        write_csv(stage(TABLE), table)
        write_csv(stage(OBSERVATIONS), [{"observation": k, "value": v} for k, v in found.items()])
        write_json(stage(METRICS), {k: found[k] for k in HEADLINE})
    print(f"loss_surfaces: {found['grid_points']} grid points; CE > L2 on {found['ce_gt_l2_fraction']:.1%}; "
          f"max |dCE/dw| {found['max_abs_ce_grad_w']:.3f} vs max |dL2/dw| {found['max_abs_l2_grad_w']:.3f}")


if __name__ == "__main__":
    cli.run(main)
