"""The Markdown body a reviewer reads: an instruction block and a table, one row per image.

Everything that comes from users or from Bloom (prompts, a manifest's columns, URLs) is escaped so that
it shows as text; a thumbnail is Bloom's ``imageUrl`` short link, never a URL holding a secret.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import quote, urljoin, urlparse

from airflow_provider_bloom.logic.batch.manifest import STEP_FIELDS
from airflow_provider_bloom.logic.batch.rows import GENERATE_FIELDS
from airflow_provider_bloom.logic.review.answers import APPROVE_ALL, REJECT_ALL, SUBMIT

#: Record fields that are not the user's own columns (not shown as metadata in the body).
_KNOWN_FIELDS = frozenset(
    {
        *GENERATE_FIELDS,
        *STEP_FIELDS,
        "row",
        "variant_group_id",
        "lineage",
        "source_image_id",
        "review",
        "review_history",
        "attempt_history",
        "model",
        "defaults",
    }
)
_MD_SPECIAL = re.compile(r"([\\`*_\[\]{}()#+!|~>])")


def _md(text: Any, limit: int = 400) -> str:
    """User text safe inside a Markdown table cell: no markup, no raw HTML, one line."""
    value = " ".join(str(text).split())
    if len(value) > limit:
        value = value[: limit - 1] + "…"
    value = value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
    return _MD_SPECIAL.sub(r"\\\1", value)


#: Characters left as they are in a thumbnail URL (RFC 3986's, minus those Markdown or a table reads).
URL_SAFE = "/:?&=%#~-._+,;@!$*"


def thumbnail_url(record: Mapping[str, Any], base_url: str, secrets: Iterable[str] = ()) -> str | None:
    """The URL the reviewer's browser loads for a thumbnail: Bloom's ``imageUrl`` short link.

    ``/img/{id}`` answers with a redirect to a freshly signed download URL each time it is loaded, so
    it works for as long as the review waits (a signed URL from ``includeUrls=true`` would expire) and
    it needs no API key. A relative link is made absolute with the connection's origin. Only http(s);
    a URL holding a secret is never used."""
    url = record.get("imageUrl")
    if not isinstance(url, str) or not url.strip():
        return None
    url = url.strip()
    if url.startswith("/"):
        url = urljoin(base_url, url)
    parsed = urlparse(url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        return None
    if any(secret and secret in url for secret in secrets):
        return None
    # Percent-encode whatever could end the Markdown link or the table cell (spaces, brackets, |, <, >,
    # quotes, backticks, newlines) in a URL the server chose; a server's own %-escapes stay as they are.
    return quote(url, safe=URL_SAFE)


def _metadata(record: Mapping[str, Any]) -> str:
    parts = []
    if record.get("row") is not None:
        parts.append(f"row {record['row']}")
    for name, value in record.items():
        if name in _KNOWN_FIELDS or name.startswith("_") or value in (None, "", [], {}):
            continue
        if isinstance(value, (dict, list)):
            value = json.dumps(value, default=str)
        parts.append(f"{name}: {value}")
    return _md(", ".join(parts), 200) if parts else ""


def _size(bloom: Mapping[str, Any], record: Mapping[str, Any]) -> str:
    width, height = bloom.get("width"), bloom.get("height")
    dims = (
        f"{int(width)}×{int(height)}"
        if isinstance(width, (int, float)) and isinstance(height, (int, float))
        else ""
    )
    ratio = bloom.get("aspectRatio") or record.get("aspect_ratio")
    label = record.get("image_size")
    return " ".join(_md(p) for p in (dims, f"({ratio})" if ratio else "", label or "") if p)


def body_rows(
    items: Sequence[Mapping[str, Any]],
    bloom: Mapping[str, Mapping[str, Any]],
    records: Sequence[Mapping[str, Any]] | None,
    base_url: str,
    secrets: Iterable[str] = (),
) -> tuple[list[dict[str, Any]], list[str]]:
    """(the body's rows for ``items``, the ids Bloom has no record of).

    ``bloom`` holds Bloom's records by id; ``records`` the manifest (None: each item's ``given`` record)."""
    rows = []
    missing = []
    for n, item in enumerate(items, start=1):
        found = bloom.get(item["id"])
        if found is None:
            missing.append(item["id"])
            continue
        record = records[item["record"]] if records is not None else (item.get("given") or {})
        rows.append(
            {
                "n": n,
                "id": item["id"],
                "thumbnail": thumbnail_url(found, base_url, secrets),
                "prompt": _md(found.get("prompt") or record.get("prompt") or ""),
                "metadata": _metadata(record),
                "size": _size(found, record),
                "status": _md(found.get("status") or ""),
            }
        )
    return rows, missing


def render_body(
    items: Sequence[Mapping[str, Any]],
    intro: str | None,
    *,
    page: int,
    pages: int,
    round_: int,
    total: int,
) -> str:
    """The Markdown body of one review: an instruction block and a GFM table, one row per image.

    Each item: ``{"n", "id", "thumbnail", "prompt", "metadata", "size", "status"}``."""
    lines = []
    if intro:
        lines += [intro.strip(), ""]
    where = f"page {page} of {pages}, " if pages > 1 else ""
    lines += [
        f"**{len(items)} image(s)** to review ({where}{total} in all, round {round_}).",
        "",
        f"- **{APPROVE_ALL}** / **{REJECT_ALL}**: one decision for every image below.",
        f"- **{SUBMIT}**: every image is approved except those you list, one per line, by its number "
        "(#) or id: **reject** `3: off-brand colours`, **edit** `5: warmer light, no text` "
        "(your words are the edit prompt).",
        "",
        "| # | Image | Prompt | Details | Size | Status |",
        "|---|---|---|---|---|---|",
    ]
    for item in items:
        url = item["thumbnail"]
        thumb = f"[![image {item['n']}]({url})]({url})" if url else "(no image link)"
        details = f"`{item['id']}`" + (f" {item['metadata']}" if item["metadata"] else "")
        lines.append(
            f"| {item['n']} | {thumb} | {item['prompt']} | {details} | {item['size']} | {item['status']} |"
        )
    return "\n".join(lines) + "\n"


__all__ = ["URL_SAFE", "body_rows", "render_body", "thumbnail_url"]
