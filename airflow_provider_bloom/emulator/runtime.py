"""One running emulator: its config, state, waiters, faults, counters and URL signer."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
from collections.abc import Mapping
from typing import Any

from airflow_provider_bloom.emulator.auth import RateLimiter
from airflow_provider_bloom.emulator.config import SEED_FIELDS, EmulatorConfig
from airflow_provider_bloom.emulator.errors import EmulatorError, envelope, flat_body, generic_code
from airflow_provider_bloom.emulator.faults import FaultBook
from airflow_provider_bloom.emulator.observe import Counters, Violation
from airflow_provider_bloom.emulator.png import cached_png, make_svg
from airflow_provider_bloom.emulator.spec import OperationSpec
from airflow_provider_bloom.emulator.state import Store
from airflow_provider_bloom.emulator.stored import StoredFile, StoredImage
from airflow_provider_bloom.emulator.waits import WaitHub

#: Pseudo-operations (not in Bloom's spec) that faults and counters can name.
FILE_REDIRECT = "files.redirect"
FILE_DOWNLOAD = "files.download"
OAUTH_TOKEN = "oauth.token"
PSEUDO_OPERATIONS = frozenset({FILE_REDIRECT, FILE_DOWNLOAD, OAUTH_TOKEN})


class Emulator:
    """Everything one emulator app holds. Use it from the app's event loop only."""

    def __init__(self, config: EmulatorConfig | None = None) -> None:
        self.config = config or EmulatorConfig()
        self.config.check()
        self.store = Store(lambda: self.config)
        self.hub = WaitHub(self.store.clock)
        self.faults = FaultBook()
        self.counters = Counters()
        self.violations: list[Violation] = []
        self.rate_limiter = RateLimiter()
        seed = self.config.seed
        self._secret = random.Random(seed).randbytes(32) if seed is not None else os.urandom(32)

    # ------------------------------------------------------------------ admin

    def reset(self) -> None:
        """Fresh state, counters, faults, violations and rate-limit windows; the config stays."""
        self.store.reset()
        self.counters = Counters()
        self.faults.clear()
        self.violations.clear()
        self.rate_limiter.reset()
        self.hub.wake_all()

    def configure(self, patch: Mapping[str, Any]) -> EmulatorConfig:
        self.config = self.config.updated(patch)
        if SEED_FIELDS & set(patch):
            self.store.sync_workspaces(
                reset_credits=bool({"initial_credits", "unlimited_credits"} & set(patch))
            )
        if "rate_limit_per_minute" in patch or "rate_limit_window_seconds" in patch:
            self.rate_limiter.reset()
        return self.config

    # ------------------------------------------------------------------ errors

    def error_payload(self, error: EmulatorError, op: OperationSpec | None) -> dict[str, Any]:
        """The error body in the configured envelope (``defined`` and default messages from the spec)."""
        defined = op is not None and op.is_defined(error.status, error.code)
        message = error.message or (op.default_message(error.status, error.code) if op else None)
        flat = flat_body(error, defined=defined, message=message or error.code.replace("_", " ").capitalize())
        return envelope(flat, self.config.error_envelope)

    @staticmethod
    def fault_error(status: int, op: OperationSpec | None, retry_after: str | None) -> EmulatorError:
        """The error an injected status fault answers: the spec's code for that status when it has one."""
        codes = list(op.defined_errors.get(status, {})) if op is not None else []
        code = codes[0] if codes else generic_code(status)
        headers = {"retry-after": retry_after} if retry_after is not None else {}
        return EmulatorError(status, code, None if codes else f"Emulated {status} fault", headers=headers)

    # ------------------------------------------------------------------ signed download URLs

    def _signature(self, file_id: str, expires: str) -> str:
        return hmac.new(self._secret, f"{file_id}\n{expires}".encode(), hashlib.sha256).hexdigest()[:32]

    def signed_url(self, file_id: str, origin: str) -> str:
        base = (self.config.download_base_url or origin).rstrip("/")
        expires = f"{self.store.clock() + self.config.signed_url_ttl_seconds:.3f}"
        return f"{base}/_files/{file_id}?exp={expires}&sig={self._signature(file_id, expires)}"

    def check_signature(self, file_id: str, expires: str, signature: str) -> str | None:
        """``None`` when valid, else why not (``INVALID_SIGNATURE`` or ``SIGNATURE_EXPIRED``)."""
        if not hmac.compare_digest(self._signature(file_id, expires), signature):
            return "INVALID_SIGNATURE"
        try:
            expired = float(expires) <= self.store.clock()
        except ValueError:
            return "INVALID_SIGNATURE"
        return "SIGNATURE_EXPIRED" if expired else None

    # ------------------------------------------------------------------ file bytes

    def servable(self, file_id: str) -> StoredImage | StoredFile | None:
        """The image or logo ``/img/{id}`` can serve now."""
        logo = self.store.logos.get(file_id)
        if logo is not None:
            return logo
        record = self.store.images.get(file_id)
        now = self.store.clock()
        if record is None or record.visible_at > now or not record.has_file(now):
            return None
        return record

    async def file_bytes(self, item: StoredImage | StoredFile) -> tuple[bytes, str]:
        if isinstance(item, StoredFile):
            return item.data, item.mime_type
        if item.stored is not None:
            return item.stored.data, item.stored.mime_type
        width, height = item.width or 1, item.height or 1
        if item.file_kind == "svg":
            return make_svg(width, height), "image/svg+xml"
        alpha = item.file_kind == "png_alpha"
        # Large PNGs take a moment to compress the first time: keep the loop free meanwhile.
        data = await asyncio.to_thread(cached_png, width, height, alpha)
        return data, "image/png"
