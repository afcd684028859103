"""params.yaml validation: typed sections read as DVC reads them, one line naming the key."""
import copy

import pytest
from dvc.utils.hydra import apply_overrides

from stages import train
from stages.check_params import check, load_all, stage_modules
from stages.lib.errors import StageError
from stages.lib.params import Section, load_params
from tests.conftest import (
    DEFAULT_PARAMS,
    ROOT,
    assert_clean_failure,
    check_params_with,
    params_with,
    run_stage,
    write_params,
)


def test_the_committed_params_are_valid():
    params = load_all(ROOT / "params.yaml")
    assert params.train.models["model1"].seed == 1 and params.sweep.extra.lr == [1e-05]
    assert len(params.sweep.points()) == 10


def numeric_leaves(model, prefix=""):
    """The dotted key of every float param, lists included."""
    for name, field in model.model_fields.items():
        key = f"{prefix}{name}"
        annotation = field.annotation
        if isinstance(annotation, type) and issubclass(annotation, Section):
            yield from numeric_leaves(annotation, key + ".")
        elif "float" in str(annotation) and "Literal" not in str(annotation):
            yield key


FLOAT_KEYS = sorted({key for stage in stage_modules() for key in numeric_leaves(stage.Params)})
SPELLINGS = ["1e-5", "1e-05", "1.0e9", ".5"]


def test_the_float_keys_are_found():
    assert {"train.lr", "sweep.lr", "sweep.extra.lr", "loss_surfaces.step", "attack.epsilon"} <= set(FLOAT_KEYS)


@pytest.mark.parametrize("key", FLOAT_KEYS)
def test_every_float_param_takes_what_dvc_exp_run_set_param_writes(tmp_path, key, spellings=SPELLINGS):
    """`dvc exp run -S key=value` rewrites params.yaml with DVC's own code (apply_overrides); every
    spelling is then read as the number it is: accepted, or refused for its range, never as a string."""
    default = params_with()
    node = default
    for part in key.split("."):
        node = node[part]
    is_list = isinstance(node, list) and key.split(".")[-1] not in ("w_range", "b_range")
    for spelling in spellings:
        path = write_params(tmp_path, default)
        value = f"[{spelling}]" if is_list else f"[{spelling},4.0]" if key.endswith("_range") else spelling
        apply_overrides(path, [f"{key}={value}"])
        try:
            params = load_all(path)
        except StageError as error:
            # refused for its range (or, for sweep.lr, for repeating the extra point), never as a string
            assert "valid number" not in str(error) and f"'{key.split('.')[0]}" in str(error), str(error)
            continue
        loaded = params
        for part in key.split("."):
            loaded = getattr(loaded, part)
        assert (loaded[0] if isinstance(loaded, list) else loaded) == float(spelling), (key, spelling)


