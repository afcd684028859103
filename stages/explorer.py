"""Stage explorer (beyond the homework): what the report's ε explorer shows. For each test digit of
explorer.digits, each source model of explorer.sources and each ε of the grid 0, epsilon_step, …,
epsilon_max ([0, 1] units): the PGD image within ε made on the source (explorer.pgd_steps steps of
explorer.pgd_step_size from one seeded random start, every step taken, as robustness_transfer makes its
images), and each model of explorer.models's predicted label and its probability on it.

Writes plots/explorer/explorer.json: the settings, per digit its true label and image, and per (digit,
source, ε) the adversarial image, the perturbation scaled to its budget (mid-grey: no change; white and
black: +ε and -ε) and the predictions. Every image is a 28 x 28 PNG data URI of 16 grey levels, what keeps
the report under 1 MB larger (the models answered on the images as they saw them, before that rounding).
A digit index past the test set (the official MNIST's positions on other data) is left out with a warning.
"""
import base64
import io
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated

import torch
from PIL import Image
from pydantic import Field, field_validator, model_validator

from stages.lib import cli
from stages.lib.attacks import sign_gradient_attack
from stages.lib.data import PIXEL_RANGE, load_split, to_model_input
from stages.lib.errors import StageError, warn
from stages.lib.io import log_run, staged_outputs
from stages.lib.models import load_cnn
from stages.lib.params import Name, Section, Seed, StageParams, load_params, unique
from stages.lib.runtime import Device, StageRun, Threads, set_up
from stages.lib.units import UNIT_SPAN, UNITS, model_units

OUT = "plots/explorer/explorer.json"
MAX_BUDGETS = 100  # points on the ε slider
MAX_IMAGES = 800  # adversarial images (digits x sources x budgets): each adds about 1.2 KB to the report
GREY_STEP = 17  # 16 grey levels, 0, 17, ..., 255: a 4-bit PNG


class ExplorerSection(Section):
    """Params section `explorer`."""
    digits: Annotated[list[Annotated[int, Field(ge=0)]], Field(min_length=1)]  # test-set indices
    epsilon_max: Annotated[float, Field(gt=0, le=1)]
    epsilon_step: Annotated[float, Field(gt=0, le=1)]
    pgd_steps: Annotated[int, Field(ge=1, le=10_000)]
    pgd_step_size: Annotated[float, Field(gt=0, le=1)]
    sources: Annotated[list[Name], Field(min_length=1)]  # the models the adversarial images are made on
    models: Annotated[list[Name], Field(min_length=1)]   # the models whose predictions are shown
    seed: Seed

    @field_validator("digits", "sources", "models")
    @classmethod
    def _no_repeats(cls, value):
        return unique(value)

    @field_validator("epsilon_step")
    @classmethod
    def _divides_the_range(cls, value, info):
        top = info.data.get("epsilon_max", value)
        count = round(top / value)
        if abs(count * value - top) > 1e-9 * top:
            raise ValueError(f"must divide explorer.epsilon_max ({top:g}) into equal steps, got {value:g}")
        if count + 1 > MAX_BUDGETS:
            raise ValueError(f"must leave at most {MAX_BUDGETS} points on the slider, got {value:g} ({count + 1} points)")
        return value

    @model_validator(mode="after")
    def _fits_the_report(self):
        images = len(self.digits) * len(self.sources) * len(self.budgets())
        if images > MAX_IMAGES:
            raise ValueError(f"must make at most {MAX_IMAGES:,} images (digits x sources x budgets, each about 1.2 KB "
                             f"of the report), got {len(self.digits)} x {len(self.sources)} x {len(self.budgets())} = "
                             f"{images:,}")
        return self

    def budgets(self):
        """The ε grid, [0, 1] units: 0, epsilon_step, …, epsilon_max."""
        return [round(k * self.epsilon_step, 10) for k in range(round(self.epsilon_max / self.epsilon_step) + 1)]


class Params(StageParams):
    device: Device
    threads: Threads
    explorer: ExplorerSection


@dataclass(frozen=True, kw_only=True)
class Run(StageRun):
    """What this stage reads of params.yaml; dvc.yaml lists exactly these keys."""
    explorer: ExplorerSection


def read_params(path):
    p = load_params(Params, path)
    return Run(device=p.device, threads=p.threads, explorer=p.explorer)


