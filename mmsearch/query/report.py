"""A self-contained HTML page of search results: each hit with its photos and its score breakdown.

Image search is judged by looking. Local photos are embedded as small JPEG thumbnails (data URIs),
so the page can be mailed or archived; http(s) images are linked. A photo that cannot be read is
shown as a grey box with the reason, never an error. An image query shows its photo at the top.
Each hit's breakdown table fits its card (fixed layout, long signal names cut with an ellipsis
and shown whole on hover), from a wide screen down to a phone.
"""

from __future__ import annotations

import base64
import html
import io
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mmsearch.errors import ImageDecodeError

if TYPE_CHECKING:
    from indexers.images import ImageSource
from mmsearch.fetch import is_url
from mmsearch.files import writing
from mmsearch.query.results import Result, SearchResponse

THUMB_PX = 160
MAX_PHOTOS = 4

_CSS = """
body{font-family:system-ui,sans-serif;margin:1.5em;color:#222}
h1{font-size:1.3em;overflow-wrap:anywhere} table.sig{border-collapse:collapse;margin:.5em 0 1em}
table.sig td,table.sig th{padding:.15em .4em;border-bottom:1px solid #ddd;text-align:left}
.hits{display:grid;grid-template-columns:repeat(auto-fill,minmax(min(340px,100%),1fr));gap:1em}
.hit{border:1px solid #ccc;border-radius:6px;padding:.6em;min-width:0;overflow:hidden}
.hit table.sig{width:100%;table-layout:fixed;font-size:.85em}
.hit table.sig td,.hit table.sig th{overflow:hidden;text-overflow:ellipsis;white-space:nowrap;padding:.12em .25em}
.hit table.sig col.name{width:36%}
.hit table.sig td.share{background:linear-gradient(to right,#cfe0f7 var(--share),transparent var(--share))}
.photos img,.photos .none{width:80px;height:80px;object-fit:cover;margin:0 .3em .3em 0;border-radius:3px}
.photos .none{display:inline-block;background:#eee;font-size:.6em;overflow:hidden;vertical-align:top}
.query{display:inline-block;margin:0 0 1em;border:1px solid #ccc;border-radius:6px;padding:.4em}
.query img{display:block;max-width:160px;max-height:160px;border-radius:3px}
.query figcaption{font-size:.8em;color:#666;overflow-wrap:anywhere;max-width:160px}
.score{font-weight:bold} .id{color:#666;font-size:.85em;overflow-wrap:anywhere}
table.sig td.num,.hit table.sig th{font-variant-numeric:tabular-nums;text-align:right}
.hit table.sig th:first-child{text-align:left} .note{color:#a15c00}
body>table.sig{max-width:100%} body>table.sig td{overflow-wrap:anywhere}
"""


def thumbnail_jpeg(source: ImageSource, px: int = THUMB_PX) -> bytes:
    """A JPEG thumbnail (at most `px` on each side) of an image file or its bytes.

    Raises:
        ImageDecodeError: the image cannot be read (see `indexers.images.load_image`).
    """
    from PIL import Image

    from indexers.images import load_image

    image = load_image(source).convert("RGB")
    image.thumbnail((px, px), Image.Resampling.BICUBIC)
    buf = io.BytesIO()
    image.save(buf, format="JPEG", quality=80)
    return buf.getvalue()


def _thumbnail(path: Path) -> str:
    return "data:image/jpeg;base64," + base64.b64encode(thumbnail_jpeg(path)).decode("ascii")


def _photo(ref: str, image_root: Path) -> str:
    if is_url(ref):
        return f'<img src="{html.escape(ref)}" alt="" loading="lazy">'
    path = Path(ref) if Path(ref).is_absolute() else image_root / ref
    try:
        return f'<img src="{_thumbnail(path)}" alt="{html.escape(ref)}">'
    except (ImageDecodeError, OSError) as e:
        return f'<span class="none" title="{html.escape(str(e))}">{html.escape(ref)}</span>'


