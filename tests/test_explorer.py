"""The explorer stage: the PGD images and every model's answers the report's ε explorer shows."""
import base64
import io
import json
import re

import numpy as np
import pytest
from PIL import Image

from stages.lib.errors import StageError
from tests.conftest import (
    assert_clean_failure,
    check_params_with,
    make_mnist_dir,
    params_with,
    run_main,
    run_stage,
    write_params,
)

EXPLORER_CHANGES = {
    "model.channels": [4, 8], "model.hidden": 16, "train.epochs": 2,
    "explorer.digits": [0, 3, 7, 500], "explorer.epsilon_max": 0.3, "explorer.epsilon_step": 0.1,
    "explorer.pgd_steps": 10, "explorer.pgd_step_size": 0.05, "explorer.sources": ["model1", "model2"],
    "explorer.models": ["model1", "model2"]}
OUT = "plots/explorer/explorer.json"


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A small synthetic MNIST (200 test images) and two tiny trained models."""
    root = make_mnist_dir(tmp_path_factory.mktemp("explorer"))
    write_params(root, params_with(**EXPLORER_CHANGES))
    for name in ("model1", "model2"):
        run_main("train", name, "--data", "data/mnist", "--model", f"models/{name}.pt", cwd=root)
    return root


def explore(root):
    run_main("explorer", "--data", "data/mnist", "--models", "models", cwd=root)
    return json.loads((root / OUT).read_text())


def pixels(uri):
    """A PNG data URI's pixels as a 28 x 28 array of floats in [0, 1], each one of 16 grey levels."""
    assert uri.startswith("data:image/png;base64,")
    image = Image.open(io.BytesIO(base64.b64decode(uri.split(",", 1)[1])))
    assert image.mode == "L" and image.size == (28, 28)
    levels = np.asarray(image, dtype=np.float64)
    assert (levels % 17 == 0).all()
    return levels / 255


def test_every_digit_source_and_epsilon_has_its_image_within_epsilon_and_every_answer(trained, capsys):
    data = explore(trained)
    assert "explorer.digits: 500 past the 200 test images; left out" in capsys.readouterr().err
    assert data["epsilon"] == [0.0, 0.1, 0.2, 0.3]
    assert [d["index"] for d in data["digits"]] == [0, 3, 7] and [d["label"] for d in data["digits"]] == [0, 3, 7]
    assert len(data["images"]) == 3 * 2 * 4
    originals = {d["index"]: pixels(d["original"]) for d in data["digits"]}
    extremes = set()
    for row in data["images"]:
        adversarial, original = pixels(row["adversarial"]), originals[row["digit"]]
        perturbation = pixels(row["perturbation"])
        assert np.abs(adversarial - original).max() <= row["epsilon"] + 17 / 255  # both rounded to 16 grey levels
        # the perturbation panel, scaled to ε: mid-grey where nothing changed, white at +ε, black at -ε
        if row["epsilon"] == 0:
            assert (perturbation == 136 / 255).all()
        assert (adversarial[perturbation == 1] >= original[perturbation == 1] - 17 / 255).all()
        assert (adversarial[perturbation == 0] <= original[perturbation == 0] + 17 / 255).all()
        extremes |= set(np.unique(perturbation[(perturbation == 0) | (perturbation == 1)]))
        assert len(row["predicted"]) == len(row["probability"]) == 2
        assert all(0.1 <= p <= 1 for p in row["probability"])  # the largest of ten probabilities
    assert extremes == {0.0, 1.0}
    digits = {d["index"]: d for d in data["digits"]}
    assert all(r["adversarial"] == digits[r["digit"]]["original"] for r in data["images"] if r["epsilon"] == 0)
    # the attack works on the model it is made on: at the top budget it is wrong on more digits than at 0
    for i, source in enumerate(data["sources"]):
        wrong = {e: sum(r["predicted"][i] != digits[r["digit"]]["label"] for r in data["images"]
                        if r["source"] == source and r["epsilon"] == e) for e in (0.0, 0.3)}
        assert wrong[0.3] > wrong[0.0], (source, wrong)
    written = (trained / OUT).read_bytes()
    explore(trained)  # the same params, machine and threads: the same bytes
    assert (trained / OUT).read_bytes() == written


@pytest.mark.parametrize("changes, key", [
    ({"explorer.epsilon_step": 0.03}, "'explorer.epsilon_step' must divide explorer.epsilon_max (0.4) into equal steps"),
    ({"explorer.epsilon_step": 0.001}, "'explorer.epsilon_step' must leave at most 100 points on the slider"),
    ({"explorer.sources": ["model1", "model1"]}, "'explorer.sources' must not repeat a value"),
    ({"explorer.digits": []}, "'explorer.digits' must have at least 1 item"),
    ({"explorer.digits": list(range(40))}, "'explorer' must make at most 800 images"),
    ({"explorer.models": ["model 1"]}, "'explorer.models[0]' must match pattern"),
])
def test_a_bad_explorer_param_is_one_line_naming_the_key(tmp_path, changes, key):
    with pytest.raises(StageError, match=re.escape(key)):
        check_params_with(tmp_path, **changes)


def test_the_stage_refuses_a_bad_param_before_it_writes_anything(trained, tmp_path):
    import shutil

    root = tmp_path / "work"
    shutil.copytree(trained, root, ignore=shutil.ignore_patterns("plots"))
    write_params(root, params_with(**EXPLORER_CHANGES | {"explorer.epsilon_step": 0.07}))
    assert_clean_failure(run_stage("explorer", "--data", "data/mnist", "--models", "models", cwd=root),
                         "params.yaml: 'explorer.epsilon_step' must divide explorer.epsilon_max (0.3)")
    write_params(root, params_with(**EXPLORER_CHANGES | {"explorer.digits": [1000, 2000]}))
    with pytest.raises(StageError, match="'explorer.digits' has no index below the test set's 200 images"):
        explore(root)
    write_params(root, params_with(**EXPLORER_CHANGES | {"explorer.models": ["model1", "retrain"]}))
    with pytest.raises(StageError, match="models/retrain.pt: not found"):
        explore(root)
    assert not (root / "plots").exists()
