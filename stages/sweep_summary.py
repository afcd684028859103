"""Stage sweep_summary (seed section 3): every point of the sweep in one table and in figures.

Writes plots/sweep_summary/table.{csv,md} (final and best test accuracy, epoch of the best, minimum
train loss, diverged), curves.csv (all points' per-epoch curves, long form, for `dvc plots`),
figures/ (the seed's per-point figures and one overlay per curve) and metrics/sweep_summary.json.
"""
import math

import pandas as pd

from stages.lib import config, plotting
from stages.lib.io import read_json, staged_outputs, write_json
from stages.lib.training import point_name

SUMMARY = "plots/sweep_summary"
FIGURES = "plots/sweep_summary/figures"
CURVES = ("train_loss", "test_loss", "train_acc", "test_acc")


def grid_points(params):
    """The (batch size, lr) points of the sweep: the grid, then the extra points, without repeats."""
    points = []
    for section in ("sweep", "sweep.extra"):
        batch_sizes = config.number_list(params, f"{section}.batch_size", integer=True, low=1)
        lrs = config.number_list(params, f"{section}.lr", low=0, low_open=True)
        points += [(b, lr) for b in batch_sizes for lr in lrs if (b, lr) not in points]
    return points


def read_curves(name):
    path = f"plots/sweep/{name}.csv"
    try:
        curves = pd.read_csv(path)
    except FileNotFoundError:
        raise config.StageError(f"{path}: not found; run `dvc repro` to train the sweep point {name}") from None
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as error:
        raise config.StageError(f"{path}: not a readable CSV ({error}); rerun `dvc repro -f sweep@{name}`") from None
    missing = {"epoch", *CURVES} - set(curves.columns)
    if missing or curves.empty:
        raise config.StageError(f"{path}: expected columns epoch, {', '.join(CURVES)} and at least one row; "
                                f"rerun `dvc repro -f sweep@{name}`")
    return curves


def summary_row(name, batch_size, lr, metrics):
    return {"point": name, "batch_size": batch_size, "lr": lr,
            "final_test_acc": metrics["final_test_acc"], "best_test_acc": metrics["best_test_acc"],
            "best_epoch": metrics["best_epoch"], "min_train_loss": metrics["min_train_loss"],
            "epochs": metrics["epochs"], "diverged": metrics["diverged"]}


def markdown_table(table):
    def cell(x):
        if isinstance(x, float):
            return "" if math.isnan(x) else f"{x:.4g}"
        return str(x)
    lines = ["| " + " | ".join(table.columns) + " |", "|" + "---|" * len(table.columns)]
    lines += ["| " + " | ".join(cell(x) for x in row) + " |" for row in table.itertuples(index=False)]
    return "\n".join(lines) + "\n"


def main(argv=None):
    args = config.parser(__doc__).parse_args(argv)
    points = grid_points(config.load_params(args.params))
    rows, curves = [], {}
    for batch_size, lr in points:
        name = point_name(batch_size, lr)
        rows.append(summary_row(name, batch_size, lr, read_json(f"metrics/sweep/{name}.json")))
        curves[name] = read_curves(name)
    table = pd.DataFrame(rows)
    best = table.loc[table["best_test_acc"].idxmax()]
    long_curves = pd.concat([c.assign(point=name) for name, c in curves.items()], ignore_index=True)
    with staged_outputs() as stage:
        table.to_csv(stage(f"{SUMMARY}/table.csv"), index=False, float_format="%.9g")
        stage(f"{SUMMARY}/table.md").write_text(markdown_table(table))
        long_curves.to_csv(stage(f"{SUMMARY}/curves.csv"), index=False, float_format="%.9g")
        figures = stage(FIGURES)
        figures.mkdir()
        for row in rows:
            title = f"batch size {row['batch_size']}, lr {row['lr']}" + (" (diverged)" if row["diverged"] else "")
            plotting.training_curves(curves[row["point"]], title, figures / f"{row['point']}.png")
        for column in CURVES:
            plotting.overlay_curves(curves, column, figures / f"overlay_{column}.png")
        write_json(stage("metrics/sweep_summary.json"), {
            "points": len(points), "diverged": int(table["diverged"].sum()),
            "best_point": best["point"], "best_test_acc": float(best["best_test_acc"])})
    print(markdown_table(table), end="")


if __name__ == "__main__":
    config.run(main)
