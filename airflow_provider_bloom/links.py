"""Operator extra links: one "Bloom image" button per image a task created or waited for.

Airflow declares extra links per operator class, so the number of buttons is fixed: a task shows
"Bloom image" (its first image) and "Bloom image 2" ... "Bloom image 10"; the UI hides a button without
a URL, so a task with three images shows three. Each button opens Bloom's short image page
``<origin>/img/{id}`` (never a signed or keyed URL). Past the tenth image, the ids are in the task's
return value.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey

MAX_IMAGE_LINKS = 10
#: The XCom key under which a batch task stores its manifest's location.
MANIFEST_XCOM_KEY = "bloom_manifest_url"


def image_link(base_url: str, image_id: str) -> str:
    """Bloom's short image URL (``/img/{id}`` on the API's origin); never a signed or keyed URL."""
    parsed = urlparse(base_url)
    return f"{parsed.scheme}://{parsed.netloc}/img/{image_id}"


class BloomImageLink(BaseOperatorLink):
    """Link to the first image a Bloom task produced or waited for.

    The task stores the URL in XCom under :attr:`xcom_key` while it runs (:meth:`persist_all`);
    the UI reads it back from there.
    """

    name = "Bloom image"
    position = 0  # which of the task's images this button opens

    @classmethod
    def persist(cls, context: Any, base_url: str, image_id: str) -> str:
        url = image_link(base_url, image_id)
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
        return url

    @staticmethod
    def persist_all(context: Any, base_url: str, image_ids: Sequence[str]) -> list[str]:
        """Store one link per image (up to :data:`MAX_IMAGE_LINKS`); returns the URLs stored."""
        return [
            link.persist(context, base_url, image_id)
            for link, image_id in zip(IMAGE_LINK_CLASSES, image_ids, strict=False)
            if image_id
        ]

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value if isinstance(value, str) else ""


def _numbered(n: int) -> type[BloomImageLink]:
    return type(
        f"BloomImageLink{n}",
        (BloomImageLink,),
        {"name": f"Bloom image {n}", "position": n - 1, "__module__": __name__},
    )


# Module-level names, so that Airflow can import each class from the provider info's "extra-links".
BloomImageLink2 = _numbered(2)
BloomImageLink3 = _numbered(3)
BloomImageLink4 = _numbered(4)
BloomImageLink5 = _numbered(5)
BloomImageLink6 = _numbered(6)
BloomImageLink7 = _numbered(7)
BloomImageLink8 = _numbered(8)
BloomImageLink9 = _numbered(9)
BloomImageLink10 = _numbered(10)

IMAGE_LINK_CLASSES: tuple[type[BloomImageLink], ...] = (
    BloomImageLink,
    BloomImageLink2,
    BloomImageLink3,
    BloomImageLink4,
    BloomImageLink5,
    BloomImageLink6,
    BloomImageLink7,
    BloomImageLink8,
    BloomImageLink9,
    BloomImageLink10,
)
assert len(IMAGE_LINK_CLASSES) == MAX_IMAGE_LINKS


def manifest_link(location: str) -> str:
    """A URL people can open for a manifest: the cloud console for s3:// and gs://, else the location."""
    parsed = urlparse(location)
    bucket = parsed.hostname or ""
    key = parsed.path.lstrip("/")
    if parsed.scheme in ("s3", "s3a"):
        return f"https://s3.console.aws.amazon.com/s3/object/{bucket}?prefix={key}"
    if parsed.scheme in ("gs", "gcs"):
        return f"https://console.cloud.google.com/storage/browser/_details/{bucket}/{key}"
    return location


class BloomManifestLink(BaseOperatorLink):
    """Link to a batch task's manifest (JSON Lines, one record per row); stored by the task in XCom."""

    name = "Bloom batch manifest"

    @property
    def xcom_key(self) -> str:
        return MANIFEST_XCOM_KEY

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return manifest_link(value) if isinstance(value, str) else ""


def image_links() -> tuple[BloomImageLink, ...]:
    """The ``operator_extra_links`` of every operator that creates or waits for images."""
    return tuple(cls() for cls in IMAGE_LINK_CLASSES)
