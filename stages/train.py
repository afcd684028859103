"""Stage train@<name> (the homework's section 3): train the MNIST CNN with params `train` and the seed of
`train.models.<name>`. model1 is attacked in Problem 4; model2, trained independently, receives the
adversarial images.

Writes the checkpoint (architecture and weights) and its card (role and label), metrics/train/<name>.json
(headline numbers) and plots/train/<name>.csv (loss and accuracy per epoch).
"""
from dataclasses import dataclass

from stages.lib import cli
from stages.lib.data import load_model_inputs
from stages.lib.errors import StageError
from stages.lib.io import staged_outputs
from stages.lib.models import CnnSpec, model_label
from stages.lib.params import StageParams, load_params
from stages.lib.runtime import Device, StageRun, Threads, set_up
from stages.lib.training import HEADLINE, Sgd, TrainSection, train_cnn, write_trained_model


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    train: TrainSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    spec: CnnSpec
    sgd: Sgd
    seed: int


def read_params(path, name):
    p = load_params(Params, path)
    if name not in p.train.models:
        raise StageError(f"{path}: 'train.models' has no model '{name}' (it has: {', '.join(p.train.models)})")
    return Run(device=p.device, threads=p.threads, spec=p.model, sgd=p.train.sgd(), seed=p.train.models[name].seed)


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("name", help="a model under train.models in params.yaml")
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    run = read_params(args.params, args.name)
    device, threads = set_up(run.device, run.threads)
    train, test = load_model_inputs(args.data, device)
    model, history, summary = train_cnn(run.spec, run.sgd, run.seed, train, test, name=args.name, device=device,
                                        threads=threads)
    with staged_outputs() as stage:
        write_trained_model(stage, args.name, model, run.spec, args.model, history,
                            {k: summary[k] for k in HEADLINE}, {"role": "baseline", "label": model_label(args.name)})


if __name__ == "__main__":
    cli.run(main)
