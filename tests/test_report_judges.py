"""The report's judges on numbers alone (no files), and the models as data: a defence that only its training
metrics and robustness record name appears in section 5 and the findings box, or is 'not measured'."""
import json
import re
import shutil

import pandas as pd

from stages.lib.report import defences, explorer, problem_1, problem_2, problem_4
from stages.lib.report.words import number_word
from stages.lib.stats import interval
from tests.conftest import run_main
from tests.robustness_layout import CURVES, IMAGES, outputs_copy
from tests.test_report import visible_text


def observations(steps_l2=1542, steps_ce=19):
    grid = {"grid_points": 1681, "ce_gt_l2_fraction": 1.0, "max_analytic_autograd_diff": 1e-16, "flat_threshold": 1e-3,
            "plateau_fraction_ce_grad_w": 0.0, "x": 1.0}
    return {"seed_target": {**grid, "target": 0.5, "mean_abs_ce_grad_w": 0.38, "mean_abs_l2_grad_w": 0.04,
                            "plateau_fraction_l2_grad_w": 0.11},
            "class_label": {**grid, "target": 1.0, "mean_abs_ce_grad_w": 0.5, "mean_abs_l2_grad_w": 0.08,
                            "plateau_fraction_l2_grad_w": 0.03, "wrong_end_abs_l2_grad_w": 9e-5,
                            "wrong_end_abs_ce_grad_w": 0.99995},
            "descent": {"steps_l2": float(steps_l2), "steps_ce": float(steps_ce)}}


def test_problem_1_follows_the_step_counts():
    assert problem_1.judge(observations())["verdict"] == "holds"
    slower = problem_1.judge(observations(steps_l2=19, steps_ce=1542))  # cross-entropy the slower
    assert slower["claims"]["faster_learning"] == "partly" and slower["verdict"] == "partly"
    never = problem_1.judge(observations(steps_ce=float("nan")))
    assert not never["learned"] and never["claims"]["loss_values"] == "holds"


def test_problem_2_needs_the_epoch_and_most_initialisations():
    history = pd.DataFrame({"epoch": [0, 1, 2], "nonlinear_loss": [0.7, 0.5, 0.2], "linear_loss": [0.7, 0.69, 0.69]})
    linear = {"seeds_solved_fraction": 0.0, "max_final_accuracy_over_seeds": 0.75, "final_loss": 0.6931}
    nonlinear = {"activation": "tanh", "accuracy": 1.0, "seeds": 100, "first_solved_epoch": 1187.0}
    few = problem_2.judge({**nonlinear, "seeds_solved_fraction": 0.14}, linear, history, 1899)
    assert few["claims"] == {"not_separable": "holds", "solved": "partly", "needs_non_linearity": "holds"}
    late = problem_2.judge({**nonlinear, "seeds_solved_fraction": 0.9, "first_solved_epoch": 1900.0}, linear, history,
                           1899)
    assert late["claims"]["solved"] == "differs" and late["verdict"] == "partly"


def test_problem_4_compares_the_transfer_with_the_homework():
    images = pd.DataFrame({"index": range(100), "label": 1, "target": 2, "steps": 5, "predicted": 2, "linf": 0.1,
                           "gallery_row": -1, "success": True})
    attacks = {kind: {"images": images, "steps_median": 5.0} for kind in problem_4.KINDS}
    seed = {"attack": {kind: {"gallery": {}} for kind in problem_4.KINDS},
            "transfer": {kind: {"images": 7300, "accuracy": 0.81} for kind in problem_4.KINDS}}
    sets = pd.DataFrame({"images": [100, 100], "a_accuracy": [0.0, 0.0], "b_accuracy": [0.97, 0.9]},
                        index=["untargeted", "targeted"])
    v = problem_4.judge(attacks, sets, "a", "b", seed)
    assert v["versus"] == {"untargeted": "higher", "targeted": "higher"} and v["higher"]
    assert v["claims"]["transfer"] == "partly" and v["claims"]["not_universal"] == "holds"
    none = problem_4.judge(attacks, sets.assign(images=0), "a", "b", seed)
    assert none["claims"]["transfer"] == none["claims"]["not_universal"] == "differs"


