"""Stage loss_surfaces (seed section 1): a sigmoid neuron S(wx + b) over a (w, b) grid.

Writes a 3-D surface figure per quantity and the seed's five side by side (plots/loss_surfaces/figures/),
the grid values as a long table for `dvc plots` heat maps (grid.csv), and metrics/loss_surfaces.json.
"""
import pandas as pd

from stages.lib import config, plotting
from stages.lib.io import staged_outputs, write_json
from stages.lib.surfaces import QUANTITIES, SEED_FIGURE, TITLES, analytic, autograd_gradients, grid, observations

FIGURES = "plots/loss_surfaces/figures"
TABLE = "plots/loss_surfaces/grid.csv"
METRICS = "metrics/loss_surfaces.json"


def read_params(params):
    p = {
        "x": config.number(params, "loss_surfaces.x"),
        "y": config.number(params, "loss_surfaces.y", low=0, high=1),
        "step": config.number(params, "loss_surfaces.step", low=0, low_open=True),
        "flat_threshold": config.number(params, "loss_surfaces.flat_threshold", low=0, low_open=True),
    }
    p["w_range"] = config.interval(params, "loss_surfaces.w_range")
    p["b_range"] = config.interval(params, "loss_surfaces.b_range")
    return p


def main(argv=None):
    args = config.parser(__doc__).parse_args(argv)
    p = read_params(config.load_params(args.params))
    W, B = grid(p["w_range"], p["b_range"], p["step"])
    surfaces = analytic(W, B, p["x"], p["y"])
    metrics = observations(surfaces, autograd_gradients(W, B, p["x"], p["y"]), p["flat_threshold"])
    table = pd.concat(
        [pd.DataFrame({"w": W.flatten(), "b": B.flatten(), "quantity": name, "value": surfaces[name].flatten()})
         for name in QUANTITIES], ignore_index=True)
    with staged_outputs() as stage:
        figures = stage(FIGURES)
        figures.mkdir()
        for name in QUANTITIES:
            plotting.surface_figure(W, B, surfaces[name], TITLES[name], figures / f"{name}.png")
        plotting.surfaces_side_by_side(W, B, surfaces, SEED_FIGURE, TITLES, figures / "all.png")
        table.to_csv(stage(TABLE), index=False, float_format="%.9g")
        write_json(stage(METRICS), metrics)
    print(f"loss_surfaces: {metrics['grid_points']} grid points; CE > L2 on {metrics['ce_gt_l2_fraction']:.1%}; "
          f"max |dCE/dw| {metrics['max_abs_ce_grad_w']:.3f} vs max |dL2/dw| {metrics['max_abs_l2_grad_w']:.3f}")


if __name__ == "__main__":
    config.run(main)
