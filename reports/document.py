"""A tiny document model for the report: blocks rendered to both Markdown and self-contained HTML.

A document is a list of blocks: heading(level, text), para(text), table(headers, rows), image(path,
caption), code(text). Table cells may be Link(text, href). Inline markup is limited to `code` and **bold**.
"""

from __future__ import annotations

import base64
import html
import os
from dataclasses import dataclass
from pathlib import Path


@dataclass
class Link:
    """Table cell text with a relative link."""

    text: str
    href: str


def heading(level, text):
    """A heading block."""
    return ("h", level, text)


def para(text):
    """A paragraph block (inline `code` and **bold** allowed)."""
    return ("p", text)


def table(headers, rows):
    """A table block; cells are strings, numbers or Link."""
    return ("table", headers, rows)


def image(path, caption):
    """An image block (a PNG file, embedded in the HTML)."""
    return ("img", path, caption)


def code(text):
    """A preformatted block."""
    return ("code", text)


def render_markdown(blocks, out_dir: Path) -> str:
    """Markdown text of the document; images are relative links into the output folder."""
    lines = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            lines += ["#" * block[1] + " " + block[2], ""]
        elif kind == "p":
            lines += [block[1], ""]
        elif kind == "code":
            lines += ["```", block[1], "```", ""]
        elif kind == "img":
            rel = os.path.relpath(block[1], out_dir)
            lines += [f"![{block[2]}]({rel})", "", f"*{block[2]}*", ""]
        elif kind == "table":
            headers, rows = block[1], block[2]
            lines.append("| " + " | ".join(headers) + " |")
            lines.append("|" + "|".join("---" for _ in headers) + "|")
            for row in rows:
                lines.append("| " + " | ".join(_md_cell(c) for c in row) + " |")
            lines.append("")
    return "\n".join(lines).rstrip() + "\n"


def _md_cell(cell) -> str:
    if isinstance(cell, Link):
        return f"[{_md_escape(cell.text)}]({cell.href})"
    return _md_escape(str(cell))


def _md_escape(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


_CSS = """
body{font-family:-apple-system,Segoe UI,Helvetica,Arial,sans-serif;max-width:1250px;margin:2em auto;padding:0 1em;
color:#222;line-height:1.45}
table{border-collapse:collapse;margin:0.8em 0;font-size:0.88em}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:right;white-space:nowrap}
th{background:#f0f0f0}td:first-child,th:first-child,td:nth-child(2){text-align:left}
pre{background:#f6f6f6;padding:0.6em;overflow-x:auto;font-size:0.85em}
figure{margin:1em 0}figcaption{font-style:italic;font-size:0.9em;color:#555}
img{max-width:100%;height:auto;border:1px solid #eee}
"""


def render_html(blocks, title: str) -> str:
    """A self-contained HTML page: images are embedded as base64 PNG."""
    body = []
    for block in blocks:
        kind = block[0]
        if kind == "h":
            body.append(f"<h{block[1]}>{_inline_html(block[2])}</h{block[1]}>")
        elif kind == "p":
            body.append(f"<p>{_inline_html(block[1])}</p>")
        elif kind == "code":
            body.append(f"<pre>{html.escape(block[1])}</pre>")
        elif kind == "img":
            data = base64.b64encode(Path(block[1]).read_bytes()).decode("ascii")
            cap = html.escape(block[2])
            body.append(f'<figure><img alt="{cap}" src="data:image/png;base64,{data}">'
                        f"<figcaption>{cap}</figcaption></figure>")
        elif kind == "table":
            headers, rows = block[1], block[2]
            parts = ["<table><thead><tr>" + "".join(f"<th>{html.escape(h)}</th>" for h in headers) + "</tr></thead><tbody>"]
            for row in rows:
                parts.append("<tr>" + "".join(f"<td>{_html_cell(c)}</td>" for c in row) + "</tr>")
            parts.append("</tbody></table>")
            body.append("".join(parts))
    return ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{html.escape(title)}</title><style>{_CSS}</style></head><body>\n"
            + "\n".join(body) + "\n</body></html>\n")


def _html_cell(cell) -> str:
    if isinstance(cell, Link):
        return f'<a href="{html.escape(cell.href, quote=True)}">{html.escape(cell.text)}</a>'
    return html.escape(str(cell))


def _inline_html(text: str) -> str:
    """HTML of a line with Markdown's `code` and **bold** spans (the only inline markup used here)."""
    out, parts = [], html.escape(text).split("`")
    for i, part in enumerate(parts):
        if i % 2:
            out.append(f"<code>{part}</code>")
        else:
            bold = part.split("**")
            out.append("".join(f"<b>{b}</b>" if j % 2 else b for j, b in enumerate(bold)))
    return "".join(out)
