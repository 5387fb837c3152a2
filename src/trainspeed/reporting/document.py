"""A report as a list of blocks, rendered to Markdown and to one self-contained HTML page."""

from __future__ import annotations

import base64
import html
import re
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
    # What qualifies a row (its validity warnings), shown with the row rather than in a list far below.
    notes: dict[int, list[str]] = field(default_factory=dict)
    # Rows that hold one sentence instead of figures (a failed case's reason): row -> (column, name).
    # In HTML the sentence spans the rest of the row, and a phone's card names it, not the column.
    sentences: dict[int, tuple[int, str]] = field(default_factory=dict)


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
            # Markdown has no cell spanning a row, so a row's warnings are its last column.
            extra = [["\n".join(block.notes.get(r, []))] if block.notes else [] for r in range(len(block.rows))]
            lines.append("| " + " | ".join(map(_markdown_cell, block.headers + (["warnings"] if block.notes else [])))
                         + " |")
            lines.append("|" + "|".join("---" for _ in block.headers + (["warnings"] if block.notes else [])) + "|")
            lines += ["| " + " | ".join(map(_markdown_cell, row + more)) + " |"
                      for row, more in zip(block.rows, extra, strict=True)]
            lines.append("")
        elif isinstance(block, Image):
            lines += [f"![{block.alt}]({block.path.name})", ""]
            if block.caption:
                lines += [f"*{block.caption}*", ""]
    return "\n".join(lines)


_STYLE = """
body { font-family: -apple-system, "Segoe UI", Roboto, Helvetica, Arial, sans-serif; color: #1a1a1a;
       overflow-wrap: anywhere; max-width: 1000px; margin: 0 auto; padding: 1rem; line-height: 1.45; }
h1 { font-size: 1.6rem; margin-bottom: .2rem; } h2 { font-size: 1.25rem; margin-top: 2rem;
     border-bottom: 1px solid #ddd; padding-bottom: .2rem; }
.headline { font-size: 1.15rem; font-weight: 600; background: #eef5fb; border-left: 4px solid #0072B2;
            padding: .6rem .8rem; margin: .6rem 0; }
.warning { background: #fff6e0; border-left: 4px solid #E69F00; padding: .5rem .8rem; }
.scroll { overflow-x: auto; -webkit-overflow-scrolling: touch; margin: .6rem 0; }
/* Words in a table break between words only: a header or a number cut mid-word cannot be read. */
table { border-collapse: collapse; font-size: .92rem; font-variant-numeric: tabular-nums; overflow-wrap: normal; }
caption { text-align: left; font-style: italic; padding-bottom: .3rem; color: #444; }
/* A captioned table is at least 26rem wide, so a narrow table does not wrap its caption word by word. */
table:has(> caption) { min-width: min(26rem, 100%); }
th, td { border: 1px solid #d0d0d0; padding: .3rem .55rem; text-align: right; vertical-align: top; }
th { background: #f3f3f3; } .text { text-align: left; } td.number { white-space: nowrap; }
td.flag { color: #a00000; font-weight: 600; text-align: left; }
code.flag-name { white-space: nowrap; font-family: inherit; }
tr.note td { text-align: left; background: #fff6e0; color: #5a4100; font-size: .88rem; }
figure { margin: 1rem 0; } figure img { max-width: 100%; height: auto; border: 1px solid #eee; }
figcaption { font-size: .9rem; color: #444; }
a.open { cursor: zoom-in; } a.close { display: none; }
/* A chart opens at its full size over the page, and scrolls there, when it is tapped. */
figure:target { position: fixed; inset: 0; margin: 0; z-index: 10; background: #fff; overflow: auto;
                padding: .5rem; box-sizing: border-box; }
figure:target img { max-width: none; width: auto; }
figure:target a.close { display: block; position: sticky; top: 0; left: 0; width: max-content; padding: .3rem .7rem;
                        background: #1a1a1a; color: #fff; text-decoration: none; border-radius: 4px; }
@media (max-width: 700px) {
  /* A phone gets each table row as a card: every figure beside its name, none off the screen. */
  body { padding: .6rem; }
  .scroll { overflow-x: visible; }
  table, caption, tbody, tr, td { display: block; box-sizing: border-box; width: 100%; }
  tr.head { display: none; }
  tr { border: 1px solid #c8c8c8; border-radius: 4px; margin: 0 0 .7rem; }
  td { border: none; border-bottom: 1px solid #eee; display: flex; justify-content: space-between; gap: .8rem;
       text-align: right; }
  td::before { content: attr(data-label); font-weight: 600; text-align: left; color: #444; flex: 0 0 40%; }
  td:empty, td.absent { display: none; }
  td.flag { text-align: right; }
  tr.note { border: none; margin-top: -.7rem; }
  tr.note td { display: block; }
  tr.note td::before { content: none; }
}
"""


