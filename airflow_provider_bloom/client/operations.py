"""Bloom's 23 operations, declared once for the sync client, the async client and the hook.

Cheap to import (no HTTP stack): :class:`~airflow_provider_bloom.hooks.bloom.BloomHook` inherits
these methods, and operators build prepared calls from them at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

from airflow_provider_bloom.client.spec import get_operation, to_camel

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_bloom.client.files import FileInput

R = TypeVar("R")
JSON = dict[str, Any]


class CallParts(TypedDict, total=False):
    """The parts of one call, in the spec's names in snake_case: path, query, body and upload."""

    path: Mapping[str, Any] | None
    query: Mapping[str, Any] | None
    body: Mapping[str, Any] | None
    file: FileInput | None


def place_arguments(operation_id: str, arguments: Mapping[str, Any]) -> CallParts:
    """Split snake_case arguments into the call's parts by the spec (``self`` is ignored)."""
    op = get_operation(operation_id)
    by_path = {op.argument(name): name for name in op.path_params}
    path: dict[str, Any] = {}
    query: dict[str, Any] = {}
    body: dict[str, Any] = {}
    parts: CallParts = {"path": path, "query": query, "body": body}
    for name, value in arguments.items():
        if name == "self":
            continue
        if name in by_path:
            path[by_path[name]] = value
        elif name == "file":
            parts["file"] = value
        elif to_camel(name) in op.query:
            query[name] = value
        elif to_camel(name) in op.body:
            body[name] = value
        else:
            raise TypeError(f"{operation_id} takes no argument {name!r}")
    return parts


