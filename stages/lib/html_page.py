"""Self-contained HTML: figures inlined as data URIs, tables, and interactive Vega-Lite charts whose
JavaScript (Vega, Vega-Lite, Vega-Embed) is inlined too, so a page opens from a file:// URL with no
network. The JavaScript comes from the pinned vl-convert-python package (its bundle of the three
libraries), never from a CDN.
"""
import base64
import html
import io
import math
import json
from pathlib import Path

from PIL import Image

VEGA_LITE_VERSION = "5.21"  # the Vega-Lite 5 line, which reads DVC's v5 specs unchanged
MAX_FIGURE_WIDTH = 1400     # pixels; wider figures are scaled down to keep the page small


def vega_bundle():
    """(JavaScript that defines window.vega, window.vegaLite and window.vegaEmbed, versions)."""
    import vl_convert

    versions = {"vl-convert-python": vl_convert.__version__, "vega": vl_convert.get_vega_version(),
                "vega-lite": VEGA_LITE_VERSION, "vega-embed": vl_convert.get_vega_embed_version()}
    return vl_convert.javascript_bundle(vl_version=VEGA_LITE_VERSION), versions


def inline_script(javascript, versions):
    """A <script> element holding the bundle, with its source and versions in a comment."""
    origin = ", ".join(f"{name} {version}" for name, version in versions.items())
    code = javascript.replace("</script", "<\\/script")  # "</script" inside the code would end the element
    return f"<script>/* {origin} */\n{code}\n</script>"


def dvc_plots_template(javascript, versions):
    """An HTML template for `dvc plots show/diff` (plots.html_template) with the libraries inlined.

    It has no {scripts} placeholder, so the CDN <script> tags that DVC would insert are left out."""
    return ("<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n    <meta charset=\"utf-8\">\n"
            "    <title>DVC Plot</title>\n" + inline_script(javascript, versions) + "\n"
            "    <style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n    {plot_divs}\n</body>\n</html>\n")


def figure(path, caption, width=None):
    """A <figure> with the image inlined: PNGs re-encoded with a 256-colour palette (a fraction of the
    size, no visible change for these plots), GIFs as they are."""
    path = Path(path)
    data, mime = path.read_bytes(), "image/gif"
    if path.suffix == ".png":
        image = Image.open(io.BytesIO(data)).convert("RGB")
        if image.width > MAX_FIGURE_WIDTH:
            image = image.resize((MAX_FIGURE_WIDTH, round(image.height * MAX_FIGURE_WIDTH / image.width)),
                                 Image.LANCZOS)
        buffer = io.BytesIO()
        image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
            buffer, format="PNG", compress_level=9)
        data, mime = buffer.getvalue(), "image/png"
    uri = f"data:{mime};base64,{base64.b64encode(data).decode()}"
    style = f' style="width: {width}px"' if width else ""
    return (f'<figure{style}><img src="{uri}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):  # NaN: an empty CSV cell
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return html.escape(str(value))


def table(rows, columns=None):
    """An HTML table of dicts (columns: their keys, in order, unless given)."""
    columns = columns or (list(rows[0]) if rows else [])
    head = "".join(f"<th>{html.escape(str(c))}</th>" for c in columns)
    body = "".join("<tr>" + "".join(f"<td>{cell(row.get(c))}</td>" for c in columns) + "</tr>" for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def chart(name, spec):
    """A Vega-Lite chart drawn by vegaEmbed into its own <div>."""
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", **spec}
    return (f'<div class="chart" id="chart-{name}"></div>'
            f"<script>vegaEmbed('#chart-{name}', {json.dumps(spec)}, {{actions: false}});</script>")


def line_chart(name, rows, x, y, color, title, log_y=False):
    """Lines of y over x, one per value of `color`, from a list of dicts (data inline)."""
    return chart(name, {
        "title": title, "width": 520, "height": 300, "data": {"values": rows}, "mark": {"type": "line", "point": True},
        "encoding": {"x": {"field": x, "type": "quantitative"},
                     "y": {"field": y, "type": "quantitative", **({"scale": {"type": "log"}} if log_y else {})},
                     "color": {"field": color, "type": "nominal"},
                     "tooltip": [{"field": color}, {"field": x}, {"field": y}]}})


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.8em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: .3em .6em; }
th { background: #f3f3f3; } td { text-align: right; } td:first-child { text-align: left; }
figure { display: inline-block; margin: .5em; vertical-align: top; } figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; } .chart { display: inline-block; margin: .5em; }
.banner { background: #f6f8fa; border: 1px solid #ddd; padding: .8em 1em; }
"""


def page(title, body, scripts):
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n{scripts}\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