def _html_cell(text: str) -> str:
    # A flag broken at its hyphens ("--" at a line's end, "repeats 5" on the next) no longer reads as one.
    return re.sub(r"(--[a-z][a-z0-9-]*)", r'<code class="flag-name">\1</code>', html.escape(text)).replace("\n", "<br>")


def _cell(tag: str, text: str, is_text: bool, flagged: bool = False, label: str = "") -> str:
    css = "flag" if flagged else ("text" if is_text else "number" if tag == "td" else "")
    # A phone's card leaves out what was not measured, so that it holds the figures alone.
    css = "absent" if tag == "td" and text in ("-", "") and not flagged else css
    attribute = f' class="{css}"' if css else ""
    # A phone shows each cell beside its column's name (the narrow layout's cards).
    attribute += f' data-label="{html.escape(label)}"' if label else ""
    return f"<{tag}{attribute}>{_html_cell(text)}</{tag}>"


def to_html(blocks: list[Block], title: str) -> str:
    """One page with every picture embedded, so it opens offline and can be mailed as one file."""
    parts = [
        "<!DOCTYPE html>", '<html lang="en"><head><meta charset="utf-8">',
        '<meta name="viewport" content="width=device-width, initial-scale=1">',
        f"<title>{html.escape(title)}</title><style>{_STYLE}</style></head><body>",
    ]
    charts = 0
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
            headers = block.headers
            rows = ['<tr class="head">' + "".join(_cell("th", h, c < texts) for c, h in enumerate(headers)) + "</tr>"]
            for r, row in enumerate(block.rows):
                at, name = block.sentences.get(r, (len(row), ""))
                cells = [_cell("td", text, c < texts, (r, c) in block.flagged, headers[c])
                         for c, text in enumerate(row[:at])]
                if at < len(row):
                    cells.append(_cell("td", row[at], True, (r, at) in block.flagged, name)
                                 .replace("<td", f'<td colspan="{len(row) - at}"', 1))
                rows.append("<tr>" + "".join(cells) + "</tr>")
                rows += [f'<tr class="note"><td colspan="{len(headers)}">{_html_cell(note)}</td></tr>'
                         for note in block.notes.get(r, [])]
            caption = f"<caption>{html.escape(block.caption)}</caption>" if block.caption else ""
            parts.append(f'<div class="scroll"><table>{caption}{"".join(rows)}</table></div>')
        elif isinstance(block, Image):
            data = base64.b64encode(block.path.read_bytes()).decode("ascii")
            caption = f"<figcaption>{html.escape(block.caption)}</figcaption>" if block.caption else ""
            charts += 1
            # Tapping a chart opens it at full size; its close link comes back to where it was, not to the top.
            parts.append(f'<span id="back-{charts}"></span><figure id="chart-{charts}">'
                         f'<a class="close" href="#back-{charts}">close</a><a class="open" href="#chart-{charts}">'
                         f'<img src="data:image/png;base64,{data}" alt="{html.escape(block.alt)}"></a>'
                         f"{caption}</figure>")
    parts.append("</body></html>")
    return "\n".join(parts)
