"""Stage train@<name> (seed section 3): train the MNIST CNN with params `train` and the seed of
`train.models.<name>`. model1 is attacked in Problem 4; model2, trained independently, receives the
adversarial images.

Writes models/<name>.pt (a state dict), metrics/train/<name>.json and plots/train/<name>.csv.
"""
import torch

from stages.lib import config
from stages.lib.io import staged_outputs
from stages.lib.training import fit_cnn, read_run_params, report, write_run


def main(argv=None):
    parser = config.parser(__doc__)
    parser.add_argument("name", help="a model under train.models in params.yaml")
    args = parser.parse_args(argv)
    params = config.load_params(args.params)
    run = read_run_params(params, "train")
    batch_size = config.number(params, "train.batch_size", integer=True, low=1)
    lr = config.number(params, "train.lr", low=0, low_open=True)
    seed = config.number(params, f"train.models.{args.name}.seed", integer=True, low=0)
    model, history, metrics = fit_cnn(params, run, batch_size=batch_size, lr=lr, seed=seed, desc=args.name)
    with staged_outputs() as stage:
        torch.save(model.state_dict(), stage(f"models/{args.name}.pt"))
        write_run(stage, history, metrics, f"metrics/train/{args.name}.json", f"plots/train/{args.name}.csv")
    report(args.name, metrics)


if __name__ == "__main__":
    config.run(main)
