"""Beyond the homework: FGSM and PGD on the shared attack core, the three defences and the robustness stage."""
import json
from types import SimpleNamespace

import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from stages.lib import defences
from stages.lib.attacks import batch_pgd, fgsm, pgd, sign_gradient_attack, uniform_noise
from stages.lib.autoattack import autoattack
from stages.lib.data import load_model_inputs, to_model_input
from stages.lib.models import CnnSpec, UnitRangeModel, seeded_cnn
from stages.lib.training import Schedule, graph_safe_adam, train_epochs
from tests.conftest import check_params_with, make_mnist_dir, params_with, run_main, synthetic_digits, write_params

BOUNDS = (-1.0, 1.0)


@pytest.fixture(scope="module")
def model_and_batch(fixed_model):
    model = fixed_model
    images, _ = synthetic_digits(60, seed=5)
    x = to_model_input(images)
    with torch.no_grad():
        labels = model(x).argmax(1)
    labels[:10] = (labels[:10] + 1) % 10  # some images misclassified before any attack
    return model, x, labels


@pytest.mark.parametrize("restarts", [1, 3])
@pytest.mark.parametrize("epsilon", [0.05, 0.2, 0.6])
def test_fgsm_and_pgd_stay_in_the_epsilon_ball_and_the_pixel_range(model_and_batch, epsilon, restarts):
    model, x, labels = model_and_batch
    for adversarial in (fgsm(model, x, labels, epsilon, bounds=BOUNDS)[0],
                        pgd(model, x, labels, epsilon, steps=7, step_size=epsilon / 3, restarts=restarts,
                            bounds=BOUNDS, batch_size=16)[0]):
        assert (adversarial - x).abs().max() <= epsilon + 1e-6
        assert adversarial.min() >= BOUNDS[0] and adversarial.max() <= BOUNDS[1]


def test_pgd_with_epsilon_zero_is_the_clean_accuracy(model_and_batch):
    model, x, labels = model_and_batch
    adversarial, fooled, steps = pgd(model, x, labels, 0.0, steps=10, step_size=0.05, restarts=2, bounds=BOUNDS)
    with torch.no_grad():
        misclassified = model(x).argmax(1) != labels
    assert torch.equal(fooled, misclassified) and misclassified[:10].all()
    assert torch.equal(adversarial, x) and (steps == 0).all()


def test_more_restarts_fool_a_superset_and_the_result_does_not_depend_on_the_batch_size(model_and_batch):
    model, x, labels = model_and_batch
    one = pgd(model, x, labels, 0.03, steps=2, step_size=0.0075, restarts=1, bounds=BOUNDS)[1]
    five = [pgd(model, x, labels, 0.03, steps=2, step_size=0.0075, restarts=5, bounds=BOUNDS, batch_size=b)
            for b in (7, 64)]
    assert (five[0][1] | ~one).all() and five[0][1].sum() > one.sum()
    assert torch.equal(five[0][1], five[1][1]) and torch.equal(five[0][0], five[1][0])


@pytest.mark.parametrize("epsilon", [0.01, 0.03])
def test_our_pgd_is_at_least_as_strong_as_torchattacks_pgd(model_and_batch, epsilon):
    # an independent implementation at equal budget, steps, step size and restarts (torchattacks works in
    # [0, 1], where every size is half of ours): it may fool at most one image (1/60) that ours does not
    import torchattacks

    model, x, labels = model_and_batch
    ours = pgd(model, x, labels, epsilon, steps=10, step_size=epsilon / 4, restarts=3, bounds=BOUNDS)[1]
    unit = UnitRangeModel(model, BOUNDS).eval()
    theirs = torch.zeros_like(ours)
    for restart in range(3):
        torch.manual_seed(restart)
        attack = torchattacks.PGD(unit, eps=epsilon / 2, alpha=epsilon / 8, steps=10, random_start=True)
        adversarial = attack(unit.to_unit(x), labels)
        with torch.no_grad():
            theirs |= unit(adversarial).argmax(1) != labels
    assert 10 < theirs.sum() < len(labels)  # a budget where the attacks have work to do
    assert (theirs & ~ours).sum() <= 1 and ours.sum() >= theirs.sum()


