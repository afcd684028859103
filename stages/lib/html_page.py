"""Self-contained HTML: figures inlined as data URIs, tables, and interactive Vega-Lite charts whose
JavaScript (Vega, Vega-Lite, Vega-Embed) is inlined too, so a page opens from a file:// URL with no
network. The JavaScript comes from the pinned vl-convert-python package (its bundle of the three
libraries), never from a CDN.
"""
import base64
import html
import io
import json
import math

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


def image_uri(image):
    """A PIL image as a PNG data URI with a 256-colour palette (a fraction of the size, no visible change
    for these plots), scaled down to MAX_FIGURE_WIDTH."""
    image = image.convert("RGB")
    if image.width > MAX_FIGURE_WIDTH:
        image = image.resize((MAX_FIGURE_WIDTH, round(image.height * MAX_FIGURE_WIDTH / image.width)), Image.LANCZOS)
    buffer = io.BytesIO()
    image.quantize(256, method=Image.Quantize.FASTOCTREE, dither=Image.Dither.NONE).save(
        buffer, format="PNG", compress_level=9)
    return f"data:image/png;base64,{base64.b64encode(buffer.getvalue()).decode()}"


def figure(image, caption, width=None, css_class="figure"):
    """A <figure> with a PIL image inlined by image_uri, its caption also its alt text."""
    style = f' style="width: {width}px"' if width else ""
    return (f'<figure class="{css_class}"{style}><img src="{image_uri(image)}" alt="{html.escape(caption)}">'
            f"<figcaption>{html.escape(caption)}</figcaption></figure>")


def figures(images, captions, width=None):
    """The figures of `images` ({file name: image}) named in `captions` ({file name: caption}), in its order."""
    return "".join(figure(images[name], caption, width) for name, caption in captions.items())


def element(tag, *children, **attributes):
    """<tag attributes>children</tag>; an attribute's name may end in _ (class_ for class)."""
    names = "".join(f' {name.rstrip("_")}="{value}"' for name, value in attributes.items())
    return f"<{tag}{names}>{''.join(children)}</{tag}>"


def section(title, parts):
    """A section of the page: its <h2> title, then its parts."""
    return element("h2", title) + "".join(parts)


def heading(text):
    return element("h3", text)


def paragraph(text):
    return element("p", text)


