"""The report and the `dvc plots show` page in headless Chromium: every chart draws its data, and the ε
explorer answers its inputs."""
import html
import json
import re

import pytest
import yaml

from stages.lib import html_page
from tests.conftest import ROOT, assert_every_chart_drew, charts_drawn, make_dvc_project, render_offline, run_main
from tests.robustness_layout import CURVES, outputs_copy

REPORT_SIZE_LIMIT = 5_000_000
EXPLORER_CHECK = ROOT / "tests/explorer_check.js"


@pytest.fixture(scope="module")
def report(tmp_path_factory):
    """The report built from a copy of the committed outputs (section 5's inputs from tests.robustness_layout)."""
    root = outputs_copy(tmp_path_factory.mktemp("outputs"))
    run_main("report", cwd=root)
    return root


def test_every_chart_of_the_report_draws_its_data(report, tmp_path):
    page = report / "report/index.html"
    assert page.stat().st_size < REPORT_SIZE_LIMIT
    charts = assert_every_chart_drew(page, tmp_path)
    assert {c["chart"] for c in charts} == {"#chart-xor-loss", "#chart-models-test-acc", "#chart-sweep",
                                           "#chart-robustness", "#chart-explorer"}


def explorer_states(page, workdir):
    """What the explorer showed at each step tests/explorer_check.js took through its inputs."""
    text = page.read_text()
    end = text.index("</script>") + len("</script>")
    checked = workdir / "explorer-check.html"
    checked.write_text(text[:end] + "<script>" + EXPLORER_CHECK.read_text() + "</script>" + text[end:])
    dom, _ = render_offline(checked, workdir)
    found = re.findall(r'<pre id="explorer-check">(.*?)</pre>', dom, re.S)
    assert found, "the explorer check wrote nothing: the page's scripts did not run"
    states = json.loads(html.unescape(found[-1]))
    assert "error" not in states, states
    return states


def test_the_explorer_shows_the_attack_for_the_chosen_epsilon_digit_and_model(report, tmp_path):
    data = json.loads((report / "plots/explorer/explorer.json").read_text())
    first, second = data["digits"][0], data["digits"][1]
    start, zero, top, digit, other_model = explorer_states(report / "report/index.html", tmp_path)
    # each step moved what it should (the slider 0.1 -> 0 -> 0.3, then the digit, then the model), nothing else
    assert [(s["eps"], s["digit"], s["made_on"]) for s in (start, zero, top, digit, other_model)] == [
        (0.1, first["index"], "model1"), (0, first["index"], "model1"), (0.3, first["index"], "model1"),
        (0.3, second["index"], "model1"), (0.3, second["index"], "adversarial_training")]
    for s in (start, zero, top, digit, other_model):
        row = next(r for r in data["images"] if (r["digit"], r["source"]) == (s["digit"], s["made_on"])
                   and abs(r["epsilon"] - s["eps"]) < 1e-9)
        original = next(d for d in data["digits"] if d["index"] == s["digit"])
        # the three images drawn are this choice's, and drawn: pixels that are not one flat colour
        shown = {i["panel"]: i for i in s["images"]}
        assert {p: i["url"] for p, i in shown.items()} == {"original": original["original"],
                                                           "perturbation": row["perturbation"],
                                                           "adversarial": row["adversarial"]}
        assert shown["original"]["spread"] > 200 and shown["adversarial"]["spread"] > 200
        # the bars say each model's answer on this choice's image, right or wrong against the true label
        assert [a["model"] for a in s["answers"]] == ["model 1", "model 2", "defence 1 (retrained)",
                                                      "defence 2 (adversarial training)"]
        assert [int(a["says"].split()[1]) for a in s["answers"]] == row["predicted"]
        assert [a["answer"] == "right" for a in s["answers"]] == [p == original["label"] for p in row["predicted"]]
    pixels = [{i["panel"]: i["hash"] for i in s["images"]} for s in (start, zero, top, digit, other_model)]
    # the slider changes the adversarial image's pixels and the answers; at 0 it is the original, unperturbed
    at_zero = {i["panel"]: i for i in zero["images"]}
    assert at_zero["adversarial"]["url"] == at_zero["original"]["url"] and at_zero["perturbation"]["spread"] == 0
    assert pixels[2]["adversarial"] != pixels[1]["adversarial"] and pixels[2]["original"] == pixels[1]["original"]
    assert [a["says"] for a in top["answers"]] != [a["says"] for a in zero["answers"]]
    assert top["answers"][0]["answer"] == "wrong" and zero["answers"][0]["answer"] == "right"  # model 1 flips
    # another digit: another original; another model to attack: another adversarial image of the same digit
    assert pixels[3]["original"] != pixels[2]["original"]
    assert pixels[4]["adversarial"] != pixels[3]["adversarial"] and pixels[4]["original"] == pixels[3]["original"]


def test_every_chart_of_the_dvc_plots_page_draws_its_data(tmp_path):
    project = make_dvc_project(tmp_path)
    outputs_copy(project.path)
    params = yaml.safe_load((project.path / "params.yaml").read_text())  # the models the copy has records of
    params["robustness"]["models"] = {name: params["robustness"]["models"][name] for name in CURVES}
    (project.path / "params.yaml").write_text(yaml.safe_dump(params, sort_keys=False))
    run_main("dvc_plots_template", ".dvc/plots/offline.html", cwd=project.path)
    project.dvc("plots", "show", "-o", str(tmp_path / "dvc_plots"))
    charts = {c["chart"] for c in assert_every_chart_drew(tmp_path / "dvc_plots/index.html", tmp_path)}
    assert {"#loss_gradient_at_class_label", "#sweep_test_accuracy"} <= charts
    for name in CURVES:  # each model's robustness curve and training curves, from the stage and the folder
        assert any("robustness" in c and name in c for c in charts) and any("train" in c and name in c for c in charts)


def test_the_check_fails_on_a_chart_whose_field_name_vega_lite_reads_as_a_path(tmp_path):
    """`[0, 1]` in a field name is an index into the datum to Vega-Lite: every x undefined, no line. The
    chart helper escapes it."""
    rows = [{"epsilon ([0, 1] units)": e, "accuracy": a, "model": "model 1"} for e, a in ((0, 0.99), (0.1, 0.76),
                                                                                       (0.3, 0.0))]
    unescaped = html_page.chart("unescaped", {"data": {"values": rows}, "mark": "line", "encoding": {
        "x": {"field": "epsilon ([0, 1] units)", "type": "quantitative"},
        "y": {"field": "accuracy", "type": "quantitative"}}})
    helper = html_page.line_chart("helper", rows, "epsilon ([0, 1] units)", "accuracy", "model", "accuracy")
    page = tmp_path / "page.html"
    page.write_text(html_page.page("charts", unescaped + helper, html_page.inline_script(*html_page.vega_bundle())))
    drew = {c["chart"]: c["items"] for c in charts_drawn(page, tmp_path)[0]}
    assert drew == {"#chart-unescaped": 0, "#chart-helper": 6}  # three points and their line's three vertices