def test_autoattack_stays_in_the_ball_and_fools_at_least_what_our_pgd_fools(model_and_batch):
    model, x, labels = model_and_batch
    adversarial, by_attack = autoattack(model, x, labels, 0.02, bounds=BOUNDS, batch_size=16, seed=0, steps=20,
                                        queries=200)
    assert list(by_attack) == ["apgd_ce", "apgd_t", "fab_t", "square"]  # the reference's order
    assert (torch.stack(list(by_attack.values())).sum(0) <= 1).all()  # each image fooled by at most one
    fooled = torch.stack(list(by_attack.values())).any(0)
    assert (adversarial - x).abs().max() <= 0.02 + 1e-6
    assert adversarial.min() >= BOUNDS[0] and adversarial.max() <= BOUNDS[1]
    with torch.no_grad():
        assert torch.equal(fooled, model(adversarial).argmax(1) != labels)
    assert by_attack["apgd_ce"][:10].all()  # misclassified before any attack: the first attack's
    ours = pgd(model, x, labels, 0.02, steps=10, step_size=0.005, restarts=3, bounds=BOUNDS)[1]
    assert (ours & ~fooled).sum() == 0 and fooled.sum() < len(labels)


def test_the_epsilon_ramp_starts_the_adversarial_loss_near_the_clean_one(model_and_batch):
    model, x, labels = model_and_batch
    with torch.no_grad():
        clean = model(x)
    full, ramped = (defences.adversarial_loss(epsilon=0.6, step_size=0.15, steps=3, share=1.0, bounds=BOUNDS,
                                              ramp_steps=ramp) for ramp in (0, 10**6))
    _, full_logits = full(model, x, labels, 0)
    _, early_logits = ramped(model, x, labels, 0)  # budget 0.6 / 10**6 at the first step
    _, late_logits = ramped(model, x, labels, 10**6)  # the whole budget once the ramp is over
    assert torch.allclose(early_logits, clean, atol=1e-3) and not torch.allclose(full_logits, clean, atol=0.1)
    assert torch.equal(late_logits, full(model, x, labels, 10**6)[1])


def test_the_training_noise_is_uniform_and_a_pure_function_of_seed_step_and_element():
    shape = (50, 1, 28, 28)
    noise = uniform_noise(shape, 4, 7, torch.device("cpu"))
    assert noise.shape == shape and noise.dtype == torch.float32
    assert 0 <= noise.min() and noise.max() < 1 and abs(noise.mean().item() - 0.5) < 0.01
    assert abs(noise.std().item() - 12 ** -0.5) < 0.01 and len(noise.unique()) > 0.99 * noise.numel()
    # the step as a 0-dim tensor (a GPU's captured step) gives the same numbers as the step as an int
    assert torch.equal(noise, uniform_noise(shape, 4, torch.tensor(7), torch.device("cpu")))
    others = [uniform_noise(shape, 4, 8, torch.device("cpu")), uniform_noise(shape, 5, 7, torch.device("cpu"))]
    assert all((noise != other).float().mean() > 0.99 for other in others)
    # neighbouring pixels and steps are uncorrelated
    flat = noise.flatten()
    assert abs(torch.corrcoef(torch.stack([flat[:-1], flat[1:]]))[0, 1]) < 0.02
    assert abs(torch.corrcoef(torch.stack([flat, others[0].flatten()]))[0, 1]) < 0.02