def _query_photo(image: object) -> str:
    """The query's photo, for image queries given as a path (relative to the working folder) or a URL."""
    if not isinstance(image, (str, Path)) or not str(image):
        return ""
    ref = str(image)
    caption = f"<figcaption>query photo: {html.escape(ref)}</figcaption>"
    return f"<figure class='query'>{_photo(ref, Path.cwd())}{caption}</figure>"


def _fmt(value: float | None, digits: int = 3) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def _breakdown(r: Result) -> str:
    """A hit's per-signal table; the contribution cell shows its share of the score as a bar."""
    rows = [
        "<table class='sig'><colgroup><col class='name'><col><col><col><col></colgroup>"
        "<tr><th>signal</th><th>raw</th><th>norm</th><th>weight</th><th>+</th></tr>"
    ]
    for name, s in r.signals.items():
        share = max(0.0, min(1.0, s.contribution / r.score if r.score > 0 else 0.0)) * 100
        rows.append(
            f"<tr><td title='{html.escape(name)}'>{html.escape(name)}</td><td class='num'>{_fmt(s.raw)}</td>"
            f"<td class='num'>{_fmt(s.normalized, 2)}</td><td class='num'>{s.weight:.2f}</td>"
            f"<td class='num share' style='--share:{share:.0f}%'>{s.contribution:.3f}</td></tr>"
        )
    rows.append("</table>")
    return "".join(rows)


def render_report(response: SearchResponse, query: Mapping[str, Any], *, image_root: str | Path = ".") -> str:
    """The HTML page for a search response.

    Args:
        response: what `Searcher.search` returned (with `explain=True` for the breakdowns).
        query: what was asked (shown at the top), e.g. {"text": "...", "user": "..."}.
        image_root: folder that relative image paths in the payloads are relative to.
    """
    root = Path(image_root)
    asked = ", ".join(f"{k}={v!r}" for k, v in query.items() if v not in (None, (), [], {}))
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>mmsearch results</title>",
        f"<style>{_CSS}</style></head><body>",
        f"<h1>mmsearch: {html.escape(asked) or 'results'}</h1>",
        _query_photo(query.get("image")),
        f"<p>fusion <b>{html.escape(response.fusion)}</b>"
        + (f" ({html.escape(response.normalization)})" if response.fusion == "wsum" else "")
        + f", computed in {html.escape(response.engine)}, {response.candidates} candidates scored on every signal.</p>",
        "<table class='sig'><tr><th>signal</th><th>vector</th><th>weight</th><th>from</th></tr>",
    ]
    for use in response.signals:
        parts.append(
            f"<tr><td>{html.escape(use.name)}</td><td>{html.escape(use.vector)}</td>"
            f"<td class='num'>{use.weight:.3f}</td><td>{html.escape(', '.join(use.inputs))}</td></tr>"
        )
    parts.append("</table>")
    parts += [f"<p class='note'>{html.escape(n)}</p>" for n in response.notes]
    parts.append("<div class='hits'>")
    for rank, r in enumerate(response, 1):
        title = r.payload.get("title") or r.payload.get("name") or ""
        images = r.payload.get("images") or []
        images = [images] if isinstance(images, str) else list(images)
        photos = "".join(_photo(str(ref), root) for ref in images[:MAX_PHOTOS]) or "<span class='none'>no photo</span>"
        parts.append(
            f"<div class='hit'><div>#{rank} <span class='score'>{r.score:.4f}</span> "
            f"<span class='id'>{html.escape(r.id)}</span></div><div>{html.escape(str(title))}</div>"
            f"<div class='photos'>{photos}</div>"
        )
        parts.append(_breakdown(r) if r.signals else "")
        parts.append("</div>")
    parts.append("</div></body></html>")
    return "\n".join(parts)


def write_report(
    path: str | Path, response: SearchResponse, query: Mapping[str, Any], *, image_root: str | Path = "."
) -> Path:
    """Write `render_report(...)` to `path` (UTF-8) and return the path.

    Raises:
        ConfigError: the file cannot be written (no such folder, no permission).
    """
    html = render_report(response, query, image_root=image_root)
    with writing(path, "HTML report") as out:
        out.write_text(html, encoding="utf-8")
    return out


__all__ = ["render_report", "thumbnail_jpeg", "write_report"]
