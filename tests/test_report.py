"""The self-contained HTML pieces of the report and of the offline `dvc plots` template."""
import base64
import html as htmllib
import io
import json
import re

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from stages.lib import html_page as report
from stages.lib.params import read_yaml
from stages.lib.report.inputs import row_strips
from stages.lib.stats import independent, interval
from tests.conftest import ROOT, assert_clean_failure, assert_no_network_references, run_main, run_stage
from tests.robustness_layout import CURVES, IMAGES, outputs_copy


def test_the_dvc_template_inlines_the_libraries_and_drops_the_cdn_placeholder():
    javascript, versions = report.vega_bundle()
    template = report.dvc_plots_template(javascript, versions)
    assert template.startswith("<!DOCTYPE html>\n<html>\n<head>") and template.endswith("</body>\n</html>\n")
    assert "{plot_divs}" in template and "{scripts}" not in template  # DVC fills the first, skips the CDN tags
    assert "vegaEmbed" in template and f"vega-lite {report.VEGA_LITE_VERSION}" in template
    assert_no_network_references(template)
    assert template.count("</script>") == 1  # the bundle cannot close its own element early


def test_a_figure_is_inlined_smaller_with_a_palette(tmp_path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6, 4))
    ax.contourf([[0, 1, 2], [2, 3, 4], [4, 5, 6]], levels=40, cmap="viridis")
    fig.savefig(tmp_path / "plot.png", dpi=150)
    element = report.figure(Image.open(tmp_path / "plot.png"), "a <plot>")
    encoded = element.split("base64,", 1)[1].split('"', 1)[0]
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert image.mode == "P" and image.size == Image.open(tmp_path / "plot.png").size
    assert len(encoded) * 3 / 4 < (tmp_path / "plot.png").stat().st_size
    assert "a &lt;plot&gt;" in element


def test_tables_escape_and_format_their_cells():
    html = report.table([{"name": "<b>", "value": 0.123456789, "flag": True, "missing": None, "empty": float("nan")}])
    assert "<th>name</th>" in html and "&lt;b&gt;" in html
    assert '<td class="num">0.1235</td>' in html and '<td class="short">yes</td>' in html
    assert html.count("<td>—</td>") == 2


def test_field_names_are_escaped_for_vega_lite():
    assert report.field("epsilon ([0, 1] units)") == "epsilon (\\[0, 1\\] units)"
    assert report.field("a.b") == "a\\.b" and report.field("accuracy") == "accuracy"


def test_a_gallery_is_cut_into_its_rows(tmp_path):
    import torch

    from stages.lib.plotting import adversarial_gallery

    torch.manual_seed(0)
    examples = [{"original": torch.rand(28, 28) * 2 - 1, "adversarial": torch.rand(28, 28) * 2 - 1,
                 "title": f"index {i}: true {i}, predicted {i + 1}"} for i in range(3)]
    adversarial_gallery(examples, tmp_path / "gallery.png")
    whole = Image.open(tmp_path / "gallery.png")
    strips = row_strips(tmp_path / "gallery.png")
    assert len(strips) == 3 and sum(s.height for s in strips) == whole.height
    for strip in strips:  # each row: its title lines on white above its images, blank rows between
        rows = np.asarray(strip.convert("L")).min(axis=1)
        assert rows[0] >= 250 and rows[-1] >= 250 and (rows < 100).sum() > strip.height / 2


def visible_text(page):
    """The page's words: no scripts, no tags, no inlined images."""
    page = re.sub(r"<script.*?</script>", " ", page, flags=re.S)
    page = re.sub(r"<style.*?</style>", " ", page, flags=re.S)
    return htmllib.unescape(re.sub(r"<[^>]+>", " ", page))


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    root = outputs_copy(tmp_path_factory.mktemp("outputs"))
    run_main("report", cwd=root)
    return root, (root / "report/index.html").read_text()


def test_every_claim_of_the_homework_appears_once_in_its_order_after_the_findings(built):
    _, page = built
    text = " ".join(visible_text(page).split())
    claims = read_yaml(ROOT / "reference/seed.yaml")["claims"]
    places = []
    for name, claim in claims.items():
        quoted = f"The homework, {claim['section']}: “{' '.join(claim['text'].split())}”"
        assert text.count(quoted) == 1, name
        places.append(text.index(quoted))
    assert places == sorted(places) and text.index("Findings") < places[0]
    assert text.count("Holds") + text.count("Differs") >= len(claims) + 6  # a verdict per claim, six in the box


