"""Stage loss_surfaces (seed section 1): a sigmoid neuron S(wx + b) over a (w, b) grid.

Writes a 3-D surface figure per quantity and the seed's five side by side (plots/loss_surfaces/figures/),
the grid values as a long table for `dvc plots` heat maps (grid.csv), every observation
(observations.csv) and the headline ones in metrics/loss_surfaces.json.
"""
import pandas as pd

from stages.lib import cli, plotting
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.params import load_params
from stages.lib.surfaces import QUANTITIES, SEED_FIGURE, TITLES, analytic, autograd_gradients, grid, observations

FIGURES = "plots/loss_surfaces/figures"
TABLE = "plots/loss_surfaces/grid.csv"
OBSERVATIONS = "plots/loss_surfaces/observations.csv"
METRICS = "metrics/loss_surfaces.json"
HEADLINE = ("ce_gt_l2_fraction", "max_abs_ce_grad_w", "max_abs_l2_grad_w", "flat_fraction_l2_grad_w",
            "flat_fraction_ce_grad_w")


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys."""
    s = params.loss_surfaces
    return {"x": s.x, "y": s.y, "w_range": tuple(s.w_range), "b_range": tuple(s.b_range), "step": s.step,
            "flat_threshold": s.flat_threshold}


def main(argv=None):
    args = cli.parser(__doc__).parse_args(argv)
    p = read_params(load_params(args.params))
    W, B = grid(p["w_range"], p["b_range"], p["step"])
    surfaces = analytic(W, B, p["x"], p["y"])
    found = observations(surfaces, autograd_gradients(W, B, p["x"], p["y"]), p["flat_threshold"])
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
