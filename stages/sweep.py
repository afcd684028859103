"""Stage sweep@<batch size>-<lr> (seed section 3): one point of the batch-size x learning-rate grid.

Trains the CNN with params `sweep` (the same seed for every point) and writes
metrics/sweep/<point>.json (the run's summary, read by sweep_summary) and plots/sweep/<point>.csv.
"""
from stages.lib import cli
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.params import load_params
from stages.lib.training import train_and_report


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys (the point itself comes
    from the command line, so a new grid value trains only the new points)."""
    sweep = params.sweep
    return {"device": params.device, "threads": params.threads, "spec": params.model.spec(),
            "epochs": sweep.epochs, "momentum": sweep.momentum, "eval_batch_size": sweep.eval_batch_size,
            "seed": sweep.seed}


def parse_point(batch_size, lr):
    """(batch size, lr) from the command line, or a one-line error naming the option."""
    try:
        batch_size_value = int(batch_size)
    except ValueError:
        batch_size_value = 0
    if batch_size_value < 1:
        raise cli.UsageError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    try:
        lr_value = float(lr)
    except ValueError:
        lr_value = 0.0
    if not 0 < lr_value < float("inf"):
        raise cli.UsageError(f"--lr must be a number > 0, got {lr!r}")
    return batch_size_value, lr_value


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--batch-size", required=True)
    parser.add_argument("--lr", required=True)
    args = parser.parse_args(argv)
    p = read_params(load_params(args.params))
    batch_size, lr = parse_point(args.batch_size, args.lr)
    name = f"{args.batch_size}-{args.lr}"  # as dvc.yaml spells the outputs
    _, history, summary = train_and_report(args.data, f"sweep {name}", batch_size=batch_size, lr=lr, **p)
    with staged_outputs() as stage:
        write_json(stage(f"metrics/sweep/{name}.json"), {"batch_size": batch_size, "lr": lr, "seed": p["seed"], **summary})
        write_csv(stage(f"plots/sweep/{name}.csv"), history)


if __name__ == "__main__":
    cli.run(main)
