"""No script in the report: text that a user or a cloned repository controls (params' data.source through
metrics/data.json, the reference files, the committed outputs, a model's label) reaches the page as text,
whether it lands in a text node, an attribute or a chart's data inside a <script>; checked in headless
Chromium. A metrics/train file whose name is no model name, or a table that names a model metrics/train
lacks, is refused with one line."""
import html
import json
import re
import shutil
from html.parser import HTMLParser

import pandas as pd
import yaml

from stages.lib.params import read_yaml
from tests.conftest import assert_clean_failure, charts_drawn, render_offline, run_main, run_stage
from tests.robustness_layout import outputs_copy

TITLE = "Neural-network foundations: results"


def payload(route):
    """Markup that, unescaped, sets the page's title to 'pwned-<route>' as it loads: from an image's error
    handler, and from a script after closing any script it lands in."""
    return (f'{route}"\'><img src=x onerror="document.title=`pwned-{route}`"></script>'
            f"<script>document.title='pwned-{route}'</script>")


SPACELESS = "<svg/onload=document.title='pwned-section'>"  # the sweep's section is cut at its first space


def edit_json(path, change):
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data))


def plant(root):
    """A payload on every route into root's copy of the inputs; {route: the text the page must show}."""
    edit_json(root / "metrics/data.json", lambda d: d.update(source=payload("source")))
    anchors = read_yaml(root / "reference/anchors.yaml")
    anchors["anchors"][0].update(defence=payload("anchor-defence"), attack=payload("anchor-attack"),
                                 source=payload("anchor-source"))
    (root / "reference/anchors.yaml").write_text(yaml.safe_dump(anchors, allow_unicode=True))
    seed = read_yaml(root / "reference/seed.yaml")
    seed["sweep"]["section"] = SPACELESS
    seed["sweep"]["points"].append(['<img src=x onerror="document.title=`pwned-points`">', 0.1])
    (root / "reference/seed.yaml").write_text(yaml.safe_dump(seed, allow_unicode=True))
    for record in (root / "plots/robustness").glob("*.json"):
        def taint(d):
            d.update(interval=payload("interval"), versions={"torch": payload("versions")})
            d["images"]["selection"] = payload("selection")
            d["attacks"]["pgd"]["label"] = payload("attack-label")
        edit_json(record, taint)
    variants = pd.read_csv(root / "plots/xor/variants.csv")
    variants.loc[variants["variant"] == "nonlinear", "activation"] = payload("activation")
    variants.to_csv(root / "plots/xor/variants.csv", index=False)
    edit_json(root / "models/model2.json", lambda d: d.update(label="model 2 " + payload("label")))
    return {route: payload(route) for route in ("source", "anchor-defence", "anchor-attack", "anchor-source",
                                                "interval", "versions", "selection", "attack-label", "activation",
                                                "label")} | {"section": SPACELESS, "points": "pwned-points"}


def handlers(dom):
    """The event-handler attributes (on…) of every element of a page."""
    found = []

    class Parser(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(f"{tag} {name}" for name, _ in attrs if name.startswith("on"))

    Parser().feed(dom)
    return found


def dom_text(dom):
    dom = re.sub(r"<script.*?</script>", " ", dom, flags=re.S)
    dom = re.sub(r"<style.*?</style>", " ", dom, flags=re.S)
    return html.unescape(re.sub(r"<[^>]+>", " ", dom))


def test_no_text_from_the_inputs_runs_as_script_in_the_report(tmp_path):
    root = outputs_copy(tmp_path / "outputs")
    shown = plant(root)
    run_main("report", cwd=root)
    page = root / "report/index.html"
    dom, _ = render_offline(page, tmp_path)
    assert re.search(r"<title>(.*?)</title>", dom).group(1) == TITLE, "a payload ran"
    assert handlers(dom) == [], "a payload became an element"
    assert len(re.findall(r"<script\b", dom)) == len(re.findall(r"<script\b", page.read_text())) == 6  # bundle, charts
    text = dom_text(dom)
    missing = [route for route, words in shown.items() if words not in text]
    assert not missing, f"not shown as text: {missing}"
    charts, _ = charts_drawn(page, tmp_path)  # the charts whose data holds payloads still draw
    assert [c for c in charts if "error" in c or not c["items"]] == []


def test_a_metrics_file_that_names_no_model_is_refused(tmp_path):
    root = outputs_copy(tmp_path)
    name = "<img src=x onerror=alert(1)>"
    shutil.copy(root / "metrics/train/model2.json", root / f"metrics/train/{name}.json")
    shutil.copy(root / "plots/train/model2.csv", root / f"plots/train/{name}.csv")
    assert_clean_failure(run_stage("report", cwd=root), f"{name}.json: '{name}' is not a model name")
    assert not (root / "report/index.html").exists()


def test_a_transfer_table_that_names_an_untrained_model_is_refused(tmp_path):
    root = outputs_copy(tmp_path)
    sets = pd.read_csv(root / "plots/transfer/sets.csv")
    sets["source"] = payload("sets")
    sets.to_csv(root / "plots/transfer/sets.csv", index=False)
    assert_clean_failure(run_stage("report", cwd=root), "plots/transfer/sets.csv: names model", "metrics/train lacks")
    assert not (root / "report/index.html").exists()