@pytest.mark.parametrize("changes, needle", [
    ({"train.lerning_rate": 0.1}, "unknown key 'train.lerning_rate' (did you mean 'train.lr'?); train allows: "
                                  "epochs, batch_size, eval_batch_size, lr, momentum, models"),
    ({"trian": {"epochs": 1}}, "unknown key 'trian' (did you mean 'train'?); the top level allows: adversarial_training, attack, data,"),
    ({"attack.step_sise": 0.1}, "unknown key 'attack.step_sise' (did you mean 'attack.step_size'?)"),
    ({"robustness.pgd.restart": 5}, "unknown key 'robustness.pgd.restart' (did you mean 'robustness.pgd.restarts'?)"),
    ({"train.models.model1.sed": 3}, "unknown key 'train.models.model1.sed' (did you mean "
                                     "'train.models.model1.seed'?); train.models.model1 allows: seed"),
    ({"wholly_new": 1}, "unknown key 'wholly_new'; the top level allows:"),
    ({"attack.seed": 2 ** 64}, "'attack.seed' must be less than or equal to 4294967295"),
    ({"train.epochs": 1000000000}, "'train.epochs' must be at most 1,000 (a bound on run time"),
    ({"sweep.epochs": 5000}, "'sweep.epochs' must be at most 1,000"),
    ({"adversarial_training.epochs": 5000}, "'adversarial_training.epochs' must be at most 1,000"),
    ({"xor.snapshot_epochs": []}, "'xor.snapshot_epochs' must have at least 1 item"),
    ({"loss_surfaces.x": 1e308}, "'loss_surfaces.x' must be less than or equal to 1000000"),
    ({"loss_surfaces.w_range": [-1e308, 1e308]}, "'loss_surfaces.w_range[0]' must be greater than or equal to"),
    ({"xor.lr": 1e308}, "'xor.lr' must be less than or equal to 1000000"),
    ({"train.lr": 1e308}, "'train.lr' must be less than or equal to 1000000"),
    ({"adversarial_training.lr": 1e308}, "'adversarial_training.lr' must be less than or equal to 1000000"),
    ({"train.lr": -0.01}, "'train.lr' must be greater than 0, got -0.01"),
    ({"train.lr": "fast"}, "'train.lr' must be a valid number, got 'fast'"),
    ({"train.epochs": True}, "'train.epochs' must be a valid integer, got True"),
    ({"train.batch_size": 0}, "'train.batch_size' must be greater than or equal to 1, got 0"),
    ({"train.models": {}}, "'train.models' must have at least 1 item"),
    ({"train.models": {"model 1": {"seed": 1}}}, "'train.models.model 1' must match pattern '^[A-Za-z0-9_]+$'"),
    ({"train.momentum": 1.0}, "'train.momentum' must be less than 1"),
    ({"model.kernel_size": 4}, "'model.kernel_size' must be odd (same padding), got 4"),
    ({"model.channels": [100000]}, "'model.channels[0]' must be less than or equal to 512, got 100000"),
    ({"model.channels": [8, 8, 8, 8, 8]}, "'model.channels' must have at most 4 items"),
    ({"loss_surfaces.step": 0.00001}, "'loss_surfaces.step' gives 1000001 points along w_range; at most 2001"),
    ({"loss_surfaces.w_range": [5, -5]}, "'loss_surfaces.w_range' must be [low, high] with low < high"),
    ({"loss_surfaces.y": 1.5}, "'loss_surfaces.y' must be less than or equal to 1"),
    ({"loss_surfaces.label": 0.5}, "'loss_surfaces.label' must be 0 or 1, got 0.5"),
    ({"loss_surfaces.descent.start": [4.0, 4.0]}, "'loss_surfaces.descent' must start on the wrong side of label 1"),
    ({"loss_surfaces.descent.target_error": 0.5}, "'loss_surfaces.descent.target_error' must be less than 0.5"),
    ({"loss_surfaces.descent.max_steps": 0}, "'loss_surfaces.descent.max_steps' must be greater than or equal to 1"),
    ({"loss_surfaces.wrong_by": 1.0}, "'loss_surfaces.wrong_by' must be less than 1"),
    ({"xor.activation": "softsign"}, "'xor.activation' must be 'tanh', 'sigmoid' or 'relu', got 'softsign'"),
    ({"xor.snapshot_epochs": [0, 5000]}, "'xor.snapshot_epochs' must be epochs in 0..xor.epochs (2000), got 5000"),
    ({"xor.epochs": 1000000000}, "'xor.n_seeds' with xor.epochs 1,000,000,000 records 101,000,000,101 losses"),
    ({"xor.hidden": 0}, "'xor.hidden' must be greater than or equal to 1"),
    ({"sweep.lr": [0.1, "fast"]}, "'sweep.lr[1]' must be a valid number, got 'fast'"),
    ({"sweep.lr": [0.1, 0.1]}, "'sweep.lr' must not repeat a value, got [0.1, 0.1]"),
    ({"sweep.lr": []}, "'sweep.lr' must have at least 1 item"),
    ({"sweep.extra.batch_size": [32], "sweep.extra.lr": [0.1]}, "'sweep.extra' repeats the grid's point 32-0.1"),
    ({"attack.epsilon": -0.1}, "'attack.epsilon' must be greater than 0"),
    ({"attack.max_steps": 0}, "'attack.max_steps' must be greater than or equal to 1"),
    ({"attack.gallery.targeted": [-1]}, "'attack.gallery.targeted[0]' must be greater than or equal to 0"),
    ({"data.download_timeout": float("inf")}, "'data.download_timeout' must be a finite number"),
    ({"data.seed": "zero"}, "'data.seed' must be a valid integer"),
    ({"device": "tpu"}, "'device' must be 'auto', 'cpu', 'cuda' or 'cuda:K'"),
    ({"threads": 0}, "'threads' must be 'auto' or an integer from 1 to 1024, got 0"),
    ({"threads": "many"}, "'threads' must be 'auto' or an integer from 1 to 1024, got 'many'"),
])
def test_bad_params_are_one_line_naming_the_key(tmp_path, changes, needle):
    with pytest.raises(StageError) as error:
        check_params_with(tmp_path, **changes)
    message = str(error.value)
    assert "\n" not in message and message.startswith("params.yaml: ")
    assert needle in message


