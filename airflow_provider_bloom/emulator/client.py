"""Admin helpers over HTTP: drive an emulator in this process or another one."""

from __future__ import annotations

from typing import Any

import httpx


class EmulatorAdminError(RuntimeError):
    """The emulator refused an admin request."""


class EmulatorClient:
    """Talks to the ``/_emulator/`` admin endpoints of the emulator at ``root_url``."""

    def __init__(self, root_url: str, timeout: float = 10.0) -> None:
        self._root_url = root_url.rstrip("/")
        self._timeout = timeout
        self._http: httpx.Client | None = None

    def close(self) -> None:
        if self._http is not None:
            self._http.close()
            self._http = None

    @property
    def root_url(self) -> str:
        """``http://HOST:PORT``."""
        return self._root_url

    @property
    def base_url(self) -> str:
        """The Bloom API base URL, ``http://HOST:PORT/api/v1``."""
        return self.root_url + "/api/v1"

    def _admin(self, method: str, path: str, json: Any = None, params: dict[str, str] | None = None) -> Any:
        if self._http is None:
            self._http = httpx.Client(timeout=self._timeout, trust_env=False)
        response = self._http.request(method, f"{self.root_url}/_emulator{path}", json=json, params=params)
        if response.status_code >= 400:
            raise EmulatorAdminError(f"{method} /_emulator{path}: {response.status_code} {response.text}")
        return response.json()

    def reset(self) -> None:
        """Fresh state, counters, faults and violations (the config stays)."""
        self._admin("POST", "/reset")

    def configure(self, **fields: Any) -> dict[str, Any]:
        """Patch :class:`EmulatorConfig` fields at runtime; returns the whole config."""
        result: dict[str, Any] = self._admin("POST", "/config", json=fields)
        return result

    def set_credits(
        self, balance: float, workspace_id: str | None = None, unlimited: bool = False
    ) -> dict[str, Any]:
        result: dict[str, Any] = self._admin(
            "POST",
            "/credits",
            json={"balance": balance, "workspace_id": workspace_id, "unlimited": unlimited},
        )
        return result

    def add_fault(
        self,
        operation: str,
        kind: str,
        count: int = 1,
        status: int | None = None,
        retry_after: str | None = None,
        delay_seconds: float | None = None,
    ) -> list[dict[str, Any]]:
        """Make the next ``count`` requests to ``operation`` (``"*"`` = any) fail as ``kind``."""
        body = {
            "operation": operation,
            "kind": kind,
            "count": count,
            "status": status,
            "retry_after": retry_after,
            "delay_seconds": delay_seconds,
        }
        pending: list[dict[str, Any]] = self._admin("POST", "/faults", json=body)["pending"]
        return pending

    def clear_faults(self) -> None:
        self._admin("DELETE", "/faults")

    def faults(self) -> list[dict[str, Any]]:
        pending: list[dict[str, Any]] = self._admin("GET", "/faults")["pending"]
        return pending

    def requests(self) -> dict[str, Any]:
        """Counters: ``total``, ``by_operation``, ``by_key``, ``by_operation_status``, ``paid_posts``, ..."""
        result: dict[str, Any] = self._admin("GET", "/requests")
        return result

    def image_records(self, ids: list[str] | None = None) -> list[dict[str, Any]]:
        """Internal image records with ``created_at``/``terminal_at`` epoch timestamps."""
        params = {"ids": ",".join(ids)} if ids else None
        records: list[dict[str, Any]] = self._admin("GET", "/images", params=params)["images"]
        return records

    def reschedule_images(self, within_seconds: float, ids: list[str] | None = None) -> list[str]:
        """Make running images end at random times within ``within_seconds`` from now; returns their ids."""
        body: dict[str, Any] = {"within_seconds": within_seconds}
        if ids is not None:
            body["ids"] = ids
        changed: list[str] = self._admin("POST", "/images/reschedule", json=body)["rescheduled"]
        return changed

    def mint_upload_token(self, kind: str, brand_id: str | None = None) -> str:
        """A single-use token for the signed upload endpoints (``kind``: ``image`` or ``logo``)."""
        token: str = self._admin("POST", "/tokens", json={"kind": kind, "brand_id": brand_id})["token"]
        return token

    def violations(self) -> list[dict[str, Any]]:
        """Responses that broke the spec (recorded when ``validate_responses`` is on)."""
        found: list[dict[str, Any]] = self._admin("GET", "/violations")["violations"]
        return found

    def clear_violations(self) -> None:
        self._admin("DELETE", "/violations")

    def health(self) -> dict[str, Any]:
        result: dict[str, Any] = self._admin("GET", "/health")
        return result
