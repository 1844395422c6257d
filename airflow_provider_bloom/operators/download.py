"""BloomDownloadImagesOperator: completed Bloom images to any ``ObjectStoragePath`` (file://, s3://, gs://...).

Each file is streamed from Bloom's image URL (following Bloom's redirect to its signed storage URL;
the API key only ever goes to the connection's own origin), checked while it streams (a size cap,
the Content-Type against the file's magic bytes), written under a temporary name in the target
directory and then moved to its final name, so a partial download never sits at the final path.
"""

from __future__ import annotations

import math
import string
import time
import uuid
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow_provider_bloom.exceptions import BloomDownloadError, BloomError, BloomInputError
from airflow_provider_bloom.lineage import storage_dataset, upstream_provenance
from airflow_provider_bloom.links import MANIFEST_XCOM_KEY
from airflow_provider_bloom.logic.batch.manifest import completed_images, summary, to_jsonl
from airflow_provider_bloom.logic.provenance import (
    asset_extra,
    from_bloom_record,
    from_manifest_record,
    merged,
)
from airflow_provider_bloom.logic.records import ImageStatus, flatten_image_ids
from airflow_provider_bloom.tasks.base import BloomBaseOperator, bloom_errors, known_at_parse_time
from airflow_provider_bloom.tasks.storage import storage_path

if TYPE_CHECKING:
    import requests
    from airflow.sdk import Context, ObjectStoragePath

DEFAULT_MAX_BYTES = 50 * 1024 * 1024
#: Seconds one file's download may take in total (a server dribbling bytes cannot hold the slot longer).
DEFAULT_DOWNLOAD_TIMEOUT = 300.0
DEFAULT_ASSET_ALIAS = "bloom-downloads"
CHUNK_BYTES = 64 * 1024
#: Bytes needed to recognise every supported format (SVG's ``<svg`` may follow an XML prologue).
SNIFF_BYTES = 2048
NAME_FIELDS = ("image_id", "ext", "index")
_IMAGE_SUFFIXES = frozenset({".png", ".jpg", ".jpeg", ".webp", ".avif", ".svg"})
_GENERIC_TYPES = frozenset({"", "application/octet-stream", "binary/octet-stream"})
_LOCAL_PROTOCOLS = frozenset({"", "file", "local"})


@dataclass
class _Planned:
    index: int
    image_id: str
    url: str
    target: ObjectStoragePath
    ext: str  # predicted from the record; the file's bytes decide


def check_name_template(template: str) -> None:
    """Only ``{image_id}``, ``{ext}`` and ``{index}`` may appear; raises BloomInputError otherwise."""
    try:
        fields = [name for _, name, _, _ in string.Formatter().parse(template) if name is not None]
    except ValueError as exc:
        raise BloomInputError("name_template", f"is not a valid format string ({exc})") from None
    unknown = sorted({f for f in fields if f.split(".")[0].split("[")[0] not in NAME_FIELDS} - {""})
    if unknown or "" in fields:
        allowed = ", ".join("{" + f + "}" for f in NAME_FIELDS)
        bad = ", ".join("{" + f + "}" for f in unknown) or "{}"
        raise BloomInputError("name_template", f"unknown placeholder {bad}; use {allowed}")
    if "://" in template:
        raise BloomInputError(
            "name_template", f"must be a file name under destination, not a URL; got {template[:80]!r}"
        )


def render_name(template: str, image_id: str, index: int, ext: str) -> str:
    """The relative file name of one image; the extension follows the real type of the file.

    ``{ext}`` holds the dot (``.png``); ``name.{ext}`` is read as ``name{ext}``, not ``name..png``.
    """
    check_name_template(template)
    template = template.replace(".{ext}", "{ext}")
    name = template.format(image_id=image_id, ext=ext, index=index).strip()
    if "{ext}" not in template:
        pure = PurePosixPath(name)
        if pure.suffix.lower() in _IMAGE_SUFFIXES:
            name = str(pure.with_suffix(ext))
        elif not pure.suffix:
            name += ext
    parts = PurePosixPath(name).parts
    if not name or name.startswith("/") or ".." in parts or any(p in ("", ".") for p in parts):
        raise BloomInputError("name_template", f"must give a relative file name without '..'; got {name!r}")
    return name


def predicted_extension(record: Mapping[str, Any]) -> str:
    return ".svg" if record.get("actionType") == "vectorize" else ".png"


