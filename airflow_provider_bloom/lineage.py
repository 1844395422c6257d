"""How provenance records travel between tasks (XCom), and their OpenLineage form.

The records themselves, and every rule that builds them from a request, a source or a manifest, are
in :mod:`airflow_provider_bloom.logic.provenance` (no I/O, no Airflow). This module is the part that
touches a task: single-image operators push their records to XCom (key :data:`PROVENANCE_XCOM_KEY`);
a later operator finds the records of its source images there (:func:`upstream_provenance`), so a chain
carries its prompt, model and lineage to the last file. Batch operators keep the same fields in their
manifest (:mod:`airflow_provider_bloom.logic.batch.manifest`).

The OpenLineage side (:func:`operator_lineage`, the facet classes) imports the OpenLineage provider
only when called: this module, and every operator, work without it installed. Facets are bounded:
the run facet lists at most :data:`MAX_RUN_FACET_IMAGES` images and says how many there were
(``total``, ``truncated``, and the manifest that lists them all); per-file dataset facets are attached
to at most :data:`MAX_DATASET_FACETS` outputs.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow_provider_bloom.logic.provenance import (
    FIELDS,
    bounded,
    derived_provenance,
    generation_provenance,
    index,
    manifest_images,
    price,
)
from airflow_provider_bloom.tasks.storage import storage_path

if TYPE_CHECKING:
    from airflow.providers.openlineage.extractors import OperatorLineage

#: XCom key of the provenance records a single-image operator pushes (a list, one per new image).
PROVENANCE_XCOM_KEY = "bloom_provenance"
#: Names of the facets in OpenLineage events.
RUN_FACET_NAME = "bloom_provenance"
DATASET_FACET_NAME = "bloom_image"
#: Bounds: images listed in the run facet, outputs given a dataset facet.
MAX_RUN_FACET_IMAGES = 100
MAX_DATASET_FACETS = 1000
#: Where the facets' JSON schema is documented (the provider's lineage how-to).
SCHEMA_URL = "https://github.com/trybloom/airflow-provider-bloom/blob/main/docs/howto/lineage.md"


def derived_records(
    task: Any, context: Any, calls: Sequence[tuple[str, Any]], new_ids: Sequence[str]
) -> list[dict[str, Any]]:
    """The records of a post-processing task's new images (``calls``: (source id, prepared call) in
    the order of ``new_ids``); a source's own record, pushed by an upstream task, carries the chain."""
    known = upstream_provenance(task, context)
    sizes = getattr(task, "_source_sizes", None) or {}  # the sources' sizes, read when they were checked
    prices = getattr(task.hook.settings, "prices", None)
    out = []
    for (source_id, call), new_id in zip(calls, new_ids, strict=False):
        body = getattr(call, "json", None) or {}
        source = known.get(source_id)
        size = (source or {}).get("image_size") or sizes.get(source_id)
        cost = price(task.operation, body, source_size=size, prices=prices)
        out.append(derived_provenance(task.operation, body, new_id, source_id, source, cost))
    return out


def upstream_provenance(task: Any, context: Any) -> dict[str, dict[str, Any]]:
    """The provenance records every upstream task of ``task`` pushed in this run, by image id."""
    ti = context.get("ti") if isinstance(context, Mapping) else context
    try:  # provenance is best effort: a failed lookup must not fail the paid work
        has_dag = task.has_dag() if hasattr(task, "has_dag") else False
        upstream = sorted(task.get_flat_relative_ids(upstream=True)) if has_dag else []
        if ti is None or not upstream:
            return {}
        pulled = ti.xcom_pull(task_ids=upstream, key=PROVENANCE_XCOM_KEY)
    except Exception:
        return {}
    return index([pulled])


def record_provenance(task: Any, context: Any, records: list[dict[str, Any]]) -> None:
    """Keep the records on the operator (for its lineage methods) and push them to XCom."""
    task._bloom_provenance = records
    ti = context.get("ti") if isinstance(context, Mapping) else None
    if ti is not None:
        ti.xcom_push(key=PROVENANCE_XCOM_KEY, value=records)


def append_provenance(task: Any, context: Any, records: list[dict[str, Any]]) -> None:
    """Add ``records`` to what ``task`` recorded in this try (e.g. a refused image made again)."""
    ti = context.get("ti") if isinstance(context, Mapping) else None
    earlier = recorded_provenance(task, ti)
    record_provenance(task, context, [*earlier, *records])


