"""Operator extra links: a "Bloom image" button on the task that opens the image in Bloom."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any
from urllib.parse import urlparse

from airflow.providers.common.compat.sdk import BaseOperatorLink, XCom

if TYPE_CHECKING:
    from airflow.providers.common.compat.sdk import BaseOperator
    from airflow.sdk.types import TaskInstanceKey


def image_link(base_url: str, image_id: str) -> str:
    """Bloom's short image URL (``/img/{id}`` on the API's origin); never a signed or keyed URL."""
    parsed = urlparse(base_url)
    return f"{parsed.scheme}://{parsed.netloc}/img/{image_id}"


class BloomImageLink(BaseOperatorLink):
    """Link to the (first) image a Bloom task produced or waited for.

    The task stores the URL in XCom under :attr:`xcom_key` while it runs
    (:meth:`persist`); the UI reads it back from there.
    """

    name = "Bloom image"

    @classmethod
    def persist(cls, context: Any, base_url: str, image_id: str) -> str:
        url = image_link(base_url, image_id)
        context["ti"].xcom_push(key=cls().xcom_key, value=url)
        return url

    def get_link(self, operator: BaseOperator, *, ti_key: TaskInstanceKey) -> str:
        value = XCom.get_value(key=self.xcom_key, ti_key=ti_key)
        return value if isinstance(value, str) else ""