def test_the_explorer_finds_where_half_the_digits_fool_each_model():
    images = [{"digit": d, "source": "a", "epsilon": e, "predicted": [d if e < limit else 9, d]}
              for d, limit in ((0, 0.1), (1, 0.2), (2, 0.3)) for e in (0.0, 0.1, 0.2, 0.3)]
    v = explorer.judge({"digits": [{"index": d, "label": d} for d in range(3)], "models": ["a", "b"],
                        "sources": ["a"], "images": images})
    assert v["halves"] == {"a": 0.2, "b": None}  # the median digit falls at 0.2; b never answers wrong


def evaluated_model(worst, n=200, checks=()):
    """A robustness record of a model from its worst-case accuracies {budget: accuracy}, the same attack for
    every image (the first images fooled at each budget)."""
    budgets = list(worst)
    curve = pd.DataFrame({"epsilon": [float(e) for e in budgets], "images": n, "fgsm": list(worst.values()),
                          "pgd": list(worst.values()), "worst": list(worst.values()), "only_autoattack": 0.0})
    per_image = pd.DataFrame({"test_index": [str(i) for i in range(n)], "label": "0",
                              **{e: ["pgd" if i < round((1 - a) * n) else "" for i in range(n)]
                                 for e, a in worst.items()}})
    about = {"attacks": {"fgsm": {"label": "FGSM", "steps": 1}, "pgd": {"label": "PGD-20", "steps": 20}},
             "worst_case": {e: interval(a, n) for e, a in worst.items()}, "clean": interval(0.99, n),
             "checks": [{"check": c, "verdict": "warning"} for c in checks]}
    return {"curve": curve, "about": about, "images": per_image}


def test_section_5_judges_each_defence_by_the_claim_it_records_and_measures_the_others():
    evaluated = {"base": evaluated_model({"0.1": 0.5, "0.3": 0.0}),
                 "retrained": evaluated_model({"0.1": 0.7, "0.3": 0.0}),
                 "other": evaluated_model({"0.1": 0.9, "0.3": 0.6}, checks=("gradient_free",))}
    trained = [{"name": "retrained", "label": "defence 1 (retrained)", "claim": "defence_retrain", "summary": "…"},
               {"name": "other", "label": "defence 9 (other)"}, {"name": "later", "label": "defence 10 (later)"}]
    section_4 = {"sets": pd.DataFrame({"images": [0]}, index=["untargeted"]), "predictions": pd.DataFrame(),
                 "source": "base", "receiver": "base"}
    v = defences.judge(trained, {"name": "base", "label": "model 1"}, evaluated, pd.DataFrame(), {}, section_4,
                       {"base": "model 1", **{t["name"]: t["label"] for t in trained}})
    retrained, other, later = v["defences"]
    assert retrained["verdict"] == "partly" and retrained["gains"] == ["0.1"]  # 140 against 100 of 200 at 0.1
    assert other["verdict"] == "measured" and other["claim"] is None and len(other["flagged"]) == 1
    assert other["compared"]["0.3"]["words"] == "higher"
    assert later["verdict"] == "unmeasured" and later["left_out"] == ["defence 10"]
    assert v["curve_attacks"] == ["fgsm", "pgd"] and v["charted"] == ["pgd", "fgsm"]  # most steps first
    rows = defences.findings(v, {"defence_retrain": {"section": "4.3"}})
    assert [(r.part, r.verdict) for r in rows] == [("Defence 1 (4.3)", "partly"), ("Defence 9", "measured"),
                                                   ("Defence 10", "unmeasured")]
    unmeasured = defences.judge(trained[:1], {"name": "base", "label": "model 1"}, {"retrained": evaluated["retrained"]},
                                pd.DataFrame(), {}, section_4, {"base": "model 1", "retrained": "defence 1"})
    assert unmeasured["defences"][0]["left_out"] == ["defence 1", "model 1"]  # the claim needs the baseline


def with_defence(root, name, label):
    """A defence in root that only its training outputs name: its metrics, its card and its curves (and its
    robustness record, where written)."""
    (root / f"metrics/train/{name}.json").write_text(json.dumps({"final_test_acc": 0.99}))
    (root / f"models/{name}.json").write_text(json.dumps(
        {"role": "defence", "label": label, "summary": f"Trained as {label}."}))
    shutil.copy(root / "plots/train/adversarial_training.csv", root / f"plots/train/{name}.csv")
    return root


