"""Stage sweep_summary (seed section 3): every point of the sweep in one table and in figures.

Writes plots/sweep_summary/table.{csv,md} (final and best test accuracy, epoch of the best, minimum
train loss, diverged), curves.csv (all points' per-epoch curves, long form, for `dvc plots`),
figures/ (the seed's per-point figures and one overlay per curve) and metrics/sweep_summary.json
(each point's final test accuracy, under its name, so that `dvc exp show` and `dvc metrics show` give
every point's number; the best point; how many diverged).
"""
import math

import pandas as pd

from stages.lib import cli, plotting
from stages.lib.errors import StageError
from stages.lib.io import NUMBER, read_csv, read_json, staged_outputs, write_csv, write_json
from stages.lib.params import StageParams, load_params
from stages.lib.sweep_grid import SweepSection, point_name

SUMMARY = "plots/sweep_summary"
FIGURES = "plots/sweep_summary/figures"
CURVES = ("train_loss", "test_loss", "train_acc", "test_acc")
SUMMARY_KEYS = {"final_test_acc": NUMBER, "best_test_acc": NUMBER, "best_epoch": int,  # the types they must have
                "min_train_loss": (*NUMBER, type(None)), "epochs": int, "diverged": bool}  # a diverged loss is null


class Params(StageParams):
    sweep: SweepSection


def read_params(path):
    """The sweep's (batch size, lr) points: what this stage reads of params.yaml (the grid and the
    extra points; dvc.yaml lists exactly these keys)."""
    return load_params(Params, path).sweep.points()


def read_curves(name):
    path = f"plots/sweep/{name}.csv"
    curves = read_csv(path, numeric=("epoch", *CURVES))
    if curves.empty:
        raise StageError(f"{path}: holds no epoch; rerun `dvc repro -f sweep@{name}`")
    return curves


def read_summary(name):
    return read_json(f"metrics/sweep/{name}.json", SUMMARY_KEYS, rerun=f"`dvc repro -f sweep@{name}`")


def markdown_table(table):
    def cell(x):
        if isinstance(x, float):
            return "" if math.isnan(x) else f"{x:.4g}"
        return str(x)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = cli.parser(__doc__).parse_args(argv)
    points = read_params(args.params)
    rows, curves = [], {}
    for batch_size, lr in points:
        name = point_name(batch_size, lr)
        summary = read_summary(name)
        rows.append({"point": name, "batch_size": batch_size, "lr": lr, **{k: summary[k] for k in SUMMARY_KEYS}})
        curves[name] = read_curves(name)
    table = pd.DataFrame(rows)
    best = table.loc[table["best_test_acc"].idxmax()]
    long_curves = pd.concat([c.assign(point=name) for name, c in curves.items()], ignore_index=True)
    with staged_outputs() as stage:
        write_csv(stage(f"{SUMMARY}/table.csv"), table)
        stage(f"{SUMMARY}/table.md").write_text(markdown_table(table))
        write_csv(stage(f"{SUMMARY}/curves.csv"), long_curves)
        figures = stage(FIGURES)
        figures.mkdir()
        for row in rows:
            title = f"batch size {row['batch_size']}, lr {row['lr']}" + (" (diverged)" if row["diverged"] else "")
            plotting.training_curves(curves[row["point"]], title, figures / f"{row['point']}.png")
        for column in CURVES:
            plotting.overlay_curves(curves, column, figures / f"overlay_{column}.png")
        write_json(stage("metrics/sweep_summary.json"), {  # every point's other figures: table.csv
            "best_point": best["point"], "best_test_acc": best["best_test_acc"],
            "diverged": int(table["diverged"].sum()),
            "final_test_acc": {row["point"]: row["final_test_acc"] for row in rows}})
    print(markdown_table(table), end="")


if __name__ == "__main__":
    cli.run(main)
