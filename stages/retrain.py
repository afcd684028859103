"""Stage retrain (defence 1, the homework's first proposal: "retrain the network with generated
adversarial images"): a CNN trained like train.* on the training set plus adversarial copies of a
share (retrain.share) of the training images, made on `attack.model` by the homework's attack
(retrain.kind, attack.step_size / max_steps / epsilon) and labelled with their true labels.

Writes the checkpoint and its card, metrics/train/retrain.json and plots/train/retrain.csv, as train@<name> does.
"""
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Literal

import torch
from pydantic import Field

from stages.lib import cli
from stages.lib.adversarial_sets import SIGN_GRADIENT_CPU_BATCH, KINDS, AttackSection
from stages.lib.data import PIXEL_RANGE, load_model_inputs
from stages.lib.defences import adversarial_copies
from stages.lib.io import staged_outputs
from stages.lib.models import CnnSpec, load_cnn, model_label
from stages.lib.params import Section, Seed, StageParams, load_params
from stages.lib.runtime import Device, StageRun, Threads, set_up, working_batch
from stages.lib.training import HEADLINE, Sgd, TrainSection, train_cnn, write_trained_model

NAME = "retrain"
LABEL, CLAIM = "defence 1 (retrained)", "defence_retrain"  # CLAIM: the homework's claim (reference/seed.yaml) it tests


class RetrainSection(Section):
    share: Annotated[float, Field(gt=0, le=1)]  # of the training images that get an adversarial copy
    kind: Literal[KINDS]
    seed: Seed


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    train: TrainSection
    retrain: RetrainSection
    attack: AttackSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    spec: CnnSpec
    sgd: Sgd
    retrain: RetrainSection
    step_size: float        # the seed's attack, as attack.* sets it
    max_steps: int
    epsilon: float | None
    attack_batch_size: int | str


def read_params(path):
    p = load_params(Params, path)
    a = p.attack
    return Run(device=p.device, threads=p.threads, spec=p.model, sgd=p.train.sgd(), retrain=p.retrain,
               step_size=a.step_size, max_steps=a.max_steps, epsilon=a.epsilon, attack_batch_size=a.batch_size)


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--source", required=True, help="the checkpoint of the attacked model (attack.model)")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    run = read_params(args.params)
    device, threads = set_up(run.device, run.threads)
    (images, labels), test = load_model_inputs(args.data, device)
    source = load_cnn(args.source, device)
    copies, copy_labels = adversarial_copies(
        source, images, labels, share=run.retrain.share, kind=run.retrain.kind, seed=run.retrain.seed,
        step_size=run.step_size, max_steps=run.max_steps, epsilon=run.epsilon, bounds=PIXEL_RANGE,
        batch_size=working_batch(run.attack_batch_size, device, SIGN_GRADIENT_CPU_BATCH), desc="retrain: attack")
    print(f"retrain: {len(copy_labels)} adversarial copies of training images added to {len(labels)}")
    train = (torch.cat([images, copies]), torch.cat([labels, copy_labels]))
    model, history, summary = train_cnn(run.spec, run.sgd, run.retrain.seed, train, test, name=NAME, device=device,
                                        threads=threads)
    with staged_outputs() as stage:
        write_trained_model(stage, NAME, model, run.spec, args.model, history,
                            {k: summary[k] for k in HEADLINE} | {"adversarial_images": len(copy_labels)},
                            {"role": "defence", "label": LABEL, "claim": CLAIM,
                             "summary": f"Retrained on {len(copy_labels):,} adversarial images of "
                                        f"{model_label(Path(args.source).stem)} added to the training set."})


if __name__ == "__main__":
    cli.run(main)