class BloomDownloadImagesOperator(BloomBaseOperator):
    """Download completed Bloom images to object storage or a local directory.

    Lineage: each image's provenance (prompt, model, size, action, source image...: what the task that
    made it recorded, or the batch manifest) goes into the ``extra`` of its Asset event and, with the
    OpenLineage provider, into the task's events, whose outputs are exactly the final files (the
    temporary ``.part`` files are never reported, to OpenLineage or to Airflow's hook lineage).

    :param image_ids: ids or image records (a sensor's or an operator's output), or a batch manifest
        (a batch task's output, or its manifest's location): then every completed image of it is
        downloaded, and a manifest of the files is written (see ``manifest_path``). Templated.
    :param destination: the target directory: an ``ObjectStoragePath``, a ``s3://bucket/prefix``-style
        URL, or a local path. Templated.
    :param name_template: file name under ``destination``, after Jinja: ``{image_id}``, ``{ext}`` (the
        file's real extension with its dot, ``.png``/``.svg``/...; ``{image_id}.{ext}`` means the same as
        ``{image_id}{ext}``) and ``{index}`` are filled per image, e.g.
        ``"{{ ds }}/{image_id}.png"`` (an SVG then gets ``.svg``). Templated.
    :param destination_conn_id: the Airflow connection of the object store (if not in the path).
    :param overwrite: replace files that exist; by default they are kept and not downloaded again.
    :param max_bytes: refuse a file larger than this (default 50 MB), counted on the decoded bytes
        (a ``Content-Encoding: gzip`` body is measured after decoding).
    :param download_timeout: seconds one file's download may take from the request to the last byte
        (default 300). Checked between reads, each of which is bounded by the connection's read
        timeout, so a file gives up at most one read timeout after it. The task then fails (and may
        be retried by Airflow); nothing partial is left behind.
    :param asset_alias: name of the ``AssetAlias`` outlet through which an ``Asset`` event is emitted
        for every file written (``None``: no events).
    :param manifest_path: with a batch manifest as input, where the manifest of the files goes (its
        records plus ``file`` and ``bytes``; default ``<destination>/manifest.jsonl``). Templated.
    :return: the path of each image's file, in input order (written now, or already there); with a
        batch manifest as input, that manifest's small summary instead (``{"manifest", "counts", "files",
        ...}``), and one Asset event for the manifest rather than one per file.
    """

    template_fields: Sequence[str] = ("image_ids", "destination", "name_template", "manifest_path")
    ui_color = "#e2f0e8"

    def __init__(
        self,
        *,
        image_ids: Any,
        destination: Any,
        name_template: str = "{image_id}{ext}",
        destination_conn_id: str | None = None,
        overwrite: bool = False,
        max_bytes: int = DEFAULT_MAX_BYTES,
        download_timeout: float = DEFAULT_DOWNLOAD_TIMEOUT,
        asset_alias: str | None = DEFAULT_ASSET_ALIAS,
        manifest_path: Any = None,
        **kwargs: Any,
    ) -> None:
        if asset_alias:
            from airflow.sdk import AssetAlias

            kwargs["outlets"] = [*(kwargs.get("outlets") or []), AssetAlias(name=asset_alias)]
        super().__init__(**kwargs)
        if isinstance(max_bytes, bool) or not isinstance(max_bytes, int) or max_bytes <= 0:
            raise BloomInputError("max_bytes", f"must be a positive number of bytes; got {max_bytes!r}")
        if (
            isinstance(download_timeout, bool)
            or not isinstance(download_timeout, (int, float))
            or not math.isfinite(download_timeout)
            or download_timeout <= 0
        ):
            raise BloomInputError(
                "download_timeout", f"must be a positive, finite number of seconds; got {download_timeout!r}"
            )
        if isinstance(name_template, str) and known_at_parse_time(name_template):
            check_name_template(name_template)
        self.image_ids = image_ids
        self.destination = destination
        self.name_template = name_template
        self.destination_conn_id = destination_conn_id
        self.overwrite = overwrite
        self.max_bytes = max_bytes
        self.download_timeout = float(download_timeout)
        self.asset_alias = asset_alias
        self.manifest_path = manifest_path

    # -- plan --------------------------------------------------------------------------------
    def _target_dir(self) -> ObjectStoragePath:
        from airflow.sdk import ObjectStoragePath

        dest = self.destination
        if isinstance(dest, ObjectStoragePath):
            return dest
        text = str(dest or "").strip()
        if not text:
            raise BloomInputError("destination", "is required: a directory path or an object storage URL")
        if "://" not in text:
            text = "file://" + str(PurePosixPath(text))
            if not text.startswith("file:///"):
                raise BloomInputError("destination", f"a local path must be absolute; got {dest!r}")
        return ObjectStoragePath(text, conn_id=self.destination_conn_id)

    def _plan(self, ids: list[str]) -> list[_Planned]:
        check_name_template(self.name_template)
        target = self._target_dir()
        records = self.records_by_id(ids)
        self._bloom_records = records
        problems: list[str] = []
        planned: list[_Planned] = []
        names: dict[str, str] = {}
        for index, image_id in enumerate(ids):
            record = records.get(image_id)
            status = record.get("status") if record else None
            if record is None:
                problems.append(f"image {image_id} was not found (deleted, or not yours)")
            elif status not in (None, ImageStatus.COMPLETED):
                why = f" ({record.get('failureReason')})" if status == ImageStatus.FAILED else ""
                problems.append(
                    f"image {image_id} is {status}{why}, not completed: there is no file to download"
                )
            elif not record.get("imageUrl"):
                problems.append(f"image {image_id} has no imageUrl")
            else:
                ext = predicted_extension(record)
                name = render_name(self.name_template, image_id, index, ext)
                if name in names:
                    raise BloomInputError(
                        "name_template",
                        f"gives the same name {name!r} to images {names[name]} and {image_id}",
                    )
                names[name] = image_id
                planned.append(_Planned(index, image_id, str(record["imageUrl"]), target, ext))
        if problems:
            raise BloomInputError("image_ids", "; ".join(problems) + ". Nothing was downloaded.")
        return planned

    # -- run ---------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        from airflow_provider_bloom.operators.batch import load_manifest

        with bloom_errors("Bloom download"):
            manifest = load_manifest(self.image_ids, context, "image_ids")
            if manifest is not None:
                ids = [image_id for record in manifest for image_id in completed_images(record)]
                if not ids:
                    raise BloomInputError("image_ids", "the manifest holds no completed image")
            else:
                ids = flatten_image_ids(self.image_ids, "image_ids")
            planned = self._plan(ids)
        known = self._provenance(context, manifest, ids)
        self._bloom_files: list[tuple[Any, dict[str, Any]]] = []
        written: list[str] = []
        results: list[str] = []
        for item in planned:
            with bloom_errors(f"Downloading Bloom image {item.image_id}"):
                path, fresh = self._download(item)
            results.append(str(path))
            self._bloom_files.append((path, known.get(item.image_id) or {"image_id": item.image_id}))
            if fresh:
                written.append(str(path))
                if manifest is None:
                    self._emit_asset(context, path, asset_extra([self._bloom_files[-1][1]]))
            if len(planned) > 100 and len(results) % 500 == 0:
                self.log.info("Downloaded %d of %d file(s)", len(results), len(planned))
        self.log.info("Wrote %d file(s), kept %d existing", len(written), len(results) - len(written))
        if manifest is None:
            return results
        return self._write_manifest(context, manifest, dict(zip(ids, results, strict=True)), len(written))

    def _write_manifest(
        self, context: Context, manifest: list[dict[str, Any]], files: Mapping[str, str], written: int
    ) -> dict[str, Any]:
        """The batch manifest with each record's files (``file``: the first, ``files``: all), their
        sizes (``sizes``, in the order of ``files``) and their total (``bytes``)."""
        from airflow.sdk import ObjectStoragePath

        records = []
        for record in manifest:
            paths = [files[i] for i in completed_images(record) if i in files]
            sizes = [ObjectStoragePath(p).stat().get("size") for p in paths]
            records.append(
                {
                    **record,
                    "file": paths[0] if paths else None,
                    "files": paths,
                    "bytes": sum(int(size or 0) for size in sizes) if paths else None,
                    "sizes": [int(size or 0) for size in sizes],
                }
            )
        target = self._target_dir() / "manifest.jsonl" if not self.manifest_path else None
        path = target if target is not None else storage_path(self.manifest_path)
        path.write_text(to_jsonl(records))
        context["ti"].xcom_push(key=MANIFEST_XCOM_KEY, value=str(path))
        self._bloom_manifest = path
        images = [record for _, record in self._bloom_files]
        self._emit_asset(context, path, asset_extra(images, bloom_manifest=str(path), files=len(files)))
        self.log.info("Manifest of the files: %s", path)
        return summary(str(path), records, "download", credits=0, files=len(files), written=written)

    def _download(self, item: _Planned) -> tuple[ObjectStoragePath, bool]:
        """Download one image; returns its final path and whether it was written now."""
        import requests

        from airflow_provider_bloom.client.files import extension_for

        predicted = item.target / render_name(self.name_template, item.image_id, item.index, item.ext)
        if predicted.exists() and not self.overwrite:
            self.log.info("Keeping %s (exists; overwrite=False)", predicted)
            return predicted, False
        host = urlparse(self.hook.client.absolute_url(item.url)).netloc
        deadline = time.monotonic() + self.download_timeout
        try:
            with self.hook.client.open_download(item.url) as resp:
                mime, body = self._checked_body(item.image_id, resp, deadline)
                ext = extension_for(mime)
                final = item.target / render_name(self.name_template, item.image_id, item.index, ext)
                if final != predicted and final.exists() and not self.overwrite:
                    self.log.info("Keeping %s (exists; overwrite=False)", final)
                    return final, False
                self._write_atomically(item.image_id, final, body)
        except BloomDownloadError:
            raise
        except BloomError as exc:
            raise BloomDownloadError(
                f"image {item.image_id}: download (from {host} and its redirect) failed: {exc}",
                permanent=exc.permanent,
            ) from exc
        except requests.RequestException as exc:
            raise BloomDownloadError(
                f"image {item.image_id}: the download (from {host} and its redirect) broke off "
                f"({type(exc).__name__})",
                permanent=False,
            ) from exc
        self.log.info("Wrote %s (%s)", final, mime)
        return final, True

    def _checked_body(
        self, image_id: str, resp: requests.Response, deadline: float
    ) -> tuple[str, Iterator[bytes]]:
        """Check the headers and the first bytes; return the file's type and its body as checked chunks."""
        from airflow_provider_bloom.client.files import sniff_image_type

        declared = (resp.headers.get("content-type") or "").split(";")[0].strip().lower()
        length = resp.headers.get("content-length")
        encoding = (resp.headers.get("content-encoding") or "identity").strip().lower()
        # Content-Length counts the bytes on the wire; with a Content-Encoding those are not the
        # file's bytes, so the cap and the completeness check apply to the decoded bytes only.
        expected = int(length) if length and length.isdigit() and encoding == "identity" else None
        if expected is not None:
            self._check_cap(image_id, expected)
        if declared not in _GENERIC_TYPES and not declared.startswith("image/"):
            raise BloomDownloadError(
                f"image {image_id}: the server sent {declared!r}, not an image", permanent=True
            )
        chunks = self._read(image_id, resp, deadline)
        head = b""
        for chunk in chunks:
            head += chunk
            if len(head) >= SNIFF_BYTES:
                break
        self._check_cap(image_id, len(head))
        mime = sniff_image_type(head)
        if mime is None:
            raise BloomDownloadError(
                f"image {image_id}: the file is not a PNG, JPEG, WebP, AVIF or SVG image "
                f"(Content-Type {declared or 'missing'})",
                permanent=True,
            )
        if declared not in _GENERIC_TYPES and declared != mime:
            raise BloomDownloadError(
                f"image {image_id}: Content-Type says {declared} but the bytes are {mime}", permanent=True
            )

        def body() -> Iterator[bytes]:
            total = len(head)
            yield head
            for chunk in chunks:
                total += len(chunk)
                self._check_cap(image_id, total)
                yield chunk
            if expected is not None and total != expected:
                raise BloomDownloadError(
                    f"image {image_id}: got {total} of {expected} bytes (the download was cut short)",
                    permanent=False,
                )

        return mime, body()

    def _read(self, image_id: str, resp: requests.Response, deadline: float) -> Iterator[bytes]:
        """The decoded body in chunks, giving up once the file's deadline has passed.

        ``read1`` returns what one read brings (``iter_content`` would block until a whole
        chunk arrived, however slowly it dribbles in).
        """
        import urllib3.exceptions

        raw = resp.raw
        while True:
            if time.monotonic() > deadline:
                raise BloomDownloadError(
                    f"image {image_id}: the download took longer than download_timeout="
                    f"{self.download_timeout:g}s (the server is sending too slowly)",
                    permanent=False,
                )
            try:
                data = raw.read1(CHUNK_BYTES, decode_content=True)
            except urllib3.exceptions.DecodeError as exc:
                raise BloomDownloadError(
                    f"image {image_id}: the server's {resp.headers.get('content-encoding')} body "
                    "could not be decoded",
                    permanent=False,
                ) from exc
            except urllib3.exceptions.HTTPError as exc:
                raise BloomDownloadError(
                    f"image {image_id}: the download broke off ({type(exc).__name__})", permanent=False
                ) from exc
            if not data:
                return
            yield data

    def _check_cap(self, image_id: str, total: int) -> None:
        if total > self.max_bytes:
            raise BloomDownloadError(
                f"image {image_id}: the file is over the cap of {self.max_bytes} bytes "
                "(raise max_bytes to accept it)",
                permanent=True,
            )

    def _write_atomically(self, image_id: str, final: ObjectStoragePath, chunks: Iterator[bytes]) -> None:
        """Write under a temporary name next to ``final``, then move it there; never leave a partial file.

        The temporary file is written and moved through the store's own filesystem (``fs``), not
        through ``ObjectStoragePath.open``/``move``, which report every path they touch to Airflow's
        hook lineage collector: only the final file is reported, as this task's output.
        """
        parent = final.parent
        if final.protocol in _LOCAL_PROTOCOLS:
            parent.mkdir(parents=True, exist_ok=True)
        temp = parent / f".{final.name}.{uuid.uuid4().hex[:12]}.part"
        try:
            with final.fs.open(temp.path, "wb") as out:
                for chunk in chunks:
                    out.write(chunk)
            final.fs.mv(temp.path, final.path)
        except OSError as exc:
            _remove_quietly(temp)
            raise BloomDownloadError(
                f"image {image_id}: could not write {final} ({type(exc).__name__}: {exc})", permanent=False
            ) from exc
        except BaseException:
            _remove_quietly(temp)
            raise
        _report_output(final)

    # -- lineage -----------------------------------------------------------------------------
    def _provenance(
        self, context: Context, manifest: list[dict[str, Any]] | None, ids: Sequence[str]
    ) -> dict[str, dict[str, Any]]:
        """Each image's provenance: from the batch manifest, or what upstream tasks recorded when they
        made the image (XCom ``bloom_provenance``), its gaps filled from Bloom's own record."""
        if manifest is not None:
            return {
                image_id: from_manifest_record(record, image_id)
                for record in manifest
                for image_id in completed_images(record)
            }
        recorded = upstream_provenance(self, context)
        bloom = getattr(self, "_bloom_records", None) or {}
        return {i: merged(recorded.get(i), from_bloom_record(bloom[i]) if i in bloom else None) for i in ids}

    def _emit_asset(self, context: Context, path: ObjectStoragePath, extra: dict[str, Any]) -> None:
        """One Asset event (through the ``asset_alias`` outlet) for ``path``, with ``extra``."""
        if not self.asset_alias:
            return
        from airflow.sdk import Asset, AssetAlias

        events = context.get("outlet_events")
        if events is None:
            return
        namespace, name = storage_dataset(path)
        uri = f"file://{name}" if namespace == "file" else f"{namespace}/{name}"
        events[AssetAlias(name=self.asset_alias)].add(Asset(uri=uri), extra=extra)

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: exactly the final files out, each with its image's provenance; the batch
        manifest or the Bloom images in (see :mod:`...lineage`)."""
        from airflow_provider_bloom.lineage import download_lineage

        return download_lineage(self)


def _report_output(path: ObjectStoragePath) -> None:
    """Report a final file to Airflow's hook lineage collector (as ``ObjectStoragePath`` would)."""
    try:
        from airflow.sdk.lineage import get_hook_lineage_collector
    except ImportError:  # pragma: no cover - Airflow without hook lineage
        return
    get_hook_lineage_collector().add_output_asset(context=path, uri=str(path))


def _remove_quietly(path: ObjectStoragePath) -> None:
    try:
        if path.exists():
            path.unlink()
    except Exception:  # noqa: S110 - best effort: the original error is what matters
        pass


__all__ = [
    "BloomDownloadError",
    "BloomDownloadImagesOperator",
]
