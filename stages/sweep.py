"""Stage sweep@<batch size>-<lr> (seed section 3): one point of the batch-size x learning-rate grid.

Trains the CNN with params `sweep` (the same seed for every point) and writes
metrics/sweep/<point>.json (the run's summary, read by sweep_summary) and plots/sweep/<point>.csv.
"""
from dataclasses import dataclass

from stages.lib import cli
from stages.lib.data import load_model_inputs
from stages.lib.errors import UsageError
from stages.lib.io import staged_outputs, write_csv, write_json
from stages.lib.models import CnnSpec
from stages.lib.params import StageParams, load_params
from stages.lib.runtime import Device, StageRun, Threads, set_up
from stages.lib.sweep_grid import SweepSection
from stages.lib.training import MAX_LR, Schedule, Sgd, train_cnn


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    sweep: SweepSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys (the point itself comes
    from the command line, so a new grid value trains only the new points)."""
    spec: CnnSpec
    epochs: int
    momentum: float
    eval_batch_size: int
    seed: int

    def sgd(self, batch_size, lr):
        return Sgd(Schedule(epochs=self.epochs, batch_size=batch_size, eval_batch_size=self.eval_batch_size), lr,
                   self.momentum)


def parse_point(batch_size, lr):
    """(batch size, lr) from the command line, or a one-line error naming the option."""
    try:
        batch_size_value = int(batch_size)
    except ValueError:
        batch_size_value = 0
    if batch_size_value < 1:
        raise UsageError(f"--batch-size must be an integer >= 1, got {batch_size!r}")
    try:
        lr_value = float(lr)
    except ValueError:
        lr_value = 0.0
    if not 0 < lr_value <= MAX_LR:
        raise UsageError(f"--lr must be a number > 0 and at most {MAX_LR:g}, got {lr!r}")
    return batch_size_value, lr_value


def read_params(path):
    p = load_params(Params, path)
    s = p.sweep
    return Run(device=p.device, threads=p.threads, spec=p.model, epochs=s.epochs, momentum=s.momentum,
               eval_batch_size=s.eval_batch_size, seed=s.seed)


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--batch-size", required=True)
    parser.add_argument("--lr", required=True)
    args = parser.parse_args(argv)
    run = read_params(args.params)
    batch_size, lr = parse_point(args.batch_size, args.lr)
    name = f"{args.batch_size}-{args.lr}"  # as dvc.yaml spells the outputs
    device, threads = set_up(run.device, run.threads)
    train, test = load_model_inputs(args.data, device)
    _, history, summary = train_cnn(run.spec, run.sgd(batch_size, lr), run.seed, train, test, name=f"sweep {name}",
                                    device=device, threads=threads)
    with staged_outputs() as stage:
        write_json(stage(f"metrics/sweep/{name}.json"), {"batch_size": batch_size, "lr": lr, "seed": run.seed,
                                                          **summary})
        write_csv(stage(f"plots/sweep/{name}.csv"), history)


if __name__ == "__main__":
    cli.run(main)
