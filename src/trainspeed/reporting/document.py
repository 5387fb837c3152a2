"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML page."""

from __future__ import annotations

import base64
import html
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Heading:
    text: str
    level: int = 2


@dataclass
class Paragraph:
    text: str
    style: str = ""  # "headline", "warning" or plain


@dataclass
class Bullets:
    items: list[str]


@dataclass
class Table:
    headers: list[str]
    rows: list[list[str]]
    caption: str = ""
    # Cells (row, column) to show as a problem, such as a failed case.
    flagged: set[tuple[int, int]] = field(default_factory=set)
    # How many leading columns hold text (left-aligned); the rest are numbers (right-aligned).
    text_columns: int = 1


@dataclass
class Image:
    path: Path
    alt: str
    caption: str = ""


Block = Heading | Paragraph | Bullets | Table | Image


def _markdown_cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", "<br>")


def to_markdown(blocks: list[Block]) -> str:
    lines: list[str] = []
    for block in blocks:
        if isinstance(block, Heading):
            lines += ["#" * block.level + " " + block.text, ""]
        elif isinstance(block, Paragraph):
            text = f"**{block.text}**" if block.style == "headline" else block.text
            lines += [f"> {text}" if block.style == "warning" else text, ""]
        elif isinstance(block, Bullets):
            lines += [f"- {item}" for item in block.items] + [""]
        elif isinstance(block, Table):
            if block.caption:
                lines += [f"*{block.caption}*", ""]
            lines.append("| " + " | ".join(map(_markdown_cell, block.headers)) + " |")
            lines.append("|" + "|".join("---" for _ in block.headers) + "|")
            lines += ["| " + " | ".join(map(_markdown_cell, row)) + " |" for row in block.rows]
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({block.path.name})", ""]
            if block.caption:
                lines += [f"*{block.caption}*", ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1a1a1a;
       max-width: 1000px; margin: 0 auto; padding: 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.headline { font-size: 1.15rem; font-weight: 600; background: #eef5fb; border-left: 4px solid #0072B2;
            padding: .6rem .8rem; margin: .6rem 0; }
.warning { background: #fff6e0; border-left: 4px solid #E69F00; padding: .5rem .8rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: .6rem 0; }
table { border-collapse: collapse; font-size: .92rem; font-variant-numeric: tabular-nums; }
caption { text-align: left; font-style: italic; padding-bottom: .3rem; color: #444; }
th, td { border: 1px solid #d0d0d0; padding: .3rem .55rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } .text { text-align: left; }
td.flag { color: #a00000; font-weight: 600; text-align: left; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; }
"""


def _html_cell(text: str) -> str:
    return html.escape(text).replace("\n", "<br>")


def _cell(tag: str, text: str, is_text: bool, flagged: bool = False) -> str:
    css = "flag" if flagged else ("text" if is_text else "")
    attribute = f' class="{css}"' if css else ""
    return f"<{tag}{attribute}>{_html_cell(text)}</{tag}>"


def to_html(blocks: list[Block], title: str) -> str:
    """One page with every picture embedded, so it opens offline and can be mailed as one file."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    for block in blocks:
        if isinstance(block, Heading):
            parts.append(f"<h{block.level}>{html.escape(block.text)}</h{block.level}>")
        elif isinstance(block, Paragraph):
            css = f' class="{block.style}"' if block.style else ""
            parts.append(f"<p{css}>{_html_cell(block.text)}</p>")
        elif isinstance(block, Bullets):
            parts.append("<ul>" + "".join(f"<li>{_html_cell(item)}</li>" for item in block.items) + "</ul>")
        elif isinstance(block, Table):
            texts = block.text_columns
            rows = ["<tr>" + "".join(_cell("th", h, c < texts) for c, h in enumerate(block.headers)) + "</tr>"]
            for r, row in enumerate(block.rows):
                rows.append("<tr>" + "".join(_cell("td", text, c < texts, (r, c) in block.flagged)
                                             for c, text in enumerate(row)) + "</tr>")
            caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
            parts.append(f'<div class="scroll"><table>{caption}{"".join(rows)}</table></div>')
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
            parts.append(f'<figure><img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}">'
                         f"{caption}</figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