@pytest.mark.parametrize("epsilon", [0.05, 0.6])
def test_batch_pgd_stays_in_the_ball_and_is_at_least_as_strong_as_its_random_start(model_and_batch, epsilon):
    model, x, labels = model_and_batch
    noise = uniform_noise(x.shape, 0, 0, x.device)
    start = batch_pgd(model, x, labels, epsilon=epsilon, step_size=epsilon / 4, steps=0, bounds=BOUNDS, noise=noise)
    adversarial = batch_pgd(model, x, labels, epsilon=torch.tensor(epsilon), step_size=torch.tensor(epsilon / 4),
                            steps=10, bounds=BOUNDS, noise=noise)
    for z in (start, adversarial):
        assert (z - x).abs().max() <= epsilon + 1e-6 and z.min() >= BOUNDS[0] and z.max() <= BOUNDS[1]
    with torch.no_grad():
        losses = [torch.nn.functional.cross_entropy(model(z), labels).item() for z in (start, adversarial)]
    assert losses[1] > losses[0]
    assert all(p.grad is None for p in model.parameters())


def test_the_gpu_path_static_step_trains_adversarially_exactly_as_the_plain_loop(mnist_dir):
    # PGD-2 training with the epsilon ramp, Adam under the one-cycle schedule: the step function a GPU
    # captures as a CUDA graph, run eagerly here, against the plain loop (the partial last batch included)
    train, test = load_model_inputs(mnist_dir / "data/mnist", torch.device("cpu"))
    assert len(train[1]) % 32
    schedule = Schedule(epochs=2, batch_size=32, eval_batch_size=100)
    steps_per_epoch = -(-len(train[1]) // 32)
    runs = []
    for static_steps in (False, True):
        model = seeded_cnn(CnnSpec(channels=[4, 8], kernel_size=5, hidden=16), 0, torch.device("cpu"))
        optimizer = graph_safe_adam(model.parameters(), 0.01, torch.device("cpu"))
        one_cycle = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=0.01, total_steps=2 * steps_per_epoch,
                                                        anneal_strategy="linear", cycle_momentum=False)
        loss = defences.adversarial_loss(epsilon=0.3, step_size=0.1, steps=2, share=0.5, bounds=BOUNDS,
                                         ramp_steps=steps_per_epoch, seed=3)
        history = list(train_epochs(model, train, test, schedule, optimizer, seed=0, batch_loss=loss,
                                    lr_schedule=one_cycle, static_steps=static_steps))
        runs.append((history, model.state_dict()))
    (plain, plain_weights), (static, static_weights) = runs
    assert static == plain and plain[-1]["train_loss"] < plain[0]["train_loss"]
    assert all(torch.equal(a, b) for a, b in zip(static_weights.values(), plain_weights.values()))


def test_an_attack_with_a_margin_stops_only_when_the_wrong_logit_leads_by_it(model_and_batch):
    model, x, labels = model_and_batch
    plain = sign_gradient_attack(model, x, labels, step_size=0.01, max_steps=300, bounds=BOUNDS)
    adversarial, fooled, steps = sign_gradient_attack(model, x, labels, step_size=0.01, max_steps=300,
                                                      bounds=BOUNDS, margin=3.0)
    with torch.no_grad():
        logits = model(adversarial[fooled])
    true = logits.gather(1, labels[fooled][:, None]).squeeze(1)
    others = logits.scatter(1, labels[fooled][:, None], float("-inf")).amax(1)
    assert fooled.any() and (others - true >= 3.0).all()
    both = fooled & plain[1]
    assert (steps[both] >= plain[2][both]).all() and (steps[both] > plain[2][both]).any()


