"""HTML building blocks: escaped tables, figures with captions, the page shell (inline CSS, no
scripts, no network)."""

from __future__ import annotations

import datetime as _dt
import html
from collections.abc import Sequence
from typing import Any


def esc(x: Any) -> str:
    return html.escape(str(x), quote=True)


def fmt(x: Any, digits: int = 3) -> str:
    """A cell: floats to ``digits`` decimals, None/NaN as an em dash."""
    if x is None:
        return "—"
    if isinstance(x, bool):
        return "yes" if x else "no"
    if isinstance(x, float):
        return "—" if x != x else f"{x:.{digits}f}"
    return str(x)


def table(header: Sequence[str], rows: Sequence[Sequence[Any]], caption: str = "",
          cls: str = "") -> str:
    head = "".join(f"<th>{esc(h)}</th>" for h in header)
    src = [h == "source" for h in header]

    def cell(c: Any, is_src: bool) -> str:
        cls = "src" if is_src else "num" if isinstance(c, int | float) or c is None else ""
        return f'<td class="{cls}">{esc(fmt(c))}</td>'

    body = "".join("<tr>" + "".join(cell(c, s) for c, s in zip(r, src, strict=True)) + "</tr>"
                   for r in rows)
    cap = f"<caption>{esc(caption)}</caption>" if caption else ""
    return f'<table class="{cls}">{cap}<thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>'


def figure(uri: str, caption: str, alt: str) -> str:
    return (f'<figure><img src="{uri}" alt="{esc(alt)}"><figcaption>{esc(caption)}'
            "</figcaption></figure>")


def section(title: str, body: str, anchor: str) -> str:
    return f'<section id="{esc(anchor)}"><h2>{esc(title)}</h2>{body}</section>'


def para(text: str, cls: str = "") -> str:
    return f'<p class="{cls}">{esc(text)}</p>'


def row(parts: Sequence[str]) -> str:
    """Side by side (wrapping on narrow screens)."""
    return '<div class="row">' + "".join(parts) + "</div>"


def details(summary: str, body: str) -> str:
    return f"<details><summary>{esc(summary)}</summary>{body}</details>"


def bullets(items: Sequence[str], cls: str = "") -> str:
    return f'<ul class="{cls}">' + "".join(f"<li>{esc(i)}</li>" for i in items) + "</ul>"


CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Helvetica,Arial,sans-serif;margin:2em auto;
max-width:1100px;padding:0 1em;color:#222;line-height:1.4}
h1{margin-bottom:0}h2{border-bottom:1px solid #ddd;padding-bottom:.2em;margin-top:2em}
table{border-collapse:collapse;margin:1em 0;font-size:13px;display:block;overflow-x:auto}
th,td{border:1px solid #ccc;padding:3px 7px;text-align:left;vertical-align:top}
td.num{text-align:right;font-variant-numeric:tabular-nums}td.src{font-size:11px;color:#555}
.row{display:flex;flex-wrap:wrap;gap:0 1.5em}th{background:#f3f3f3}
caption{caption-side:bottom;font-size:12px;color:#666;text-align:left;padding-top:4px}
figure{margin:1em 0}figure img{max-width:100%;border:1px solid #eee}
figcaption{font-size:12px;color:#666}.missing{background:#fff6e0;border:1px solid #f0c36d;
padding:.5em 1.5em}.muted{color:#666;font-size:13px}nav a{margin-right:1em}
"""


def page(title: str, sections: Sequence[tuple[str, str, str]], intro: str = "") -> str:
    """The whole document; ``sections`` are (anchor, title, body HTML)."""
    nav = "".join(f'<a href="#{esc(a)}">{esc(t)}</a>' for a, t, _ in sections)
    body = "".join(section(t, b, a) for a, t, b in sections)
    now = _dt.datetime.now(_dt.UTC).isoformat(timespec="seconds")
    return ("<!DOCTYPE html><html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{esc(title)}</title><style>{CSS}</style></head><body>"
            f"<h1>{esc(title)}</h1><p class=\"muted\">generated {esc(now)} by robustq report"
            f"</p>{intro}<nav>{nav}</nav>{body}</body></html>")