def test_a_new_defence_appears_in_section_5_and_the_findings_with_no_code_for_it(tmp_path):
    curves = {**CURVES, "fake": CURVES["adversarial_training"]}
    root = with_defence(outputs_copy(tmp_path, curves, images={**IMAGES, "fake": 3500}), "fake", "defence 9 (fake)")
    run_main("report", cwd=root)
    page = (root / "report/index.html").read_text()
    findings, *sections = re.split(r"<h2>(?=\d\. )", page)
    row = re.search(r"<tr><td>Defence 9</td><td>(.*?)</td><td>(.*?)</td><td><b class=\"(\w+)\">", findings)
    assert row and row.group(3) == "measured" and row.group(2).startswith("worst case at ε = 0.3: 91.2 % of 3,500")
    text = " ".join(visible_text(sections[4]).split())
    cards = [json.loads(card.read_text()) for card in (root / "models").glob("*.json")]
    beyond = sum(1 for card in cards if card["role"] == "defence" and "claim" not in card)  # the fake among them
    assert beyond >= 1 and text.startswith(f"5. The homework's two defences and {number_word(beyond)} more, measured")
    assert "Defence 9 (fake): not one of the homework's proposals." in text
    assert "Trained as defence 9 (fake). Clean: " in text and "defence 9 against model 1: " in text
    assert text.count("defence 9 (fake)") >= 5  # threat model, checks, robust accuracy and transfer tables
    assert '"model": "defence 9 (fake)"' in sections[4]  # the chart


def test_a_defence_the_robustness_stages_left_out_is_not_measured(tmp_path):
    root = with_defence(outputs_copy(tmp_path), "fake", "defence 9 (fake)")
    run_main("report", cwd=root)
    findings = re.split(r"<h2>(?=\d\. )", (root / "report/index.html").read_text())[0]
    assert re.search(r"<tr><td>Defence 9</td><td>[^<]*</td><td>not measured: robustness.models leaves out "
                     r"defence 9</td><td><b class=\"unmeasured\">", findings)


def test_a_defence_beyond_the_homework_is_set_beside_its_defences_and_its_published_figure():
    evaluated = {"base": evaluated_model({"0.1": 0.5, "0.3": 0.0}),
                 "trained": evaluated_model({"0.1": 0.9, "0.3": 0.6}),
                 "other": evaluated_model({"0.1": 0.9, "0.3": 0.7})}
    trained = [{"name": "trained", "label": "defence 2 (trained)", "claim": "defence_adversarial_loss", "summary": "…"},
               {"name": "other", "label": "defence 3 (other)"}]
    anchors = {"epsilon": 0.3, "images": 10000, "anchors": [
        {"defence": "Theirs", "attack": "AutoAttack", "family": "autoattack", "accuracy": 0.9, "model": "other"},
        {"defence": "Madry", "attack": "PGD", "family": "pgd", "accuracy": 0.5, "model": None}]}
    section_4 = {"sets": pd.DataFrame({"images": [0]}, index=["untargeted"]), "predictions": pd.DataFrame(),
                 "source": "base", "receiver": "base"}
    labels = {"base": "model 1", **{t["name"]: t["label"] for t in trained}}
    v = defences.judge(trained, {"name": "base", "label": "model 1"}, evaluated, pd.DataFrame(), anchors, section_4,
                       labels)
    other = v["defences"][1]
    beside = other["defences_compared"]
    assert [o["label"] for o in beside] == ["defence 2 (trained)"]
    # the first 80 of 200 images fall at 0.3 for `trained`, the first 60 for `other`: 20 kept by `other` alone
    assert beside[0]["compared"]["0.3"]["only_first"] == 20 and beside[0]["compared"]["0.3"]["only_second"] == 0
    assert beside[0]["compared"]["0.3"]["words"] == "higher"
    assert beside[0]["compared"]["0.1"]["words"] == "no difference detectable at this sample size"
    (published,) = other["literature"]  # its own method's figure only, against our worst case
    assert published["anchor"]["defence"] == "Theirs" and published["ours"]["correct"] == 140
    assert published["difference"]["words"] == "lower"  # 70 % of 200 against 90 % of 10,000
    text = defences.other_evidence(other, v)
    assert "On the same images as defence 2 (trained) (200): ε = 0.1: defence 3 against defence 2" in text
    assert "Theirs under AutoAttack, 90.0 % of 10,000 test images" in text and "our worst case 70.0 %" in text
    (row,) = [r for r in defences.findings(v, {"defence_adversarial_loss": {"section": "4.3"}})
              if r.part == "Defence 3"]
    assert "defence 3 against defence 2: 10.0 points higher" in row.ours