def test_the_guard_stops_on_a_collapse_and_puts_the_best_weights_back(monkeypatch, model_and_batch):
    model, x, labels = model_and_batch
    before = model[1].weight.clone()
    accuracies = iter([0.5, 0.7, 0.6, 0.3])  # the held-out PGD accuracy after epochs 1..4: 0.3 < 0.7 - 0.2

    def scripted_pgd(*args, **kwargs):
        fooled = torch.arange(100) >= round(100 * next(accuracies))
        return None, fooled, None

    monkeypatch.setattr(defences, "pgd", scripted_pgd)
    guard = defences.CollapseGuard(x, labels, epsilon=0.6, steps=2, max_drop=0.2, bounds=BOUNDS, batch_size=10)
    seen, best = [], None
    for epoch in range(1, 5):
        with torch.no_grad():
            model[1].weight.add_(1.0)  # every epoch changes the weights
        seen.append(guard.check(model, epoch))
        if epoch == 2:
            best = model[1].weight.clone()
        assert (guard.collapsed_at is not None) == (epoch == 4)
    assert seen == [0.5, 0.7, 0.6, 0.3]
    assert guard.summary() == {"collapsed_at_epoch": 4, "kept_epoch": 2}
    assert torch.equal(model[1].weight, best) and not torch.equal(best, before + 4)
    with torch.no_grad():
        model[1].weight.copy_(before)  # the module-scoped model as it was


def test_a_drop_within_max_drop_is_no_collapse(monkeypatch, model_and_batch):
    model, x, labels = model_and_batch
    accuracies = iter([0.7, 0.55, 0.6])
    monkeypatch.setattr(defences, "pgd", lambda *a, **k: (None, torch.arange(100) >= round(100 * next(accuracies)), None))
    guard = defences.CollapseGuard(x, labels, epsilon=0.6, steps=2, max_drop=0.2, bounds=BOUNDS, batch_size=10)
    for epoch in range(1, 4):
        guard.check(model, epoch)
    assert guard.summary() == {"collapsed_at_epoch": None, "kept_epoch": None}


DEFENCE_CHANGES = {
    "model.channels": [4, 8], "model.hidden": 16, "train.epochs": 1, "attack.max_steps": 60, "attack.step_size": 0.05,
    "retrain.share": 0.2, "adversarial_training.epochs": 2, "adversarial_training.epsilon_ramp_epochs": 1,
    "adversarial_training.guard.images": 50, "trades.epochs": 2, "trades.epsilon_ramp_epochs": 1, "trades.steps": 3,
    "trades.guard.images": 50,
    "robustness.models": {"model1": {"n_images": 40}, "retrain": {"n_images": 40}, "adversarial_training": {"n_images": 60},
                          "trades": {"n_images": 60}},
    "robustness.epsilon": [0.0, 0.05, 0.15, 0.3], "robustness.headline": [0.05, 0.3],
    "robustness.autoattack.epsilon": [0.15], "robustness.autoattack.steps": 5, "robustness.autoattack.queries": 40,
    "robustness.checks.epsilon": 0.15, "robustness.checks.steps": [2, 5],
    "robustness.pgd.steps": 5, "robustness.pgd.step_size": 0.05, "robustness.pgd.restarts": 3,
    "robustness.transfer.margins": [0.0, 1.0], "robustness.transfer.n_images": 40, "robustness.batch_size": 16,
}


@pytest.fixture(scope="module")
def defended(tmp_path_factory):
    """model1, the three defended models and the robustness stage's outputs, on a synthetic MNIST."""
    root = make_mnist_dir(tmp_path_factory.mktemp("defended"))
    write_params(root, params_with(**DEFENCE_CHANGES))
    run_main("train", "model1", "--data", "data/mnist", "--model", "models/model1.pt", cwd=root)
    run_main("retrain", "--data", "data/mnist", "--source", "models/model1.pt", "--model", "models/retrain.pt", cwd=root)
    run_main("adversarial_training", "--data", "data/mnist", "--model", "models/adversarial_training.pt", cwd=root)
    run_main("trades", "--data", "data/mnist", "--model", "models/trades.pt", cwd=root)
    for name in ("model1", "retrain", "adversarial_training", "trades"):
        run_main("robustness", name, "--data", "data/mnist", "--model", f"models/{name}.pt",
                 "--source", "models/model1.pt", cwd=root)
    run_main("robustness_transfer", "--data", "data/mnist", "--models", "models", cwd=root)
    return root


