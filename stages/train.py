"""Stage train@<name> (seed section 3): train the MNIST CNN with params `train` and the seed of
`train.models.<name>`. model1 is attacked in Problem 4; model2, trained independently, receives the
adversarial images.

Writes the checkpoint (architecture and weights), metrics/train/<name>.json (headline numbers) and
plots/train/<name>.csv (loss and accuracy per epoch).
"""
from stages.lib import cli
from stages.lib.io import staged_outputs
from stages.lib.params import load_params
from stages.lib.training import train_and_report, write_trained_model

HEADLINE = ("final_test_acc", "best_test_acc", "device", "threads")


def read_params(params, name):
    """The plain values this stage uses; dvc.yaml lists exactly these keys."""
    train = params.train
    if name not in train.models:
        raise cli.StageError(f"params.yaml: 'train.models' has no model '{name}' (it has: {', '.join(train.models)})")
    return {"device": params.device, "threads": params.threads, "spec": params.model.spec(),
            "epochs": train.epochs, "batch_size": train.batch_size, "lr": train.lr, "momentum": train.momentum,
            "eval_batch_size": train.eval_batch_size, "seed": train.models[name].seed}


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("name", help="a model under train.models in params.yaml")
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    p = read_params(load_params(args.params), args.name)
    model, history, summary = train_and_report(args.data, args.name, **p)
    with staged_outputs() as stage:
        write_trained_model(stage, args.name, model, p["spec"], args.model, history,
                            {k: summary[k] for k in HEADLINE})


if __name__ == "__main__":
    cli.run(main)
