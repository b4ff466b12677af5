"""Sections rendered as files: tables as CSV (full precision), Markdown and
LaTeX; the whole report as Markdown and as one self-contained HTML page
(figures embedded as base64 data URIs, so the page can be mailed or
archived on its own).

A table's ``attrs["floatfmt"]`` (default ``.4g``) sets how its numbers are
shown; missing values are shown empty.
"""

from __future__ import annotations

import base64
import html
import os
import re

import pandas as pd

from scenetune.analysis import style
from scenetune.analysis.section import Section

CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; max-width: 1100px;
       margin: 2em auto; padding: 0 1.2em; color: #1a1a1a; line-height: 1.5; }
h1 { border-bottom: 2px solid #0072B2; padding-bottom: .3em; }
h2 { margin-top: 2em; border-bottom: 1px solid #ddd; padding-bottom: .2em; }
table { border-collapse: collapse; margin: 1em 0; font-size: .9em; }
th, td { border: 1px solid #ccc; padding: .3em .6em; text-align: right; vertical-align: top; }
th { background: #eef4fa; }
td.text, th.text { text-align: left; }
tr:nth-child(even) td { background: #fafafa; }
figure { margin: 1.5em 0; }
figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9em; color: #444; margin-top: .3em; }
code { background: #f3f3f3; padding: 0 .25em; border-radius: 3px; }
pre code { background: none; padding: 0; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; border-radius: 4px; }
.table-title { font-size: .85em; color: #666; margin-bottom: -.6em; }
"""


def display_frame(table: pd.DataFrame) -> pd.DataFrame:
    """Every cell as the text to show."""
    fmt = table.attrs.get("floatfmt", ".4g")

    def show(value):
        if value is None or (isinstance(value, float) and pd.isna(value)):
            return ""
        if isinstance(value, float):
            return format(value, fmt)
        return str(value)

    return table.astype(object).map(show) if not table.empty else table.astype(object)


def _is_numeric(table: pd.DataFrame, column) -> bool:
    return pd.api.types.is_numeric_dtype(table[column]) and not pd.api.types.is_bool_dtype(table[column])


def table_markdown(table: pd.DataFrame) -> str:
    align = ["right" if _is_numeric(table, c) else "left" for c in table.columns]
    return display_frame(table).to_markdown(index=False, disable_numparse=True, colalign=align)


def table_latex(table: pd.DataFrame) -> str:
    return display_frame(table).to_latex(index=False, escape=True)


def write_tables(sections: list[Section], tables_dir: str) -> list[str]:
    """``<stem>.csv``, ``.md`` and ``.tex`` for every table; returns the paths."""
    os.makedirs(tables_dir, exist_ok=True)
    written = []
    for section in sections:
        for stem, table in section.tables.items():
            for ext, text in (("csv", table.to_csv(index=False)), ("md", table_markdown(table) + "\n"),
                              ("tex", table_latex(table))):
                path = os.path.join(tables_dir, f"{stem}.{ext}")
                with open(path, "w", encoding="utf-8") as f:
                    f.write(text)
                written.append(path)
    return written


def render_markdown(title: str, sections: list[Section], out_dir: str) -> str:
    parts = [f"# {title}", ""]
    for section in sections:
        parts += [f"## {section.title}", ""]
        if section.text:
            parts += [section.text, ""]
        for stem, table in section.tables.items():
            parts += [f"*{stem}*", "", table_markdown(table), ""]
        for caption, path in section.figures.items():
            parts += [f"![{caption}]({os.path.relpath(path, out_dir)})", "", f"*{caption}*", ""]
    return "\n".join(parts)


def _inline(text: str) -> str:
    text = html.escape(text, quote=False)
    text = re.sub(r"`([^`]+)`", r"<code>\1</code>", text)
    return re.sub(r"\*\*([^*]+)\*\*", r"<strong>\1</strong>", text)


def markdown_to_html(text: str) -> str:
    """The Markdown the sections use: paragraphs, ``- `` lists, fenced code,
    inline code and bold."""
    out, paragraph, in_list, code = [], [], False, None

    def flush():
        nonlocal paragraph
        if paragraph:
            out.append(f"<p>{_inline(' '.join(paragraph))}</p>")
            paragraph = []

    for line in text.splitlines():
        if code is not None:
            if line.startswith("```"):
                out.append(f"<pre><code>{html.escape(chr(10).join(code))}</code></pre>")
                code = None
            else:
                code.append(line)
            continue
        if line.startswith("```"):
            flush()
            code = []
        elif line.startswith("- "):
            flush()
            if not in_list:
                out.append("<ul>")
                in_list = True
            out.append(f"<li>{_inline(line[2:])}</li>")
        elif not line.strip():
            flush()
            if in_list:
                out.append("</ul>")
                in_list = False
        else:
            paragraph.append(line.strip())
    flush()
    if in_list:
        out.append("</ul>")
    return "\n".join(out)


def table_html(table: pd.DataFrame) -> str:
    shown = display_frame(table)
    numeric = {c for c in table.columns if _is_numeric(table, c)}
    head = "".join(f'<th class="{"num" if c in numeric else "text"}">{html.escape(str(c))}</th>'
                   for c in shown.columns)
    rows = []
    for _, row in shown.iterrows():
        cells = "".join(f'<td class="{"num" if c in numeric else "text"}">{html.escape(v)}</td>'
                        for c, v in row.items())
        rows.append(f"<tr>{cells}</tr>")
    return f"<table>\n<thead><tr>{head}</tr></thead>\n<tbody>\n" + "\n".join(rows) + "\n</tbody>\n</table>"


def image_data_uri(path: str) -> str:
    with open(path, "rb") as f:
        return "data:image/png;base64," + base64.b64encode(f.read()).decode("ascii")


def display_width(path: str) -> int:
    """CSS pixels for a figure: drawn at the style's DPI, shown at the screen's 96."""
    from PIL import Image

    with Image.open(path) as image:
        return round(image.width * 96 / style.DPI)


def render_html(title: str, sections: list[Section]) -> str:
    body = [f"<h1>{html.escape(title)}</h1>"]
    for section in sections:
        body.append(f"<section>\n<h2>{html.escape(section.title)}</h2>")
        if section.text:
            body.append(markdown_to_html(section.text))
        for stem, table in section.tables.items():
            body += [f'<div class="table-title">{html.escape(stem)}</div>', table_html(table)]
        for caption, path in section.figures.items():
            body.append(f'<figure><img src="{image_data_uri(path)}" style="width: {display_width(path)}px" '
                        f'alt="{html.escape(caption)}">'
                        f"<figcaption>{_inline(caption)}</figcaption></figure>")
        body.append("</section>")
    return ("<!DOCTYPE html>\n<html lang=\"en\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\n<title>{html.escape(title)}"
            f"</title>\n<style>{CSS}</style>\n</head>\n<body>\n" + "\n".join(body) + "\n</body>\n</html>\n")
