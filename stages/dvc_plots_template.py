"""The offline template of `dvc plots show/diff` (not a DVC stage; make writes it, .dvc/config points at it):
an HTML page with Vega, Vega-Lite and Vega-Embed inlined from the pinned vl-convert-python, so the plots
render with no network.

    python -m stages.dvc_plots_template .dvc/plots/offline.html
"""
from pathlib import Path

from stages.lib import cli
from stages.lib import html_page as html
from stages.lib.io import staged_outputs


def main(argv=None):
    parser = cli.parser(__doc__)
    parser.add_argument("path", help="where to write the template")
    args = parser.parse_args(argv)
    with staged_outputs() as stage:
        stage(args.path).write_text(html.dvc_plots_template(*html.vega_bundle()))
    print(f"dvc plots template: {args.path} ({Path(args.path).stat().st_size / 1e6:.1f} MB)")


if __name__ == "__main__":
    cli.run(main)