def test_the_defences_write_their_models_and_metrics(defended):
    retrain = json.loads((defended / "metrics/train/retrain.json").read_text())
    assert 0 < retrain["adversarial_images"] <= 120  # at most the 20 % of 600 training images
    trained = json.loads((defended / "metrics/train/adversarial_training.json").read_text())
    history = pd.read_csv(defended / "plots/train/adversarial_training.csv")
    assert len(history) == 2 and history["guard_pgd_acc"].between(0, 1).all()
    assert trained["guard_pgd_acc"] == history["guard_pgd_acc"].iloc[-1]
    assert trained["kept_epoch"] is None  # no collapse: the last epoch's weights


def test_each_trained_model_has_a_card_beside_its_checkpoint(defended):
    cards = {name: json.loads((defended / f"models/{name}.json").read_text())
             for name in ("model1", "retrain", "adversarial_training", "trades")}
    retrained = json.loads((defended / "metrics/train/retrain.json").read_text())["adversarial_images"]
    assert cards == {
        "model1": {"role": "baseline", "label": "model 1"},
        "retrain": {"role": "defence", "label": "defence 1 (retrained)", "claim": "defence_retrain",
                    "summary": f"Retrained on {retrained:,} adversarial images of model 1 added to the training set."},
        "adversarial_training": {"role": "defence", "label": "defence 2 (adversarial training)",
                                 "claim": "defence_adversarial_loss", "summary": "Trained on adversarial examples "
                                 "made on the fly (the loss on them, the compound loss)."},
        "trades": {"role": "defence", "label": "defence 3 (TRADES)",
                   "summary": "Trained on TRADES' loss: the clean image's cross-entropy plus 6 times the divergence "
                              "from the image within ε = 0.3 that maximises it (3 steps)."}}
    metrics = json.loads((defended / "metrics/train/trades.json").read_text())
    history = pd.read_csv(defended / "plots/train/trades.csv")
    assert len(history) == 2 and history["guard_pgd_acc"].between(0, 1).all()
    assert metrics["final_test_acc"] == history["test_acc"].iloc[-1] and "role" not in metrics


def test_the_trades_loss_is_the_clean_cross_entropy_plus_beta_times_the_divergence(model_and_batch):
    # beta = 0 leaves the clean cross-entropy; the divergence term is beta times one non-negative value,
    # measured at the image TPGD found, which stays in the ball and the pixel range
    from stages.trades import trades_loss

    model, images, labels = model_and_batch
    clean_ce = F.cross_entropy(model(images), labels)
    terms = []
    for beta in (0.0, 1.0, 6.0):
        torch.manual_seed(0)
        loss = trades_loss(epsilon=0.1, step_size=0.025, steps=5, beta=beta, bounds=BOUNDS, ramp_steps=0)
        value, attacked = loss(model, images, labels, 0)
        terms.append(value.item())
    assert terms[0] == pytest.approx(clean_ce.item(), rel=1e-5)
    divergence = terms[1] - terms[0]
    assert divergence > 0 and terms[2] - terms[0] == pytest.approx(6 * divergence, rel=1e-4)
    assert attacked.shape == (len(labels), 10)


def test_the_trades_ramp_starts_the_divergence_at_zero(model_and_batch):
    # at the first of many ramp steps the budget is tiny: the adversarial image is almost the clean one
    from stages.trades import trades_loss

    model, images, labels = model_and_batch
    torch.manual_seed(0)
    loss = trades_loss(epsilon=0.3, step_size=0.075, steps=3, beta=6.0, bounds=BOUNDS, ramp_steps=10_000)
    value, _ = loss(model, images, labels, 0)
    assert value.item() == pytest.approx(F.cross_entropy(model(images), labels).item(), abs=1e-3)


