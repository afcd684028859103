"""Stage trades (defence 3, the strongest published form of the homework's second proposal, "a component in
the loss function which formulates adversarial loss"): TRADES (Zhang et al., ICML 2019). The loss is

    CE(f(x), y) + beta * KL(f(x) || f(x')),

the clean image's cross-entropy plus beta times the divergence between the model's predictions on the
clean image and on x', the image within epsilon of it that maximises that divergence. x' is found by
TRADES' own inner maximisation as torchattacks implements it (TPGD): a start 0.001 N(0, 1) away from x,
then `steps` sign-gradient steps of step_size on the divergence, each clipped to the ball and [0, 1]. Both
terms are the paper's (the divergence summed over classes, averaged over the batch).

Trained like adversarial_training otherwise (stages.lib.defences.train_defence): the same CNN, Adam on a
linear one-cycle schedule, epsilon and the step ramped up from 0 over epsilon_ramp_epochs, the held-out
guard against catastrophic overfitting. torchattacks' attacks check their inputs on the host, so a GPU
runs the steps one by one rather than as a CUDA graph.

Writes the checkpoint and its card, metrics/train/trades.json and plots/train/trades.csv (with the guard's
PGD accuracy per epoch).
"""
from typing import Annotated

import torch.nn.functional as F
from pydantic import Field

from stages.lib import cli
from stages.lib.data import PIXEL_RANGE, load_model_inputs
from stages.lib.defences import DefenceSection, train_defence
from stages.lib.io import staged_outputs
from stages.lib.models import CnnSpec, UnitRangeModel
from stages.lib.params import Count, StageParams, load_params
from stages.lib.runtime import Device, Threads, set_up
from stages.lib.training import write_trained_model

NAME = "trades"
LABEL = "defence 3 (TRADES)"  # beyond the homework: no claim of it to test


class TradesSection(DefenceSection):
    steps: Count  # of the inner maximisation
    beta: Annotated[float, Field(gt=0, le=1000)]  # the divergence's weight (the paper's 1 / lambda)


class Params(StageParams):
    device: Device
    threads: Threads
    model: CnnSpec
    trades: TradesSection


def read_params(path):
    """What this stage reads of params.yaml (all of it is listed in dvc.yaml)."""
    return load_params(Params, path)


def trades_loss(*, epsilon, step_size, steps, beta, bounds, ramp_steps):
    """The per-batch TRADES loss for training.train_epochs: epsilon and step_size in [0, 1] units, both
    rising linearly from 0 over the first ramp_steps training steps. The logits returned (for the running
    accuracy) are the adversarial images'."""
    import torchattacks  # here, not at the top: it imports scipy, ~0.5 s of every start-up of check_params

    def loss(model, x, y, step):
        scale = min((step + 1) / ramp_steps, 1.0) if ramp_steps else 1.0
        unit = UnitRangeModel(model, bounds)
        attack = torchattacks.TPGD(unit, eps=scale * epsilon, alpha=scale * step_size, steps=steps)
        adversarial = unit.from_unit(attack(unit.to_unit(x)))
        model.train()
        clean, attacked = model(x), model(adversarial)
        divergence = F.kl_div(F.log_softmax(attacked, dim=1), F.softmax(clean, dim=1), reduction="batchmean")
        return F.cross_entropy(clean, y) + beta * divergence, attacked
    return loss


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    p = read_params(args.params)
    t = p.trades
    device, threads = set_up(p.device, p.threads)
    train, test = load_model_inputs(args.data, device)
    spec = t.model or p.model

    def batch_loss(ramp_steps):
        return trades_loss(epsilon=t.epsilon, step_size=t.step_size, steps=t.steps, beta=t.beta, bounds=PIXEL_RANGE,
                           ramp_steps=ramp_steps)

    model, history, headline = train_defence(NAME, t, spec, batch_loss, train, test, device=device, threads=threads,
                                             static_steps=False)
    with staged_outputs() as stage:
        write_trained_model(stage, NAME, model, spec, args.model, history, headline, {
            "role": "defence", "label": LABEL,
            "summary": f"Trained on TRADES' loss: the clean image's cross-entropy plus {t.beta:g} times the divergence "
                       f"from the image within ε = {t.epsilon:g} that maximises it ({t.steps} steps)."})


if __name__ == "__main__":
    cli.run(main)