def test_each_problem_s_verdict_is_its_claims_and_no_gain_is_read_from_zero_counts(built):
    _, page = built
    findings, *sections = re.split(r"<h2>(?=\d\. )", page)
    box = dict(re.findall(r'<tr><td>((?:Problem|Defence) \d)[^<]*</td><td>.*?</td><td>.*?</td><td><b class="(\w+)">',
                          findings, flags=re.S))
    for n, section in enumerate(sections[:4], 1):
        words = re.findall(r'<b class="(holds|partly|differs)">', section)
        assert box[f"Problem {n}"] == ("holds" if set(words) == {"holds"} else "differs" if set(words) == {"differs"}
                                       else "partly"), (n, words)
    # retrain against model 1 on the same images, both 0 of 1,000 at ε 0.3: no gain there; at 0.1 the paired test
    # (McNemar, Newcombe's interval) finds retrain's 84.0 % higher than model 1's 76.2 %
    text = " ".join(visible_text(sections[4]).split())
    assert box["Defence 1"] == "partly" and "keeps more images than model 1 against fresh attacks at ε = 0.1 (a paired " \
        "test on the same images), but fresh attacks at ε = 0.3 still break 100.0 % of the images." in text
    assert "ε = 0.1: defence 1 against model 1: 7.8 points higher (95 % interval +6.1 to +9.5; McNemar exact p = " in text
    assert "ε = 0.3: defence 1 against model 1: no difference detectable at this sample size, +0.0 points" in text


def test_labels_are_words_and_epsilon_has_one_unit(built):
    _, page = built
    text = visible_text(page)
    assert not re.findall(r"\b[a-z0-9]+_[a-z0-9_]+\b", text)  # no internal key or file stem
    assert ".png" not in text and ".gif" not in text
    for place in (m.start() for m in re.finditer(r"\[-1, 1\]", text)):  # the models' units, always named so
        assert "models" in text[place - 30:place], text[place - 60:place + 20]
    assert "ε is in [0, 1] pixel units throughout" in text


def test_section_5_shows_its_threat_model_and_each_anchor_against_the_interval(built):
    _, page = built
    text = " ".join(visible_text(page).split())
    assert "PGD-50 × 10 (50 steps of 0.01 in [0, 1] units, 10 random restarts)" in text
    assert ("At ε = 0.3: AutoAttack, standard version, the reference's settings: APGD-CE (100 steps), APGD-T (100 steps, "
            "9 target classes), FAB-T (100 steps, 9 target classes), Square (5,000 queries)") in text
    assert "the homework's attack (steps of 0.01 in the models' [-1, 1] units, at most 300), which is unbounded" in text
    worst = interval(CURVES["adversarial_training"]["worst"][3], IMAGES["adversarial_training"])
    pgd = interval(CURVES["adversarial_training"]["pgd"][3], IMAGES["adversarial_training"])
    anchors = read_yaml(ROOT / "reference/anchors.yaml")
    for a in anchors["anchors"]:  # each against our measure of its kind, both samples counted
        ours = pgd if a["family"] == "pgd" else worst
        d = independent(ours["correct"], ours["images"], a["accuracy"], anchors["images"])
        assert (f"{100 * d['difference']:+.1f} ({100 * d['low']:+.1f} to {100 * d['high']:+.1f}): {d['words']}"
                in text), a
    assert f"ε = 0.3: 91.2 % of 3,500 images (95 % Wilson interval {100 * worst['low']:.1f}–" in text
    assert "The gradient-masking checks: all 5 pass" in text
    assert "FGSM alone fooled 3 at ε 0.1" in text  # images PGD kept right and FGSM fooled


def test_a_check_that_warns_changes_the_verdict_on_defence_2(tmp_path):
    root = outputs_copy(tmp_path, warnings={"adversarial_training": ("gradient_free",)})
    run_main("report", cwd=root)
    text = " ".join(visible_text((root / "report/index.html").read_text()).split())
    assert "The gradient-masking checks: 1 of 5 warn (the gradient-free Square attack found examples every" in text
    assert re.search(r"Holds in part ?: it keeps 91.2 % of the images at ε = 0.3, but a check against masked "
                     r"gradients warns \(the gradient-free Square attack", text)
    assert "warning: the gradient-free Square attack found examples every gradient attack missed: the gradients" in text
    assert "Square fooled 30 of 3,500 images every other attack missed (0.86 points" in text