class BloomOperations(Generic[R]):
    """Bloom's 23 operations. Arguments are the spec's names in snake_case.

    Each returns Bloom's ``data`` payload (``R`` is a dict for the sync client
    and an awaitable of one for the async client).
    """

    def _call(self, operation_id: str, **parts: Unpack[CallParts]) -> R:
        raise NotImplementedError

    def _invoke(self, operation_id: str, arguments: Mapping[str, Any]) -> R:
        """Call an operation with a method's own arguments (its ``locals()``), each placed where the
        spec puts it: a path parameter, the query, the body, or the uploaded ``file``."""
        return self._call(operation_id, **place_arguments(operation_id, arguments))

    # Account
    def get_account(self) -> R:
        """Return the account the credentials belong to (``account.get``: ``GET /account``)."""
        return self._invoke("account.get", locals())

    def get_credits(self, workspace_id: str | None = None) -> R:
        """Return the workspace's credit balance (``credits.get``: ``GET /credits``)."""
        return self._invoke("credits.get", locals())

    def list_workspaces(self) -> R:
        """List the account's workspaces (``workspaces.list``: ``GET /workspaces``)."""
        return self._invoke("workspaces.list", locals())

    # Brands
    def list_brands(
        self, workspace_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> R:
        """List brands, one page from ``cursor`` (``brands.list``: ``GET /brands``)."""
        return self._invoke("brands.list", locals())

    def create_brand(
        self,
        url: str,
        workspace_id: str | None = None,
        logo_url: str | None = None,
        collect_images: bool | None = None,
    ) -> R:
        """Create a brand from a website; paid, never sent twice (``brands.create``: ``POST /brands``)."""
        return self._invoke("brands.create", locals())

    def get_brand(self, brand_id: str, wait: bool = False, timeout: int | None = None) -> R:
        """Return a brand; with ``wait``, long-poll until it is settled.

        ``brands.get``: ``GET /brands/{id}``.
        """
        return self._invoke("brands.get", locals())

    def delete_brand(self, brand_id: str) -> R:
        """Delete a brand (``brands.delete``: ``DELETE /brands/{id}``)."""
        return self._invoke("brands.delete", locals())

    def update_brand_logo(self, brand_id: str, logo_url: str) -> R:
        """Set a brand's logo from a URL (``brands.updateLogo``: ``PUT /brands/{id}/logo``)."""
        return self._invoke("brands.updateLogo", locals())

    def upload_brand_logo_file(self, brand_id: str, file: FileInput) -> R:
        """Upload a brand's logo file (``brands.uploadLogoFile``: ``PUT /brands/{id}/logo/file``)."""
        return self._invoke("brands.uploadLogoFile", locals())

    def upload_brand_logo_file_signed(self, brand_id: str, token: str, file: FileInput) -> R:
        """Upload a brand's logo file with a single-use token instead of credentials.

        ``brands.uploadLogoFileSigned``: ``PUT /brands/{id}/logo/file/signed/{token}``.
        """
        return self._invoke("brands.uploadLogoFileSigned", locals())

    # Images
    def list_images(
        self,
        ids: list[str] | str | None = None,
        workspace_id: str | None = None,
        brand_session_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        source: str | None = None,
        status: str | None = None,
        action_type: str | None = None,
        include_urls: bool | None = None,
        wait: bool = False,
        timeout: int | None = None,
    ) -> R:
        """List images by ``ids`` or filters; with ``wait``, long-poll until the ids settle.

        ``images.list``: ``GET /images``.
        """
        return self._invoke("images.list", locals())

    def delete_images(self, ids: list[str] | str) -> R:
        """Delete 1 to 50 images at once (``images.deleteMany``: ``DELETE /images``)."""
        return self._invoke("images.deleteMany", locals())

    def get_image(self, image_id: str, wait: bool = False, timeout: int | None = None) -> R:
        """Return an image; with ``wait``, long-poll until it is terminal.

        ``images.get``: ``GET /images/{id}``.
        """
        return self._invoke("images.get", locals())

    def delete_image(self, image_id: str) -> R:
        """Delete an image (``images.delete``: ``DELETE /images/{id}``)."""
        return self._invoke("images.delete", locals())

    def generate_images(
        self,
        prompt: str,
        brand_session_id: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        variant_count: int | None = None,
        reference_image_ids: list[str] | None = None,
    ) -> R:
        """Start generating images from a prompt; paid, never sent twice.

        ``images.generate``: ``POST /images/generations``.
        """
        return self._invoke("images.generate", locals())

    def edit_image(
        self,
        image_id: str,
        prompt: str,
        brand_session_id: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        reference_image_ids: list[str] | None = None,
    ) -> R:
        """Start an edit of an image from a prompt; paid (``images.edit``: ``POST /images/{id}/edit``)."""
        return self._invoke("images.edit", locals())

    def resize_image(self, image_id: str, target_aspect_ratio: str, brand_session_id: str | None = None) -> R:
        """Start a resize to another aspect ratio; paid (``images.resize``: ``POST /images/{id}/resize``)."""
        return self._invoke("images.resize", locals())

    def remove_background(self, image_id: str, brand_session_id: str | None = None) -> R:
        """Start removing an image's background; paid.

        ``images.removeBackground``: ``POST /images/{id}/remove-background``.
        """
        return self._invoke("images.removeBackground", locals())

    def vectorize_image(self, image_id: str, brand_session_id: str | None = None) -> R:
        """Start vectorizing an image to SVG; paid (``images.vectorize``: ``POST /images/{id}/vectorize``)."""
        return self._invoke("images.vectorize", locals())

    def upload_image(self, image_url: str, brand_session_id: str | None = None) -> R:
        """Add an image to the library from a URL (``images.upload``: ``POST /images/uploads``)."""
        return self._invoke("images.upload", locals())

    def upload_image_file(self, file: FileInput, brand_session_id: str | None = None) -> R:
        """Upload an image file to the library (``images.uploadFile``: ``POST /images/uploads/file``)."""
        return self._invoke("images.uploadFile", locals())

    def upload_image_file_signed(self, token: str, file: FileInput) -> R:
        """Upload an image file with a single-use token instead of credentials.

        ``images.uploadFileSigned``: ``POST /images/uploads/file/signed/{token}``.
        """
        return self._invoke("images.uploadFileSigned", locals())

    def search_images(
        self,
        query: str,
        brand_session_id: str | None = None,
        limit: int | None = None,
        cursor: str | None = None,
        max_distance: float | None = None,
    ) -> R:
        """Search the library by meaning, one page from ``cursor``.

        ``images.search``: ``POST /images/search``.
        """
        return self._invoke("images.search", locals())


__all__ = ["JSON", "BloomOperations", "CallParts"]
