"""The report and the `dvc plots show` page in headless Chromium: every chart draws its data."""
from stages.lib import html_page
from tests.conftest import assert_every_chart_drew, charts_drawn, make_dvc_project, run_main
from tests.robustness_layout import outputs_copy

REPORT_SIZE_LIMIT = 5_000_000


def test_every_chart_of_the_report_draws_its_data(tmp_path):
    root = outputs_copy(tmp_path / "outputs")
    run_main("report", cwd=root)
    page = root / "report/index.html"
    assert page.stat().st_size < REPORT_SIZE_LIMIT
    charts = assert_every_chart_drew(page, tmp_path)
    assert {c["chart"] for c in charts} == {"#chart-xor-loss", "#chart-models-test-acc", "#chart-sweep",
                                           "#chart-robustness"}


def test_every_chart_of_the_dvc_plots_page_draws_its_data(tmp_path):
    project = make_dvc_project(tmp_path)
    outputs_copy(project.path)
    run_main("report", "--dvc-template", ".dvc/plots/offline.html", cwd=project.path)
    project.dvc("plots", "show", "-o", str(tmp_path / "dvc_plots"))
    charts = assert_every_chart_drew(tmp_path / "dvc_plots/index.html", tmp_path)
    assert {"#robust_accuracy_worst_case", "#loss_gradient_at_class_label", "#sweep_test_accuracy"} <= {
        c["chart"] for c in charts}


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