def test_robust_accuracy_never_rises_with_epsilon_and_starts_at_the_clean_accuracy(defended):
    for name, count in (("model1", 40), ("retrain", 40), ("adversarial_training", 60)):
        headline = json.loads((defended / f"metrics/robustness/{name}.json").read_text())
        table = pd.read_csv(defended / f"plots/robustness/{name}.csv")
        assert table["epsilon"].tolist() == [0.0, 0.05, 0.15, 0.3] and set(table["images"]) == {count}
        for attack in ("fgsm", "pgd", "minimal", "worst"):
            values = table[attack].tolist()
            assert values[0] == pytest.approx(headline["clean"], abs=1e-8), (name, attack)  # the CSV: 9 digits
            assert all(b <= a for a, b in zip(values, values[1:])), (name, attack, values)
        # the worst case per image is at most every attack alone, and what the metrics report
        for attack in ("fgsm", "pgd", "minimal"):
            assert (table["worst"] <= table[attack]).all(), (name, attack)
        assert headline == pytest.approx({"clean": table["worst"][0], "robust_0.05": table["worst"][1],
                                          "robust_0.3": table["worst"][3]}, abs=1e-8)
        # AutoAttack ran at 0.15 only, on the images every other attack failed on
        ran = table["only_autoattack"].notna().tolist()
        assert ran == [False, False, True, False]
        # what AutoAttack alone fooled comes off the best the other attacks left
        best_other = min(table[a][2] for a in ("fgsm", "pgd", "minimal"))
        assert table["worst"][2] <= best_other - table["only_autoattack"][2] / count + 1e-9
        assert table["pgd"][3] <= table["fgsm"][3] + 0.15  # PGD is the stronger attack
        # each worst case carries its 95 % Wilson interval, which holds it
        assert (table["worst_low"] <= table["worst"]).all() and (table["worst"] <= table["worst_high"]).all()
    transfer = pd.read_csv(defended / "plots/robustness/transfer.csv")
    assert set(transfer["source"]) == {"model1"}
    pgd_rows = transfer[transfer["setting"] == "pgd"]
    model1 = json.loads((defended / "metrics/robustness/model1.json").read_text())
    assert pgd_rows["model1"].iloc[0] == pytest.approx(model1["clean"], abs=1e-8)  # the same 40 images: the first of the permutation
    assert transfer[transfer["setting"] == "margin"]["model1"].tolist() == [0.0, 0.0]  # fooled on the source itself


def test_the_evaluation_record_states_the_threat_model_the_images_and_every_interval(defended):
    from stages.lib.stats import wilson

    record = json.loads((defended / "plots/robustness/adversarial_training.json").read_text())
    table = pd.read_csv(defended / "plots/robustness/adversarial_training.csv")
    assert record["threat_model"]["norm"] == "Linf" and record["threat_model"]["epsilon"] == [0.0, 0.05, 0.15, 0.3]
    assert record["threat_model"]["epsilon_units"].startswith("[0, 1]")
    assert record["images"]["count"] == 60 and record["images"]["test_set_size"] == 200 and record["images"]["seed"] == 0
    assert record["attacks"]["pgd"] == {**record["attacks"]["pgd"], "steps": 5, "step_size": 0.05, "restarts": 3}
    assert record["attacks"]["autoattack"]["epsilon"] == [0.15]
    assert record["attacks"]["minimal"]["step_size_model_units"] == 0.05
    assert not record["attacks"]["autoattack"]["reference_settings"]  # 5 steps, 40 queries: not the reference's
    assert record["attacks"]["autoattack"]["label"].startswith("AutoAttack, reduced")
    assert record["attacks"]["apgd_t"]["settings"]["target_classes"] == 9
    assert set(record["versions"]) == {"python", "torch", "torchattacks"}
    worst = record["worst_case"]["0.3"]
    assert worst["accuracy"] == pytest.approx(table["worst"][3], abs=1e-8) and worst["images"] == 60
    assert worst["correct"] == round(60 * worst["accuracy"])
    assert (worst["low"], worst["high"]) == pytest.approx(wilson(worst["correct"], 60))
    assert record["clean"]["accuracy"] == pytest.approx(table["worst"][0], abs=1e-8)


