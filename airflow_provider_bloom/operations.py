"""Bloom's 23 operations, declared once for the sync client, the async client and the hook.

Cheap to import (no HTTP stack): :class:`~airflow_provider_bloom.hooks.bloom.BloomHook` inherits
these methods, and operators build prepared calls from them at run time.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, Generic, TypedDict, TypeVar

if TYPE_CHECKING:
    from typing_extensions import Unpack

    from airflow_provider_bloom.files import FileInput

R = TypeVar("R")
JSON = dict[str, Any]


class CallParts(TypedDict, total=False):
    """The parts of one call, in the spec's names in snake_case: path, query, body and upload."""

    path: Mapping[str, Any] | None
    query: Mapping[str, Any] | None
    body: Mapping[str, Any] | None
    file: FileInput | None


class BloomOperations(Generic[R]):
    """Bloom's 23 operations. Arguments are the spec's names in snake_case.

    Each returns Bloom's ``data`` payload (``R`` is a dict for the sync client
    and an awaitable of one for the async client).
    """

    def _call(self, operation_id: str, **parts: Unpack[CallParts]) -> R:
        raise NotImplementedError

    # Account
    def get_account(self) -> R:
        """Return the account the credentials belong to (``account.get``: ``GET /account``)."""
        return self._call("account.get")

    def get_credits(self, workspace_id: str | None = None) -> R:
        """Return the workspace's credit balance (``credits.get``: ``GET /credits``)."""
        return self._call("credits.get", query={"workspace_id": workspace_id})

    def list_workspaces(self) -> R:
        """List the account's workspaces (``workspaces.list``: ``GET /workspaces``)."""
        return self._call("workspaces.list")

    # Brands
    def list_brands(
        self, workspace_id: str | None = None, limit: int | None = None, cursor: str | None = None
    ) -> R:
        """List brands, one page from ``cursor`` (``brands.list``: ``GET /brands``)."""
        return self._call(
            "brands.list", query={"workspace_id": workspace_id, "limit": limit, "cursor": cursor}
        )

    def create_brand(
        self,
        url: str,
        workspace_id: str | None = None,
        logo_url: str | None = None,
        collect_images: bool | None = None,
    ) -> R:
        """Create a brand from a website; paid, never sent twice (``brands.create``: ``POST /brands``)."""
        return self._call(
            "brands.create",
            body={
                "url": url,
                "workspace_id": workspace_id,
                "logo_url": logo_url,
                "collect_images": collect_images,
            },
        )

    def get_brand(self, brand_id: str, wait: bool = False, timeout: int | None = None) -> R:
        """Return a brand; with ``wait``, long-poll until it is settled.

        ``brands.get``: ``GET /brands/{id}``.
        """
        return self._call("brands.get", path={"id": brand_id}, query={"wait": wait, "timeout": timeout})

    def delete_brand(self, brand_id: str) -> R:
        """Delete a brand (``brands.delete``: ``DELETE /brands/{id}``)."""
        return self._call("brands.delete", path={"id": brand_id})

    def update_brand_logo(self, brand_id: str, logo_url: str) -> R:
        """Set a brand's logo from a URL (``brands.updateLogo``: ``PUT /brands/{id}/logo``)."""
        return self._call("brands.updateLogo", path={"id": brand_id}, body={"logo_url": logo_url})

    def upload_brand_logo_file(self, brand_id: str, file: FileInput) -> R:
        """Upload a brand's logo file (``brands.uploadLogoFile``: ``PUT /brands/{id}/logo/file``)."""
        return self._call("brands.uploadLogoFile", path={"id": brand_id}, file=file)

    def upload_brand_logo_file_signed(self, brand_id: str, token: str, file: FileInput) -> R:
        """Upload a brand's logo file with a single-use token instead of credentials.

        ``brands.uploadLogoFileSigned``: ``PUT /brands/{id}/logo/file/signed/{token}``.
        """
        return self._call("brands.uploadLogoFileSigned", path={"id": brand_id, "token": token}, file=file)

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
        return self._call(
            "images.list",
            query={
                "ids": ids,
                "workspace_id": workspace_id,
                "brand_session_id": brand_session_id,
                "limit": limit,
                "cursor": cursor,
                "source": source,
                "status": status,
                "action_type": action_type,
                "include_urls": include_urls,
                "wait": wait,
                "timeout": timeout,
            },
        )

    def delete_images(self, ids: list[str] | str) -> R:
        """Delete 1 to 50 images at once (``images.deleteMany``: ``DELETE /images``)."""
        return self._call("images.deleteMany", query={"ids": ids})

    def get_image(self, image_id: str, wait: bool = False, timeout: int | None = None) -> R:
        """Return an image; with ``wait``, long-poll until it is terminal.

        ``images.get``: ``GET /images/{id}``.
        """
        return self._call("images.get", path={"id": image_id}, query={"wait": wait, "timeout": timeout})

    def delete_image(self, image_id: str) -> R:
        """Delete an image (``images.delete``: ``DELETE /images/{id}``)."""
        return self._call("images.delete", path={"id": image_id})

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
        return self._call(
            "images.generate",
            body={
                "prompt": prompt,
                "brand_session_id": brand_session_id,
                "aspect_ratio": aspect_ratio,
                "image_size": image_size,
                "model": model,
                "variant_count": variant_count,
                "reference_image_ids": reference_image_ids,
            },
        )

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
        return self._call(
            "images.edit",
            path={"id": image_id},
            body={
                "prompt": prompt,
                "brand_session_id": brand_session_id,
                "image_size": image_size,
                "model": model,
                "reference_image_ids": reference_image_ids,
            },
        )

    def resize_image(self, image_id: str, target_aspect_ratio: str, brand_session_id: str | None = None) -> R:
        """Start a resize to another aspect ratio; paid (``images.resize``: ``POST /images/{id}/resize``)."""
        return self._call(
            "images.resize",
            path={"id": image_id},
            body={"target_aspect_ratio": target_aspect_ratio, "brand_session_id": brand_session_id},
        )

    def remove_background(self, image_id: str, brand_session_id: str | None = None) -> R:
        """Start removing an image's background; paid.

        ``images.removeBackground``: ``POST /images/{id}/remove-background``.
        """
        return self._call(
            "images.removeBackground", path={"id": image_id}, body={"brand_session_id": brand_session_id}
        )

    def vectorize_image(self, image_id: str, brand_session_id: str | None = None) -> R:
        """Start vectorizing an image to SVG; paid (``images.vectorize``: ``POST /images/{id}/vectorize``)."""
        return self._call(
            "images.vectorize", path={"id": image_id}, body={"brand_session_id": brand_session_id}
        )

    def upload_image(self, image_url: str, brand_session_id: str | None = None) -> R:
        """Add an image to the library from a URL (``images.upload``: ``POST /images/uploads``)."""
        return self._call(
            "images.upload", body={"image_url": image_url, "brand_session_id": brand_session_id}
        )

    def upload_image_file(self, file: FileInput, brand_session_id: str | None = None) -> R:
        """Upload an image file to the library (``images.uploadFile``: ``POST /images/uploads/file``)."""
        return self._call("images.uploadFile", body={"brand_session_id": brand_session_id}, file=file)

    def upload_image_file_signed(self, token: str, file: FileInput) -> R:
        """Upload an image file with a single-use token instead of credentials.

        ``images.uploadFileSigned``: ``POST /images/uploads/file/signed/{token}``.
        """
        return self._call("images.uploadFileSigned", path={"token": token}, file=file)

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
        return self._call(
            "images.search",
            body={
                "query": query,
                "brand_session_id": brand_session_id,
                "limit": limit,
                "cursor": cursor,
                "max_distance": max_distance,
            },
        )


__all__ = ["JSON", "BloomOperations", "CallParts"]