def test_the_verdicts_follow_the_numbers(tmp_path):
    curves = {**CURVES, "adversarial_training": {**CURVES["adversarial_training"],
                                                 "worst": (0.986, 0.9, 0.5, 0.3, 0.0)}}
    root = outputs_copy(tmp_path, curves)
    observations = pd.read_csv(root / "plots/loss_surfaces/observations.csv")
    steps = observations["observation"].isin(["steps_l2", "steps_ce"]) & (observations["setting"] == "descent")
    observations.loc[steps, "value"] = observations.loc[steps, "value"].values[::-1]  # L2 first, CE last
    observations.to_csv(root / "plots/loss_surfaces/observations.csv", index=False)
    run_main("report", cwd=root)
    text = " ".join(visible_text((root / "report/index.html").read_text()).split())
    assert re.search(r"Holds in part ?: it gains robustness, but keeps less than half the images at the top budget",
                     text)
    anchors = read_yaml(ROOT / "reference/anchors.yaml")["anchors"]  # every worst-case one above 30 %
    assert text.count("points lower; ") + text.count("points lower.") == sum(a["family"] != "pgd" for a in anchors)
    assert "Cross-entropy needs" not in text and not re.search("Holds ?: the larger gradient learns faster", text)
    assert re.search("Holds in part ?: the measured gradients or step counts do not both favour cross-entropy", text)


def drop_pgd_restarts(root):
    path = root / "plots/robustness/model2.json"
    about = json.loads(path.read_text())
    del about["attacks"]["pgd"]["label"]
    path.write_text(json.dumps(about))


@pytest.mark.parametrize("damage, needle", [
    (lambda root: (root / "plots/robustness/retrain.json").unlink(), "plots/robustness/retrain.json: not found"),
    (drop_pgd_restarts, "plots/robustness/model2.json: missing key 'attacks.pgd.label'"),
    (lambda root: (root / "reference/anchors.yaml").write_text(
        (root / "reference/anchors.yaml").read_text().replace("accuracy: 0.8962", "accuracy: 89.62")),
     "reference/anchors.yaml: 'anchors[0].accuracy' must be less than or equal to 1"),
    (lambda root: (root / "reference/seed.yaml").write_text(
        (root / "reference/seed.yaml").read_text().replace("accuracy: 0.81322427", "accuracy: .nan")),
     "reference/seed.yaml: 'transfer' holds a number that is not finite (NaN or infinite)"),
])
def test_a_missing_or_malformed_input_is_one_error_line(tmp_path, damage, needle):
    root = outputs_copy(tmp_path)
    damage(root)
    assert_clean_failure(run_stage("report", cwd=root), needle)


def test_an_attack_that_fooled_no_image_is_a_result_not_a_crash(tmp_path):
    """Attacks that fooled no image (a budget or a step too small) leave no gallery, a median of null steps
    and empty transfer sets: the report says so in words, with the verdicts the numbers give."""
    root = outputs_copy(tmp_path)
    for kind in ("untargeted", "targeted"):
        images = pd.read_csv(root / f"plots/attack_{kind}/images.csv")
        images["success"], images["gallery_row"], images["predicted"] = False, -1, images["label"]
        images.to_csv(root / f"plots/attack_{kind}/images.csv", index=False)
        path = root / f"metrics/attack_{kind}.json"
        path.write_text(json.dumps({**json.loads(path.read_text()), "success_rate": 0.0, "steps_median": None}))
        for figure in ("gallery.png", "grid.png"):
            (root / f"plots/attack_{kind}/figures/{figure}").unlink()
    sets = pd.read_csv(root / "plots/transfer/sets.csv")
    sets["images"] = 0
    for column in [c for c in sets.columns if c.endswith(("_accuracy", "_rate"))]:
        sets[column] = float("nan")
    sets.to_csv(root / "plots/transfer/sets.csv", index=False)
    predictions = pd.read_csv(root / "plots/transfer/predictions.csv")
    for column in [c for c in predictions.columns if c.startswith(("untargeted_", "targeted_"))]:
        predictions[column] = -1
    predictions.to_csv(root / "plots/transfer/predictions.csv", index=False)
    run_main("report", cwd=root)
    text = " ".join(visible_text((root / "report/index.html").read_text()).split())
    assert text.count("fooled none of the") == 2 and "no adversarial image to show" in text
    assert re.search(r"Differs ?: the attack fails on every image", text)
    assert "no adversarial image of model 1 to show model 2" in text


def test_a_defence_left_out_of_the_robustness_evaluation_is_not_measured_not_differs(tmp_path):
    root = outputs_copy(tmp_path, {name: c for name, c in CURVES.items() if name != "retrain"})
    run_main("report", cwd=root)
    findings = re.split(r"<h2>(?=\d\. )", (root / "report/index.html").read_text())[0]
    box = dict(re.findall(r'<tr><td>((?:Problem|Defence) \d)[^<]*</td><td>.*?</td><td>.*?</td><td><b class="(\w+)">',
                          findings, flags=re.S))
    assert box["Defence 1"] == "unmeasured" and box["Defence 2"] != "unmeasured"
    assert "not measured: robustness.models leaves out defence 1 or model 1" in findings