def test_a_change_to_one_models_evaluation_leaves_the_others_alone(defended):
    """Each model's evaluation is its own stage: robustness@<name> reads robustness.models.<name> alone."""
    from stages import robustness

    params = params_with(**{**DEFENCE_CHANGES, "robustness.models.model1.n_images": 20})
    (defended / "elsewhere").mkdir(exist_ok=True)
    path = write_params(defended / "elsewhere", params)
    assert robustness.read_params(path, "adversarial_training").n_images == 60
    assert robustness.read_params(path, "model1").n_images == 20


@pytest.mark.parametrize("changes, needle", [
    ({"robustness.epsilon": [0.0, 0.3, 0.2]}, "'robustness.epsilon' must increase"),
    ({"robustness.epsilon": [0.0, 2.5]}, "'robustness.epsilon[1]' must be less than or equal to 1"),
    ({"robustness.models.model1.n_images": 0}, "'robustness.models.model1.n_images' must be greater than or equal to 1"),
    ({"robustness.transfer.source": "model9"}, "'robustness.transfer' 'source' must be one of 'robustness.models' "
                                               "(model1, model2, retrain"),
    ({"robustness.autoattack.epsilon": [0.25]}, "'robustness.autoattack' must be budgets of 'robustness.epsilon' "
                                             "(0, 0.1, 0.2, 0.3, 0.4, 0.5); 0.25 is not"),
    ({"robustness.checks.epsilon": 0.35}, "'robustness.checks' must be budgets of 'robustness.epsilon'"),
    ({"robustness.checks.steps": [50, 10]}, "'robustness.checks.steps' must increase, got [50, 10]"),
    ({"robustness.autoattack.queries": 0}, "'robustness.autoattack.queries' must be greater than or equal to 1"),
    ({"adversarial_training.epsilon": 1.2}, "'adversarial_training.epsilon' must be less than or equal to 1"),
    ({"robustness.headline": [0.6, 0.6]}, "'robustness.headline' must not repeat a value"),
    ({"adversarial_training.epsilon_ramp_epochs": 11}, "'adversarial_training.epsilon_ramp_epochs' must be at most "
                                                      "the section's 'epochs' (10), got 11"),
    ({"trades.epsilon_ramp_epochs": 11}, "'trades.epsilon_ramp_epochs' must be at most the section's 'epochs' (10)"),
    ({"trades.beta": 0}, "'trades.beta' must be greater than 0"),
    ({"trades.steps": 0}, "'trades.steps' must be greater than or equal to 1"),
    ({"trades.guard.images": 0}, "'trades.guard.images' must be greater than or equal to 1"),
    ({"adversarial_training.method": "trades"}, "'adversarial_training.method' must be 'fgsm' or 'pgd'"),
    ({"adversarial_training.adversarial_share": 1.5}, "'adversarial_training.adversarial_share' must be less than"),
    ({"retrain.share": 0}, "'retrain.share' must be greater than 0"),
    ({"transfer.models": []}, "'transfer.models' must have at least 1 item"),
    ({"attack.model": "model2"}, "'transfer.models' names 'model2', the attacked model itself"),
])
def test_the_defence_params_are_validated_with_one_line_naming_the_key(tmp_path, changes, needle):
    from stages.lib.errors import StageError

    with pytest.raises(StageError) as error:
        check_params_with(tmp_path, **changes)
    assert needle in str(error.value) and "\n" not in str(error.value)


