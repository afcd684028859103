"""Stage adversarial_training (defence 2, the homework's second proposal: "a component in the loss function
which formulates adversarial loss"): a CNN trained on (1 - s) CE(clean) + s CE(adversarial), its
adversarial examples made on the fly for each batch within an epsilon ball (adversarial_training.*;
epsilon and step_size in the [0, 1] units of stages.lib.units):
by default PGD from a random start (Madry et al. 2018), or the fast FGSM (Wong et al. 2020); Adam with
a linear one-cycle learning-rate schedule. On a GPU each training step is replayed as a CUDA graph
(training.FullBatchSteps), the attack's steps included.

A guard against catastrophic overfitting holds guard.images training images out and attacks them with
PGD after every epoch; when that accuracy falls more than guard.max_drop below its best, training stops
and the best epoch's weights are kept (metrics: kept_epoch; the guard's accuracy per epoch is in the CSV).

Writes the checkpoint and its card, metrics/train/adversarial_training.json and plots/train/adversarial_training.csv
(with the guard's PGD accuracy per epoch).
"""
from typing import Annotated, Literal

from pydantic import Field

from stages.lib import cli
from stages.lib.data import PIXEL_RANGE, load_model_inputs
from stages.lib.defences import DefenceSection, adversarial_loss, train_defence
from stages.lib.io import staged_outputs
from stages.lib.models import CnnSpec
from stages.lib.params import Count, StageParams, load_params
from stages.lib.runtime import Device, Threads, set_up
from stages.lib.training import write_trained_model
from stages.lib.units import model_units

NAME = "adversarial_training"
CARD = {"role": "defence", "label": "defence 2 (adversarial training)",
        "claim": "defence_adversarial_loss",  # the homework's claim (reference/seed.yaml) it tests
        "summary": "Trained on adversarial examples made on the fly (the loss on them, the compound loss)."}


class AdversarialTrainingSection(DefenceSection):
    method: Literal["fgsm", "pgd"]
    pgd_steps: Count
    adversarial_share: Annotated[float, Field(ge=0, le=1)]


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    adversarial_training: AdversarialTrainingSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path)


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    p = read_params(args.params)
    a = p.adversarial_training
    device, threads = set_up(p.device, p.threads)
    train, test = load_model_inputs(args.data, device)
    spec = a.model or p.model

    def batch_loss(ramp_steps):
        return adversarial_loss(epsilon=model_units(a.epsilon), step_size=model_units(a.step_size),
                                steps=1 if a.method == "fgsm" else a.pgd_steps, share=a.adversarial_share,
                                bounds=PIXEL_RANGE, ramp_steps=ramp_steps, seed=a.seed)

    model, history, headline = train_defence(NAME, a, spec, batch_loss, train, test, device=device, threads=threads)
    with staged_outputs() as stage:
        write_trained_model(stage, NAME, model, spec, args.model, history, headline, CARD)


if __name__ == "__main__":
    cli.run(main)
