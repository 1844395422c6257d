"""Brand operators: onboard a brand from a URL, give it a logo, list and delete brands.

Wait for an onboarding with :class:`~airflow_provider_bloom.sensors.brands.BloomBrandSensor`.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom.client.spec import check_uuid
from airflow_provider_bloom.exceptions import BloomError, BloomInputError, BloomNotFoundError
from airflow_provider_bloom.logic.reconcile import Attempt
from airflow_provider_bloom.logic.records import BrandStatus
from airflow_provider_bloom.operators._files import LOGO_UPLOAD, ImageSource, check_image_file, image_source
from airflow_provider_bloom.tasks.base import BloomBaseOperator, bloom_errors
from airflow_provider_bloom.tasks.ledger import has_id

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client.core import PreparedCall

BRAND_LIST_FIELDS = ("id", "name", "url", "status", "imageCount", "workspaceId", "workspaceName")


class BloomCreateBrandOperator(BloomBaseOperator):
    """Onboard a brand from its website or Instagram URL (``POST /brands``).

    Bloom analyses the site in the background (minutes); follow with ``BloomBrandSensor``. The
    request is remembered across tries, so a retried task does not onboard the brand twice.

    :param url: the website or Instagram profile, e.g. ``https://acme.com``. Templated.
    :param workspace_id: team workspace to create it in (default: personal, or the connection's). Templated.
    :param logo_url: an explicit logo (skips Bloom's logo extraction). Templated.
    :param collect_images: collect the site's images into the brand's library (Bloom's default: true).
    :return: the new brand's id.
    """

    template_fields: Sequence[str] = ("url", "workspace_id", "logo_url")
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        url: str,
        workspace_id: str | None = None,
        logo_url: str | None = None,
        collect_images: bool | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.url = url
        self.workspace_id = workspace_id
        self.logo_url = logo_url
        self.collect_images = collect_images

    def execute(self, context: Context) -> str:
        args = {
            "url": self.url,
            "workspace_id": self.workspace_id,
            "logo_url": self.logo_url,
            "collect_images": self.collect_images,
        }
        with bloom_errors(f"Bloom brand onboarding of {self.url}"):
            call = self.hook.prepare("brands.create", body=args)
            answer = self.ledger(context).pay(
                call, functools.partial(self.hook.send, call), recover=self._recover, valid=has_id
            )
        brand_id = str(answer["id"])
        self.log.info("Bloom is onboarding %s as brand %s (%s)", self.url, brand_id, answer.get("status"))
        return brand_id

    def _recover(self, lost: BloomError, attempt: Attempt) -> dict[str, Any]:
        """The brand a lost ``POST /brands`` created: the one brand with this URL created meanwhile."""
        workspace = self.workspace_id or self.hook.settings.workspace_id
        found = self.reconciler().brand(self.url, workspace, lost, attempt)
        brand = found.records[0]
        self.log.warning(
            "Recovered the brand whose onboarding answer was lost: %s (created %s)",
            brand["id"],
            brand.get("createdAt"),
        )
        return {"id": brand["id"], "status": brand.get("status"), "recovered": True}


class BloomUpdateBrandLogoOperator(BloomBaseOperator):
    """Give a brand a logo, from a URL or a file (local path or ``ObjectStoragePath``).

    The usual answer to a ``logo_required`` brand; wait again with ``BloomBrandSensor`` afterwards.

    :param brand_id: the brand. Templated.
    :param logo_url: a direct URL to the logo (PNG, JPEG, SVG or WebP). Templated.
    :param logo_file: a logo file (PNG, JPEG, WebP, SVG or AVIF, at most 10 MB). Templated.
    :param upload_token: a single-use signed-upload token for ``logo_file`` (no API key needed). Templated.
    :return: ``{"id": brand_id, "status": "analyzing" | "ready"}``.
    """

    template_fields: Sequence[str] = ("brand_id", "logo_url", "logo_file", "upload_token")
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        brand_id: str,
        logo_url: str | None = None,
        logo_file: Any = None,
        upload_token: str | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.brand_id = brand_id
        self.logo_url = logo_url
        self.logo_file = logo_file
        self.upload_token = upload_token

    def execute(self, context: Context) -> dict[str, Any]:
        with bloom_errors(f"Updating the logo of Bloom brand {self.brand_id}"):
            check_uuid("brand_id", self.brand_id)
            call = self._logo_request()
            answer = self.ledger(context).pay(call, functools.partial(self.hook.send, call))
        self.log.info("Brand %s has a new logo; status %s", self.brand_id, answer.get("status"))
        return {"id": answer.get("id", self.brand_id), "status": answer.get("status")}

    def _logo_request(self) -> PreparedCall:
        if (self.logo_url is None) == (self.logo_file is None):
            raise BloomInputError("logo_url/logo_file", "pass exactly one of them")
        if self.logo_url is not None:
            source = ImageSource(display=self.logo_url, url=self.logo_url)
        else:
            source = image_source(self.logo_file, "logo_file")
            if source.path is None:
                raise BloomInputError("logo_file", "is a URL; pass it as logo_url")
            problem = check_image_file(source, LOGO_UPLOAD.by_file)
            if problem:
                raise BloomInputError("logo_file", f"{source.display} {problem}")
        return LOGO_UPLOAD.request_for(
            self.hook, source, token=self.upload_token or None, path={"id": self.brand_id}
        )


class BloomDeleteBrandOperator(BloomBaseOperator):
    """Delete a brand (``DELETE /brands/{id}``).

    :param brand_id: the brand. Templated.
    :param missing_ok: succeed when the brand is already gone (for cleanup tasks that may run twice).
    :return: ``{"id", "name", "deleted": bool}``.
    """

    template_fields: Sequence[str] = ("brand_id",)
    ui_color = "#fde2e2"

    def __init__(self, *, brand_id: str, missing_ok: bool = False, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.brand_id = brand_id
        self.missing_ok = missing_ok

    def execute(self, context: Context) -> dict[str, Any]:
        with bloom_errors(f"Deleting Bloom brand {self.brand_id}"):
            try:
                answer = self.hook.delete_brand(self.brand_id)
            except BloomNotFoundError:
                if not self.missing_ok:
                    raise
                self.log.info("Brand %s was already gone", self.brand_id)
                return {"id": self.brand_id, "name": None, "deleted": False}
        self.log.info("Deleted brand %s (%s)", answer.get("id"), answer.get("name"))
        return {"id": answer.get("id", self.brand_id), "name": answer.get("name"), "deleted": True}


class BloomListBrandsOperator(BloomBaseOperator):
    """List the brands the connection can see (``GET /brands``, all pages).

    :param workspace_id: only this team workspace. Templated.
    :param status: only brands in this status (``"ready"``, ``"analyzing"``, ``"logo_required"``,
        ``"failed"``).
    :param max_results: stop after this many brands (keeps XCom small).
    :return: ``[{"id", "name", "url", "status", "imageCount", "workspaceId", "workspaceName"}, ...]``.
    """

    template_fields: Sequence[str] = ("workspace_id",)
    ui_color = "#e8f4ff"

    def __init__(
        self,
        *,
        workspace_id: str | None = None,
        status: str | None = None,
        max_results: int = 200,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.workspace_id = workspace_id
        self.status = status
        self.max_results = max_results

    def execute(self, context: Context) -> list[dict[str, Any]]:
        statuses = tuple(status.value for status in BrandStatus)
        out: list[dict[str, Any]] = []
        with bloom_errors("Listing Bloom brands"):
            if self.status is not None and self.status not in statuses:
                raise BloomInputError("status", f"must be one of {statuses}; got {self.status!r}")
            for brand in self.hook.iter_brands(workspace_id=self.workspace_id):
                if self.status is None or brand.get("status") == self.status:
                    out.append({name: brand.get(name) for name in BRAND_LIST_FIELDS})
                if len(out) >= self.max_results:
                    break
        self.log.info("Found %d brand(s)", len(out))
        return out


__all__ = [
    "BloomCreateBrandOperator",
    "BloomDeleteBrandOperator",
    "BloomListBrandsOperator",
    "BloomUpdateBrandLogoOperator",
]
