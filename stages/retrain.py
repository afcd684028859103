"""Stage retrain (defence 1, the seed's first proposal: "retrain the network with generated
adversarial images"): a CNN trained like train.* on the training set plus adversarial copies of a
share (retrain.share) of the training images, made on `attack.model` by the seed's attack
(retrain.kind, attack.step_size / max_steps / epsilon) and labelled with their true labels.

Writes the checkpoint, metrics/train/retrain.json and plots/train/retrain.csv, as train@<name> does.
"""
import torch

from stages.lib import cli
from stages.lib.attacks import adversarial_copies
from stages.lib.data import PIXEL_RANGE
from stages.lib.io import staged_outputs
from stages.lib.models import load_cnn
from stages.lib.params import load_params
from stages.lib.training import train_and_report, write_trained_model
from stages.train import HEADLINE

NAME = "retrain"


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys."""
    train, retrain, attack = params.train, params.retrain, params.attack
    return {"device": params.device, "threads": params.threads, "spec": params.model.spec(),
            "epochs": train.epochs, "batch_size": train.batch_size, "lr": train.lr, "momentum": train.momentum,
            "eval_batch_size": train.eval_batch_size, "seed": retrain.seed,
            "copies": {"share": retrain.share, "kind": retrain.kind, "seed": retrain.seed,
                       "step_size": attack.step_size, "max_steps": attack.max_steps, "epsilon": attack.epsilon,
                       "batch_size": attack.batch_size}}


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--source", required=True, help="the checkpoint of the attacked model (attack.model)")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    p = read_params(load_params(args.params))
    copies = p.pop("copies")
    added = {}

    def with_adversarial_copies(train, device):
        source = load_cnn(args.source, device)
        images, labels = adversarial_copies(source, *train, bounds=PIXEL_RANGE, desc="retrain: attack", **copies)
        added["images"] = len(labels)
        print(f"retrain: {len(labels)} adversarial copies of training images added to {len(train[1])}")
        return (torch.cat([train[0], images]), torch.cat([train[1], labels])), {}

    model, history, summary = train_and_report(args.data, NAME, prepare=with_adversarial_copies, **p)
    with staged_outputs() as stage:
        write_trained_model(stage, NAME, model, p["spec"], args.model, history,
                            {k: summary[k] for k in HEADLINE} | {"adversarial_images": added["images"]})


if __name__ == "__main__":
    cli.run(main)