def attempt_records(task: Any, context: Any, key: str, call: Any, ids: Sequence[str]) -> list[dict[str, Any]]:
    """The records of the images a new attempt made (``key``: the source id, or the generation's)."""
    body = getattr(call, "json", None) or {}
    if task.operation == "images.generate":
        return generation_provenance(body, ids, None, prices=getattr(task.hook.settings, "prices", None))
    return derived_records(task, context, [(key, call)], ids)


def recorded_provenance(task: Any, task_instance: Any) -> list[dict[str, Any]]:
    """The records ``task`` made in this try (kept on it, or, after a deferral, from its XCom)."""
    records = getattr(task, "_bloom_provenance", None)
    if records is None and task_instance is not None:
        try:
            records = task_instance.xcom_pull(task_ids=task.task_id, key=PROVENANCE_XCOM_KEY)
        except Exception:
            records = None
    return list(index([records]).values())


# --------------------------------------------------------------------------- dataset names


def storage_dataset(path: Any) -> tuple[str, str]:
    """(namespace, name) of a file by the OpenLineage naming spec: ``file`` + absolute path for a local
    file, ``s3://bucket`` / ``gs://bucket`` (and any other ``<protocol>://<bucket>``) + the key."""
    protocol = getattr(path, "protocol", None)
    if protocol is None:  # a plain string
        parsed = urlparse(str(path))
        if parsed.scheme in ("", "file", "local"):
            return "file", parsed.path or str(path)
        bucket = parsed.netloc.rsplit("@", 1)[-1]
        return f"{parsed.scheme}://{bucket}", parsed.path.lstrip("/")
    if protocol in ("", "file", "local"):
        return "file", "/" + str(path.path).lstrip("/")
    return f"{protocol}://{path.bucket}", str(path.key)


def bloom_dataset(base_url: str, image_id: str) -> tuple[str, str]:
    """(namespace, name) of a Bloom image: ``bloom://<api host>``, ``images/<id>``."""
    return f"bloom://{urlparse(base_url).netloc or base_url}", f"images/{image_id}"


# --------------------------------------------------------------------------- OpenLineage


@functools.cache
def facet_classes() -> tuple[type, type]:
    """The facet classes (built on first use: they subclass the OpenLineage provider's facets)."""
    import attr
    from airflow.providers.common.compat.openlineage.facet import DatasetFacet, RunFacet

    @attr.define
    class BloomProvenanceRunFacet(RunFacet):  # type: ignore[misc,valid-type]
        """The provenance of the images a task made or wrote (at most MAX_RUN_FACET_IMAGES of them)."""

        images: list[dict[str, Any]] = attr.field(factory=list)
        total: int = 0
        truncated: bool = False
        manifest: str | None = None

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL + "#bloomprovenancerunfacet"

    @attr.define
    class BloomImageDatasetFacet(DatasetFacet):  # type: ignore[misc,valid-type]
        """The provenance of the one image a dataset (a file, or a Bloom image) holds."""

        image_id: str = ""
        operation: str | None = None
        action: str | None = None
        prompt: str | None = None
        model: str | None = None
        image_size: str | None = None
        aspect_ratio: str | None = None
        source_image_id: str | None = None
        lineage: list[dict[str, Any]] = attr.field(factory=list)
        variant_group_id: str | None = None
        credits: float | None = None
        review: dict[str, Any] | None = None

        @staticmethod
        def _get_schema() -> str:
            return SCHEMA_URL + "#bloomimagedatasetfacet"

    return BloomProvenanceRunFacet, BloomImageDatasetFacet


def run_facet(images: Sequence[Mapping[str, Any]], manifest: str | None = None) -> Any:
    """A ``BloomProvenanceRunFacet`` of ``images`` (bounded by :data:`MAX_RUN_FACET_IMAGES`)."""
    run_cls, _ = facet_classes()
    return run_cls(**bounded(images, MAX_RUN_FACET_IMAGES), manifest=manifest)


def image_facet(record: Mapping[str, Any]) -> Any:
    """A ``BloomImageDatasetFacet`` of one provenance record."""
    _, image_cls = facet_classes()
    return image_cls(
        **{k: record.get(k) for k in FIELDS if k != "lineage"}, lineage=record.get("lineage") or []
    )


def datasets(
    names: Sequence[tuple[str, str]], records: Sequence[Mapping[str, Any] | None] | None = None
) -> list[Any]:
    """OpenLineage datasets; the first :data:`MAX_DATASET_FACETS` carry their image's facet."""
    from airflow.providers.common.compat.openlineage.facet import Dataset

    out = []
    for i, (namespace, name) in enumerate(names):
        record = records[i] if records is not None and i < len(records) else None
        facets = {DATASET_FACET_NAME: image_facet(record)} if record and i < MAX_DATASET_FACETS else {}
        out.append(Dataset(namespace=namespace, name=name, facets=facets))
    return out