def test_a_missing_key_is_named(tmp_path):
    params = copy.deepcopy(DEFAULT_PARAMS)
    del params["attack"]["seed"]
    with pytest.raises(StageError, match=r"^params.yaml: missing key 'attack.seed'$"):
        check(write_params(tmp_path, params))


def test_a_cache_dir_that_is_a_file_is_refused(tmp_path):
    (tmp_path / "cache").write_text("not a folder")
    with pytest.raises(StageError, match="'data.cache_dir' must be a directory"):
        check_params_with(tmp_path, **{"data.cache_dir": str(tmp_path / "cache")})


def test_a_key_written_twice_is_refused(tmp_path):
    text = (ROOT / "params.yaml").read_text().replace("  lr: 0.1\n", "  lr: 0.1\n  lr: 0.5\n", 1)
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(StageError, match=r"line \d+: found duplicate key \"lr\""):
        check(tmp_path / "params.yaml")


def test_threads_auto_or_a_count(tmp_path):
    assert load_params(train.Params, write_params(tmp_path, params_with())).threads == "auto"
    assert load_params(train.Params, write_params(tmp_path, params_with(threads=3))).threads == 3


def test_an_attack_batch_is_auto_or_a_count_and_auto_is_the_device_s(tmp_path):
    import torch

    from stages.lib.runtime import GPU_WORKING_BATCH, working_batch

    assert check_params_with(tmp_path, **{"attack.batch_size": 32}).attack.batch_size == 32
    loaded = check_params_with(tmp_path)
    assert loaded.attack.batch_size == loaded.robustness.batch_size == "auto"
    assert working_batch("auto", torch.device("cpu"), 128) == 128 and working_batch(7, torch.device("cuda"), 128) == 7
    assert working_batch("auto", torch.device("cuda"), 128) == GPU_WORKING_BATCH
    for bad in (0, "big", 2.5):
        with pytest.raises(StageError, match="'robustness.batch_size' must be 'auto' or an integer >= 1"):
            check_params_with(tmp_path, **{"robustness.batch_size": bad})


@pytest.mark.parametrize("text, needle", [
    ("data: [unclosed\n", "params.yaml: not valid YAML"),
    ("- a list\n", "params.yaml: expected a mapping of sections"),
])
def test_a_file_that_is_no_params_mapping_is_named(tmp_path, text, needle):
    (tmp_path / "params.yaml").write_text(text)
    with pytest.raises(StageError, match=needle):
        check(tmp_path / "params.yaml")


def test_a_bad_value_on_the_command_line_exits_2_before_any_work(tmp_path):
    write_params(tmp_path, params_with(**{"sweep.lr": [0.1, "fast"]}))
    result = run_stage("sweep", "--data", "data/mnist", "--batch-size", "32", "--lr", "fast", cwd=tmp_path)
    assert result.returncode == 2
    assert_clean_failure(result, "params.yaml: 'sweep.lr[1]' must be a valid number, got 'fast'")


def test_a_refused_value_is_described_in_bounded_time_and_memory(tmp_path):
    """A billion laughs (an alias bomb: 10^9 items in a few lines) where a seed belongs is one line, fast,
    within 1 GB of address space; before, repr() of it grew until a memory limit stopped it."""
    import resource
    import subprocess
    import sys
    import time

    levels = ["&l0 [" + ", ".join(["1"] * 10) + "]"] + [
        f"&l{i} [" + ", ".join([f"*l{i - 1}"] * 10) + "]" for i in range(1, 10)]
    (tmp_path / "params.yaml").write_text(f"xor:\n  seed: [{', '.join(levels)}]\n")
    code = ("import sys\nfrom stages.lib.params import Section, Seed, StageParams, load_params\n"
            "class Xor(Section):\n    seed: Seed\nclass Params(StageParams):\n    xor: Xor\n"
            "try:\n    load_params(Params, sys.argv[1])\nexcept Exception as error:\n    print(error)\n")
    start = time.monotonic()
    result = subprocess.run([sys.executable, "-c", code, "params.yaml"], cwd=tmp_path, capture_output=True, text=True,
                            env={"PYTHONPATH": str(ROOT)}, timeout=120,
                            preexec_fn=lambda: resource.setrlimit(resource.RLIMIT_AS, (2 ** 30, 2 ** 30)))
    assert result.returncode == 0, result.stderr[-2000:]
    got = "params.yaml: 'xor.seed' must be a valid integer, got "
    assert result.stdout.startswith(got + "[[1, 1, 1,") and result.stdout.endswith("...\n")
    assert len(result.stdout) == len(got) + 80 + 1  # the value shown in 80 characters, as any other
    assert time.monotonic() - start < 10