def present_digits(digits, test_size):
    """The requested test indices that exist in this test set (the others left out with a warning)."""
    missing = [i for i in digits if i >= test_size]
    if missing:
        warn(f"explorer.digits: {', '.join(map(str, missing))} past the {test_size:,} test images; left out")
    present = [i for i in digits if i < test_size]
    if not present:
        raise StageError(f"params.yaml: 'explorer.digits' has no index below the test set's {test_size:,} images")
    return present


def png_uri(grey):
    """A 28 x 28 tensor of grey levels in [0, 255] as a 4-bit greyscale PNG data URI (the nearest of 16 levels)."""
    pixels = (grey / GREY_STEP).round().clamp(0, 255 // GREY_STEP).mul(GREY_STEP).to(torch.uint8)
    buffer = io.BytesIO()
    Image.fromarray(pixels.cpu().numpy(), mode="L").save(buffer, format="PNG", bits=4, optimize=True)
    return "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode()


def grey(images):
    """Model-input images (N x 1 x 28 x 28 in PIXEL_RANGE) as grey levels in [0, 255], N x 28 x 28."""
    low, high = PIXEL_RANGE
    return (images[:, 0] - low) * (255 / (high - low))


def perturbation_grey(adversarial, originals, epsilon):
    """adversarial - originals as grey levels: 127.5 no change, 255 at +epsilon, 0 at -epsilon ([0, 1] units)."""
    delta = (adversarial[:, 0] - originals[:, 0]) / UNIT_SPAN
    return 127.5 + 127.5 * delta / (epsilon or 1)


def write_compact_json(path, obj):
    """JSON without spaces or line breaks (most of it is image data)."""
    Path(path).write_text(json.dumps(obj, separators=(",", ":"), allow_nan=False) + "\n")


@torch.no_grad()
def answers(model, images):
    """(predicted labels, their probabilities), as lists."""
    probability, label = model(images).softmax(1).max(1)
    return label.tolist(), [round(p, 4) for p in probability.tolist()]


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("--data", required=True, help="the fetch_mnist output folder")
    parser.add_argument("--models", required=True, help="the folder of the checkpoints <name>.pt")
    args = parser.parse_args(argv)
    run = read_params(args.params)
    e = run.explorer
    device, _ = set_up(run.device, run.threads)
    test_images, test_labels = load_split(args.data, "test")
    digits = present_digits(e.digits, len(test_labels))
    models = {name: load_cnn(Path(args.models) / f"{name}.pt", device) for name in dict.fromkeys(e.sources + e.models)}
    x, y = to_model_input(test_images[digits]).to(device), test_labels[digits].to(device)
    started, rows = time.perf_counter(), []
    for source in e.sources:
        for epsilon in e.budgets():
            adversarial, _, _ = sign_gradient_attack(
                models[source], x, y, step_size=model_units(e.pgd_step_size), max_steps=e.pgd_steps,
                epsilon=model_units(epsilon), bounds=PIXEL_RANGE, batch_size=len(y), early_stop=False,
                random_start=True, seed=e.seed)
            shown = {name: answers(models[name], adversarial) for name in e.models}
            deltas = perturbation_grey(adversarial, x, epsilon)
            for i, image in enumerate(grey(adversarial)):
                rows.append({"digit": digits[i], "source": source, "epsilon": epsilon, "adversarial": png_uri(image),
                             "perturbation": png_uri(deltas[i]), "predicted": [shown[m][0][i] for m in e.models],
                             "probability": [shown[m][1][i] for m in e.models]})
    seconds = time.perf_counter() - started
    with staged_outputs() as stage:
        write_compact_json(stage(OUT), {
            "epsilon": e.budgets(), "epsilon_units": UNITS,
            "attack": {"method": "PGD", "steps": e.pgd_steps, "step_size": e.pgd_step_size,
                       "random_start": "uniform in the epsilon ball, one start", "early_stop": False, "seed": e.seed},
            "sources": e.sources, "models": e.models,
            "digits": [{"index": index, "label": label, "original": png_uri(image)}
                       for index, label, image in zip(digits, y.tolist(), grey(x))],
            "images": rows})
    log_run("explorer", seconds=seconds, images=len(rows))
    print(f"explorer: {len(rows):,} PGD images ({len(digits)} digits x {len(e.sources)} sources x "
          f"{len(e.budgets())} budgets) in {seconds:.1f} s, each shown to {len(e.models)} models")


if __name__ == "__main__":
    cli.run(main)