def cell_class(value):
    """Numbers right-aligned; short text kept on one line; an empty cell plain."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return ""
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return ' class="num"'
    return ' class="short"' if len(str(value)) <= 24 else ""


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
    body = "".join("<tr>" + "".join(f"<td{cell_class(row.get(c))}>{cell(row.get(c))}</td>" for c in columns) + "</tr>"
                   for row in rows)
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def chart(name, spec):
    """A Vega-Lite chart drawn by vegaEmbed into its own <div>."""
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", **spec}
    return (f'<div class="chart" id="chart-{name}"></div>'
            f"<script>vegaEmbed('#chart-{name}', {json.dumps(spec)}, {{actions: false}});</script>")


def field(name):
    """A column name as a Vega-Lite field: `.`, `[` and `]` escaped, which Vega-Lite would otherwise read
    as a path into the datum (so `epsilon ([0, 1] units)` would be undefined in every row)."""
    return "".join("\\" + c if c in ".[]\\" else c for c in name)


DASHES = [[1, 0], [6, 3], [1, 3]]  # the line styles of a chart's `dash` lines, which its title names:
DASH_WORDS = ("solid", "dashed", "dotted")


def line_chart(name, rows, x, y, color, title, log_y=False, color_order=None, dash=None, dash_order=None):
    """Lines of y over x, one per value of `color` (in color_order when given, one colour each), from a
    list of dicts (data inline); the y axis fits the data (not from 0, a few pixels clear of the frame; a log
    axis starts at the power of 10 below the data, a labelled tick); an x of whole numbers has whole-number ticks
    (at most one per value);
    `dash` a column drawn as line styles, solid, dashed, dotted in dash_order, which the title names (a
    legend would show dots)."""
    order = {"scale": {"domain": color_order}, "sort": color_order} if color_order else {}
    whole = all(isinstance(r[x], int) for r in rows)
    ticks = {"axis": {"tickCount": {"expr": f"min(ceil(width / 40), {len({r[x] for r in rows})})"}}} if whole else {}
    scale = {"zero": False, "padding": 8}
    if log_y:
        lowest = min(r[y] for r in rows if r[y] > 0)
        scale = {"type": "log", "nice": False, "padding": 8, "domainMin": 10 ** math.floor(math.log10(lowest))}
    encoding = {"x": {"field": field(x), "type": "quantitative", "title": x, **ticks},
                "y": {"field": field(y), "type": "quantitative", "title": y, "scale": scale},
                "color": {"field": field(color), "type": "nominal", "title": color, **order},
                "tooltip": [{"field": field(c), "title": c} for c in (color, dash, x, y) if c]}
    if dash:
        encoding["strokeDash"] = {"field": field(dash), "type": "nominal", "legend": None,
                                  "scale": {"domain": dash_order, "range": DASHES[:len(dash_order)]}}
    return chart(name, {"title": title, "width": 520, "height": 300, "data": {"values": rows},
                        "mark": {"type": "line", "point": True}, "encoding": encoding})


PAGE_STYLE = """
body { font-family: system-ui, sans-serif; max-width: 1200px; margin: 2em auto; padding: 0 1em; color: #222; }
h1 { font-size: 1.8em; } h2 { border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 2em; }
table { border-collapse: collapse; margin: 1em 0; } th, td { border: 1px solid #ccc; padding: .3em .6em; }
th { background: #f3f3f3; } td { vertical-align: top; } td.num { text-align: right; } td.short { white-space: nowrap; }
figure { display: inline-block; margin: .5em; vertical-align: top; } figcaption { font-size: .85em; color: #555; }
img { max-width: 100%; } .chart { display: inline-block; margin: .5em; }
.banner { background: #f6f8fa; border: 1px solid #ddd; padding: .8em 1em; }
.findings { background: #fffbea; border: 1px solid #e6d9a2; padding: .6em 1em; }
.findings table { background: white; } .findings td { text-align: left; }
.claim { border-left: 4px solid #ccc; padding: .2em 1em; margin: 1.2em 0; }
.seed { font-style: italic; } .holds { color: #1a6b2a; } .differs { color: #a33; } .partly { color: #8a5a00; } .unmeasured { color: #555; }
figure.strip { display: block; border: 1px solid #ccc; padding: .3em; margin: .6em 0; width: 560px; }
"""


VERDICT_WORDS = {"holds": "Holds", "partly": "Holds in part", "differs": "Differs", "unmeasured": "Not measured",
                 "measured": "Measured"}


def verdict(word):
    """The verdict word, coloured by what it says: holds, partly or differs (grey: not measured)."""
    return f'<b class="{word}">{VERDICT_WORDS[word]}</b>'


def claim(section, text, evidence, word, why, shown=""):
    """One of the homework's observations: its words (with its section), the evidence (sentences, then the
    figures or charts in `shown`) and the verdict with its reason."""
    return judged(f"The homework, {section}: “{text}”", evidence, word, why, shown)


def judged(heading, evidence, word, why, shown=""):
    """A block of evidence under its heading (in italics), with the verdict and its reason."""
    return (f'<div class="claim"><p class="seed">{html.escape(heading)}</p>'
            f"<p><b>Evidence.</b> {evidence}</p>{shown}<p>{verdict(word)}: {why}</p></div>")


def page(title, body, scripts):
    return (f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{html.escape(title)}</title>\n<style>{PAGE_STYLE}</style>\n{scripts}\n</head>\n"
            f"<body>\n{body}\n</body>\n</html>\n")
