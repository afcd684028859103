"""Stage report: every result of the pipeline in one self-contained HTML page (report/index.html), in the
homework's order: a findings box, then per section each of the homework's observations (reference/seed.yaml)
beside our evidence and a verdict computed from the numbers; section 5 measures the defences (the models whose
metrics/train record says role 'defence') against the homework's claims and the literature
(reference/anchors.yaml).

Every accuracy measured on a sample of images carries its count and 95 % Wilson interval
(stages.lib.stats), and every comparison gives the difference with its 95 % interval (paired on the same
images, McNemar's exact test; against a figure measured on other images, as independent samples). The
page has one ε unit, the literature's [0, 1] pixel intensities; the models see [-1, 1], where the same
budget is twice as large. Every figure is inlined and the interactive charts carry their JavaScript, so
the page opens from a file:// URL with no network. The library is stages.lib.report.
"""
from pathlib import Path

from stages.lib import cli
from stages.lib.io import staged_outputs
from stages.lib.report.inputs import read_inputs
from stages.lib.report.page import build

OUT = "report/index.html"


def main(argv=None):
    cli.parser(__doc__).parse_args(argv)
    page = build(read_inputs())
    with staged_outputs() as stage:
        stage(OUT).write_text(page)
    print(f"report: {OUT} ({Path(OUT).stat().st_size / 1e6:.1f} MB), open it in a browser")


if __name__ == "__main__":
    cli.run(main)