def test_the_per_image_record_gives_every_accuracy_and_names_the_attacks(defended):
    """plots/robustness/images/<model>.csv: one row per evaluated image; per budget, the attacks that found
    an example within it. The images with no attack named are exactly the worst case's robust ones."""
    for name, count in (("model1", 40), ("retrain", 40), ("adversarial_training", 60)):
        images = pd.read_csv(defended / f"plots/robustness/images/{name}.csv", keep_default_na=False, dtype=str)
        table = pd.read_csv(defended / f"plots/robustness/{name}.csv")
        record = json.loads((defended / f"plots/robustness/{name}.json").read_text())
        assert list(images.columns) == ["test_index", "label", "0", "0.05", "0.15", "0.3"] and len(images) == count
        assert images["test_index"].astype(int).between(0, 199).all() and images["test_index"].is_unique
        for column, worst in zip(images.columns[2:], table["worst"]):
            assert (images[column] == "").mean() == pytest.approx(worst, abs=1e-8), (name, column)
            named = {a for cell in images[column] for a in cell.split()}
            assert named <= set(record["attacks"]) - {"autoattack"}, named
        # per attack, the share of images it is named for at a budget is 1 minus its own curve
        for attack in ("fgsm", "pgd", "minimal"):
            for column, value in zip(images.columns[2:], table[attack]):
                assert images[column].str.split().apply(lambda a: attack in a).mean() == pytest.approx(1 - value, abs=1e-8)
        assert ("transfer" in record["attacks"]) == (name != "model1")  # model1 is the transfer's source


def test_the_gradient_masking_checks_carry_their_numbers_and_a_verdict(defended):
    record = json.loads((defended / "plots/robustness/adversarial_training.json").read_text())
    checks = {c["check"]: c for c in record["checks"]}
    assert set(checks) == {"iterative_vs_single_step", "more_steps", "large_budget", "gradient_free", "transfer"}
    assert all(c["verdict"] in ("pass", "warning") for c in checks.values())
    assert [r["epsilon"] for r in checks["iterative_vs_single_step"]["numbers"]] == [0.05, 0.15, 0.3]
    steps = checks["more_steps"]["numbers"]
    assert [s["steps"] for s in steps] == [2, 5] and checks["more_steps"]["epsilon"] == 0.15
    assert steps[1]["minus_fewer_steps"]["difference"] == pytest.approx(steps[1]["accuracy"] - steps[0]["accuracy"])
    large = checks["large_budget"]
    assert large["epsilon"] == 0.3 and large["verdict"] == ("pass" if large["numbers"]["worst"] <= 0.1 else "warning")
    square = checks["gradient_free"]["numbers"]
    assert square["drop"] == pytest.approx(square["square_only"] / 60)
    assert checks["transfer"]["source"] == "model1"


def test_a_check_warns_when_its_numbers_say_so():
    """masking_checks on planted per-image flags: FGSM stronger than PGD, and Square alone fooling 3 %."""
    from stages import robustness
    from stages.lib.robustness import AutoAttack, Checks, Pgd

    n, rows = 200, 3
    none = torch.zeros(rows, n, dtype=torch.bool)
    fgsm, square = none.clone(), none.clone()
    fgsm[1:, :40] = True  # FGSM fools 20 % at 0.1 and 0.3, PGD nothing: a sign of masked gradients
    square[2, 40:46] = True
    fooled = {"fgsm": fgsm, "pgd": none, "minimal": none, "pgd2": none, "pgd5": none,
              "apgd_ce": none, "apgd_t": none, "fab_t": none, "square": square}
    run = SimpleNamespace(epsilon=[0.0, 0.1, 0.3], checks=Checks(epsilon=0.3, steps=[2, 5]),
                          autoattack=AutoAttack(epsilon=[0.3], steps=100, queries=5000), source="model1",
                          pgd=Pgd(steps=5, step_size=0.1, restarts=1))
    checks = {c["check"]: c for c in robustness.masking_checks(fooled, run, {2: "pgd2", 5: "pgd5"})}
    assert checks["iterative_vs_single_step"]["verdict"] == "warning"
    assert checks["gradient_free"]["verdict"] == "warning" and checks["gradient_free"]["numbers"]["square_only"] == 6
    assert checks["more_steps"]["verdict"] == "pass"
    assert checks["large_budget"]["verdict"] == "warning"  # nothing fooled at the largest budget
    fooled["pgd"] = fgsm
    fooled["pgd5"][2] = True
    checks = {c["check"]: c for c in robustness.masking_checks(fooled, run, {2: "pgd2", 5: "pgd5"})}
    assert checks["iterative_vs_single_step"]["verdict"] == "pass" and checks["more_steps"]["verdict"] == "pass"
