"""Stage adversarial_training (defence 2, the seed's second proposal: "a component in the loss function
which formulates adversarial loss"): a CNN trained on (1 - s) CE(clean) + s CE(adversarial), its
adversarial examples made on the fly for each batch within an epsilon ball (adversarial_training.*):
by default the fast FGSM with a random start (Wong et al. 2020), or PGD (Madry et al. 2018).

A guard against catastrophic overfitting holds guard.images training images out and attacks them with
PGD after every epoch; when that accuracy falls more than guard.max_drop below its best, training stops
and the best epoch's weights are kept (metrics: collapsed_at_epoch, kept_epoch).

Writes the checkpoint, metrics/train/adversarial_training.json and plots/train/adversarial_training.csv
(with the guard's PGD accuracy per epoch).
"""
import torch

from stages.lib import cli
from stages.lib.data import PIXEL_RANGE
from stages.lib.io import staged_outputs
from stages.lib.params import load_params
from stages.lib.defences import CollapseGuard, fgsm_adversary
from stages.lib.training import train_and_report, write_trained_model
from stages.train import HEADLINE

NAME = "adversarial_training"


def read_params(params):
    """The plain values this stage uses; dvc.yaml lists exactly these keys."""
    a = params.adversarial_training
    return {"device": params.device, "threads": params.threads, "spec": params.model.spec(),
            "epochs": a.epochs, "batch_size": a.batch_size, "lr": a.lr, "momentum": 0.0,
            "eval_batch_size": a.eval_batch_size, "seed": a.seed, "adversarial_share": a.adversarial_share,
            "adversary": {"epsilon": a.epsilon, "step_size": a.step_size,
                          "steps": 1 if a.method == "fgsm" else a.pgd_steps},
            "guard": {"images": a.guard.images, "steps": a.guard.pgd_steps, "max_drop": a.guard.max_drop}}


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--model", required=True, help="the checkpoint to write")
    args = parser.parse_args(argv)
    p = read_params(load_params(args.params))
    adversary, guard_options = p.pop("adversary"), p.pop("guard")
    guards = []

    def hold_out_guard_images(train, device):
        images, labels = train
        if guard_options["images"] >= len(labels):
            raise cli.StageError(f"params.yaml: 'adversarial_training.guard.images' ({guard_options['images']}) "
                                 f"must be fewer than the {len(labels)} training images")
        order = torch.randperm(len(labels), generator=torch.Generator().manual_seed(p["seed"])).to(labels.device)
        held, kept = order[:guard_options["images"]], order[guard_options["images"]:]
        guard = CollapseGuard(images[held], labels[held], epsilon=adversary["epsilon"], steps=guard_options["steps"],
                              max_drop=guard_options["max_drop"], bounds=PIXEL_RANGE,
                              batch_size=p["eval_batch_size"])
        guards.append(guard)
        return (images[kept], labels[kept]), {
            "adam": True, "one_cycle": True, "adversary": fgsm_adversary(bounds=PIXEL_RANGE, **adversary),
            "after_epoch": guard}

    model, history, summary = train_and_report(args.data, NAME, prepare=hold_out_guard_images, **p)
    outcome = guards[0].summary()
    if outcome["collapsed_at_epoch"]:
        cli.warn(f"adversarial_training: PGD accuracy collapsed at epoch {outcome['collapsed_at_epoch']}; "
                 f"kept the weights of epoch {outcome['kept_epoch']}")
    kept = history[outcome["kept_epoch"] - 1] if outcome["collapsed_at_epoch"] else history[-1]
    headline = ({k: summary[k] for k in HEADLINE} | {"final_test_acc": kept["test_acc"]}
                | {"guard_pgd_acc": kept["guard_pgd_acc"]} | outcome)
    with staged_outputs() as stage:
        write_trained_model(stage, NAME, model, p["spec"], args.model, history, headline)


if __name__ == "__main__":
    cli.run(main)
