"""BloomWriteManifestOperator: the per-image manifest of a batch (the provider's format), as a file."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException
from airflow.sdk import Asset, BaseOperator

from airflow_provider_bloom.exceptions import BloomInputError
from airflow_provider_bloom.lineage import manifest_location, storage_dataset
from airflow_provider_bloom.logic.batch.manifest import image_records, manifest_text
from airflow_provider_bloom.logic.provenance import asset_extra, manifest_images

if TYPE_CHECKING:
    from airflow.sdk import Context


def write_manifest(records: Iterable[Mapping[str, Any]], path: Any) -> list[dict[str, Any]]:
    """Write the per-image manifest of a batch's records to ``path`` and return its records.

    ``records``: a batch manifest's records (``batch.manifest.from_jsonl(text)``). ``path``: a local
    path, an ``ObjectStoragePath`` or a URL (``s3://...``); a name ending in ``.json`` gets a JSON array
    (indented), any other name JSON Lines (one record per line).
    """
    from pathlib import Path

    from airflow_provider_bloom.tasks.storage import is_local, storage_path

    entries = image_records(records)
    target = storage_path(path)
    if is_local(target):
        Path(target.path).parent.mkdir(parents=True, exist_ok=True)
    target.write_text(manifest_text(entries, str(target)))
    return entries


class BloomWriteManifestOperator(BaseOperator):
    """Write the per-image manifest of a batch: one record per image, every row accounted for.

    The format (prompt, the row's own columns, model, size, ratio, action, source image, lineage,
    status, failure reason, attempts, credits, file, bytes, review decision) is documented in
    ``docs/howto/manifest.md``. Sends nothing to Bloom.

    :param manifest: a batch task's output (its summary, e.g. the download's), or a batch manifest's
        location. Templated.
    :param path: where the manifest goes: a local path, an ``ObjectStoragePath`` or a URL; a name
        ending in ``.json`` gets a JSON array, any other JSON Lines. Templated.
    :param fail_if_none_completed: fail the task when no image of the batch completed (default True).
    :param return_records: return the records (fine for a few hundred images) instead of the summary
        ``{"manifest", "images", "counts", "credits", "files"}`` (the default: small at any size).

    Every ``Asset`` in ``outlets`` gets an event whose ``extra`` holds ``manifest`` (the location),
    ``images`` (how many completed) and ``bloom_provenance`` (the first images' provenance, bounded).
    """

    template_fields: Sequence[str] = ("manifest", "path")
    ui_color = "#e2f0e8"

    def __init__(
        self,
        *,
        manifest: Any,
        path: Any,
        fail_if_none_completed: bool = True,
        return_records: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.manifest = manifest
        self.path = path
        self.fail_if_none_completed = fail_if_none_completed
        self.return_records = return_records

    def execute(self, context: Context) -> Any:
        from airflow_provider_bloom.operators.batch import load_manifest

        records = load_manifest(self.manifest, context, "manifest")
        if records is None:
            raise BloomInputError(
                "manifest",
                f"must be a batch task's output or a manifest's location; got {self.manifest!r:.120}",
            )
        if not str(self.path or "").strip():
            raise BloomInputError("path", "is required: where the manifest goes")
        entries = write_manifest(records, self.path)
        self._bloom_records, self._bloom_written = records, str(self.path)
        counts = Counter(str(e["status"]) for e in entries)
        completed = counts.get("completed", 0)
        self.log.info("Manifest of %d image(s) (%s): %s", len(entries), dict(counts), self.path)
        if not completed and self.fail_if_none_completed:
            reasons = sorted({str(e["failure_reason"]) for e in entries})
            raise AirflowFailException(
                f"None of the {len(entries)} images completed (reasons: {reasons}); see {self.path}"
            )
        done = [e for e in entries if e["status"] == "completed"]
        extra = asset_extra(
            manifest_images(records)[:1000],
            manifest=str(self.path),
            images=completed,
        )
        events = context.get("outlet_events")
        for outlet in self.outlets or ():
            if events is not None and isinstance(outlet, Asset):
                events[outlet].extra = extra
        if self.return_records:
            return entries
        return {
            "manifest": str(self.path),
            "images": len(entries),
            "counts": {status: counts[status] for status in sorted(counts)},
            "credits": sum(e["total_credits"] or 0 for e in entries),
            "files": sum(1 for e in done if e.get("file")),
        }

    def get_openlineage_facets_on_complete(self, task_instance: Any) -> Any:
        """OpenLineage: the batch manifest in, the per-image manifest out, the images' provenance."""
        from airflow_provider_bloom.lineage import operator_lineage

        source = manifest_location(self.manifest)
        return operator_lineage(
            inputs=[storage_dataset(source)] if source else [],
            outputs=[storage_dataset(str(self.path))],
            images=manifest_images(getattr(self, "_bloom_records", None) or []),
            manifest=str(self.path),
        )


__all__ = ["BloomWriteManifestOperator", "write_manifest"]