def operator_lineage(
    *,
    inputs: Sequence[tuple[str, str]] = (),
    outputs: Sequence[tuple[str, str]] = (),
    output_records: Sequence[Mapping[str, Any] | None] | None = None,
    input_records: Sequence[Mapping[str, Any] | None] | None = None,
    images: Sequence[Mapping[str, Any]] = (),
    manifest: str | None = None,
) -> OperatorLineage:
    """The ``OperatorLineage`` of a Bloom task: its datasets and the provenance run facet."""
    from airflow.providers.openlineage.extractors import OperatorLineage

    return OperatorLineage(
        inputs=datasets(inputs, input_records),
        outputs=datasets(outputs, output_records),
        run_facets={RUN_FACET_NAME: run_facet(images, manifest)},
    )


def image_work_lineage(task: Any, task_instance: Any) -> OperatorLineage:
    """A single-image operator's lineage: source images in, new images out, their provenance."""
    records = recorded_provenance(task, task_instance)
    base_url = task.hook.settings.base_url
    sources = sorted({r["source_image_id"] for r in records if r.get("source_image_id")})
    return operator_lineage(
        inputs=[bloom_dataset(base_url, i) for i in sources],
        outputs=[bloom_dataset(base_url, r["image_id"]) for r in records],
        output_records=records,
        images=records,
    )


def manifest_location(value: Any, suffixes: tuple[str, ...] = ()) -> str | None:
    """Where a batch input lives (a summary's manifest, a path or URL; ending in one of ``suffixes``
    when given), or None for inline input (rows, ids, records)."""
    from airflow_provider_bloom.logic.batch.manifest import is_summary

    if is_summary(value):
        return str(value["manifest"])
    if isinstance(value, str) and value.strip() and not value.lstrip().startswith(("[", "{")):
        text = value.strip()
        return text if not suffixes or text.lower().endswith(suffixes) else None
    if hasattr(value, "protocol") and hasattr(value, "path"):
        return str(value)
    return None


def batch_lineage(task: Any, records: Sequence[Mapping[str, Any]] | None) -> OperatorLineage:
    """A batch operator's lineage: its input file in, its manifest out, its images' provenance
    (those this step made; the carried-through records are the earlier steps')."""
    manifest = getattr(task, "_bloom_manifest", None)
    mine = [r for r in records or () if r.get("operation") == task.operation]
    source = getattr(task, "rows", None) if hasattr(task, "rows") else getattr(task, "images", None)
    location = manifest_location(source)
    return operator_lineage(
        inputs=[storage_dataset(_as_path(location))] if location else [],
        outputs=[storage_dataset(manifest)] if manifest is not None else [],
        images=manifest_images(mine),
        manifest=str(manifest) if manifest is not None else None,
    )


def download_lineage(task: Any) -> OperatorLineage:
    """The download's lineage: exactly the downloaded files out (never a temporary ``.part`` file),
    each with its image's provenance; the batch manifest in (with one as input), otherwise the Bloom
    images. The manifest of the files a download writes is named in the run facet (``manifest``)."""
    files: list[tuple[Any, dict[str, Any]]] = list(getattr(task, "_bloom_files", None) or [])
    written = getattr(task, "_bloom_manifest", None)
    location = manifest_location(task.image_ids, (".jsonl", ".ndjson"))
    if location is not None:
        inputs = [storage_dataset(_as_path(location))]
    else:
        base_url = task.hook.settings.base_url
        inputs = [bloom_dataset(base_url, record["image_id"]) for _, record in files]
    images = [record for _, record in files]
    return operator_lineage(
        inputs=inputs,
        outputs=[storage_dataset(path) for path, _ in files],
        output_records=images,
        images=images,
        manifest=str(written) if written is not None else None,
    )


def _as_path(location: str) -> Any:
    try:
        return storage_path(location)
    except Exception:
        return location


__all__ = [
    "DATASET_FACET_NAME",
    "MAX_DATASET_FACETS",
    "MAX_RUN_FACET_IMAGES",
    "PROVENANCE_XCOM_KEY",
    "RUN_FACET_NAME",
    "append_provenance",
    "attempt_records",
    "batch_lineage",
    "bloom_dataset",
    "derived_records",
    "download_lineage",
    "image_work_lineage",
    "operator_lineage",
    "record_provenance",
    "storage_dataset",
    "upstream_provenance",
]
