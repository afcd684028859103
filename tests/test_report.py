"""The self-contained HTML pieces of the report and of the offline `dvc plots` template."""
import base64
import io

from PIL import Image

from stages.lib import html_page as report
from tests.conftest import assert_no_network_references


def test_the_dvc_template_inlines_the_libraries_and_drops_the_cdn_placeholder():
    javascript, versions = report.vega_bundle()
    template = report.dvc_plots_template(javascript, versions)
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
    element = report.figure(tmp_path / "plot.png", "a <plot>")
    encoded = element.split("base64,", 1)[1].split('"', 1)[0]
    image = Image.open(io.BytesIO(base64.b64decode(encoded)))
    assert image.mode == "P" and image.size == Image.open(tmp_path / "plot.png").size
    assert len(encoded) * 3 / 4 < (tmp_path / "plot.png").stat().st_size
    assert "a &lt;plot&gt;" in element


def test_tables_escape_and_format_their_cells():
    html = report.table([{"name": "<b>", "value": 0.123456789, "flag": True, "missing": None, "empty": float("nan")}])
    assert "<th>name</th>" in html and "&lt;b&gt;" in html
    assert "<td>0.1235</td>" in html and "<td>yes</td>" in html and html.count("<td>—</td>") == 2
