"""Stage sweep@<batch size>-<lr> (seed section 3): one point of the batch-size x learning-rate grid.

Trains the CNN with params `sweep` (same seed for every point) and writes
metrics/sweep/<batch size>-<lr>.json and plots/sweep/<batch size>-<lr>.csv.
"""
from stages.lib import config
from stages.lib.io import staged_outputs
from stages.lib.training import fit_cnn, point_name, read_run_params, report, write_run


def main(argv=None):
    parser = config.parser(__doc__)
    parser.add_argument("--batch-size", type=int, required=True)
    parser.add_argument("--lr", type=float, required=True)
    args = parser.parse_args(argv)
    config.check_number("sweep.batch_size", args.batch_size, integer=True, low=1)
    config.check_number("sweep.lr", args.lr, low=0, low_open=True)
    params = config.load_params(args.params)
    run = read_run_params(params, "sweep")
    seed = config.number(params, "sweep.seed", integer=True, low=0)
    name = point_name(args.batch_size, args.lr)
    _, history, metrics = fit_cnn(params, run, batch_size=args.batch_size, lr=args.lr, seed=seed, desc=f"sweep {name}")
    with staged_outputs() as stage:
        write_run(stage, history, metrics, f"metrics/sweep/{name}.json", f"plots/sweep/{name}.csv")
    report(f"sweep {name}", metrics)


if __name__ == "__main__":
    config.run(main)
