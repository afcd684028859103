"""Self-contained HTML: figures inlined as data URIs, tables, and interactive Vega-Lite charts whose
JavaScript (Vega, Vega-Lite, Vega-Embed) is inlined too, so a page opens from a file:// URL with no
network. The JavaScript comes from the pinned vl-convert-python package (its bundle of the three
libraries), never from a CDN.

Every string reaches the page escaped for where it lands, here and nowhere else: the helpers build
elements, and any str they are given is text (& < > escaped; in an attribute the quotes too), unless it is
Html, what the helpers return. Inside a <script>, data is JSON with < > & escaped as \\u003c, \\u003e,
\\u0026 (and, as json escapes every non-ASCII character, U+2028 and U+2029), so no text in it can end the
element.
"""
import base64
import html
import io
import json
import math
import re

from PIL import Image

VEGA_LITE_VERSION = "5.21"  # the Vega-Lite 5 line, which reads DVC's v5 specs unchanged
MAX_FIGURE_WIDTH = 1400     # pixels; wider figures are scaled down to keep the page small


class Html(str):
    """HTML built by this module's helpers: inserted as it is, where a plain str is escaped as text. A str
    added to it is escaped."""
    __slots__ = ()

    def __add__(self, other):
        return Html(str.__add__(self, text(other)))

    def __radd__(self, other):
        return Html(str.__add__(text(other), self))


def text(value):
    """A value for a text node: Html as it is; anything else as text, & < > escaped (quotes need no escape
    there)."""
    return value if isinstance(value, Html) else Html(html.escape(str(value), quote=False))


def attribute(value):
    """A value for a double-quoted attribute: & < > and both quotes escaped."""
    return html.escape(str(value), quote=True)


def join(parts):
    """The parts one after another, each as text unless it is Html."""
    return Html("".join(text(p) for p in parts))


def element(tag, *children, **attributes):
    """<tag attributes>children</tag>, every child text unless it is Html; an attribute's name may end in _
    (class_ for class), one whose value is None is left out."""
    return Html(f"<{tag}{attributes_of(attributes)}>{join(children)}</{tag}>")


def attributes_of(attributes):
    return "".join(f' {name.rstrip("_")}="{attribute(value)}"' for name, value in attributes.items()
                   if value is not None)


def script(code):
    """A <script> element of code this module wrote, which holds no "</script" (it would end the element)."""
    if "</script" in code.lower():
        raise ValueError("a script that holds '</script' would end its element early")
    return Html(f"<script>{code}</script>")


def script_json(value):
    """value as JSON for inside a <script>: < > & escaped, so that no text in it ends the element or opens a
    comment; json escapes every non-ASCII character, U+2028 and U+2029 included."""
    return json.dumps(value).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")


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
    return script(f"/* {origin} */\n{code}\n")


def dvc_plots_template(javascript, versions):
    """An HTML template for `dvc plots show/diff` (plots.html_template) with the libraries inlined.

    It has no {scripts} placeholder, so the CDN <script> tags that DVC would insert are left out."""
    return (Html("<!DOCTYPE html>\n<html>\n<head>\n    {refresh_tag}\n    <meta charset=\"utf-8\">\n"
                 "    <title>DVC Plot</title>\n") + inline_script(javascript, versions)
            + Html("\n    <style>table { border-spacing: 15px; }</style>\n</head>\n<body>\n    {plot_divs}\n</body>\n"
                   "</html>\n"))


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
    return element("figure", Html(f"<img{attributes_of({'src': image_uri(image), 'alt': caption})}>"),
                   element("figcaption", caption), class_=css_class, style=f"width: {width}px" if width else None)


def figures(images, captions, width=None):
    """The figures of `images` ({file name: image}) named in `captions` ({file name: caption}), in its order."""
    return join(figure(images[name], caption, width) for name, caption in captions.items())


def section(title, parts):
    """A section of the page: its <h2> title, then its parts."""
    return element("h2", title) + join(parts)


def heading(text):
    return element("h3", text)


def paragraph(text):
    return element("p", text)


def cell_class(value):
    """Numbers right-aligned; short text kept on one line; an empty cell plain (None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return "num"
    return "short" if len(str(value)) <= 24 else None


def cell(value):
    if value is None or (isinstance(value, float) and math.isnan(value)):  # NaN: an empty CSV cell
        return "—"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4g}"
    return str(value)


def table(rows, columns=None):
    """An HTML table of dicts (columns: their keys, in order, unless given)."""
    columns = columns or (list(rows[0]) if rows else [])
    return element("table", element("thead", element("tr", *(element("th", c) for c in columns))), element(
        "tbody", *(element("tr", *(element("td", cell(row.get(c)), class_=cell_class(row.get(c))) for c in columns))
                   for row in rows)))


def chart(name, spec):
    """A Vega-Lite chart drawn by vegaEmbed into its own <div>; `name` (letters, digits, -) names the div."""
    if not re.fullmatch(r"[a-z0-9-]+", name):
        raise ValueError(f"a chart's name is letters, digits and -, not {name!r}")
    spec = {"$schema": "https://vega.github.io/schema/vega-lite/v5.json", **spec}
    return (element("div", class_="chart", id=f"chart-{name}")
            + script(f"vegaEmbed('#chart-{name}', {script_json(spec)}, {{actions: false}});"))


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
    return element("b", VERDICT_WORDS[word], class_=word)


def claim(section, text, evidence, word, why, shown=""):
    """One of the homework's observations: its words (with its section), the evidence (sentences, then the
    figures or charts in `shown`) and the verdict with its reason."""
    return judged(f"The homework, {section}: “{text}”", evidence, word, why, shown)


def judged(heading, evidence, word, why, shown=""):
    """A block of evidence under its heading (in italics), with the verdict and its reason."""
    return element("div", element("p", heading, class_="seed"), element("p", element("b", "Evidence."), " ", evidence),
                   shown, element("p", verdict(word), ": ", why), class_="claim")


def page(title, body, scripts):
    """The whole page: its title, the style, the `scripts` in its head and the `body` (each Html, or text)."""
    return Html(f"<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
                f"{element('title', title)}\n<style>{PAGE_STYLE}</style>\n{text(scripts)}\n</head>\n"
                f"<body>\n{text(body)}\n</body>\n</html>\n")
