"""Errors raised by the Bloom client, hook, operators and sensors.

Every error from Bloom carries Bloom's ``code`` (branch on it, never on the
message), the HTTP status and, for 402s, the ``action_url`` where billing can
be fixed. Nothing here ever holds a credential.
"""

from __future__ import annotations

import json
import time
from collections.abc import Mapping
from email.utils import parsedate_to_datetime
from typing import Any


class BloomError(Exception):
    """Base class of everything this package raises on purpose."""

    #: True when repeating the same call cannot succeed (bad input, auth, billing...).
    permanent: bool = False
    #: True when a paid request may have been accepted and charged although no valid answer came back.
    maybe_charged: bool = False


class BloomInputError(BloomError, ValueError):
    """A request argument breaks a constraint of Bloom's spec; nothing was sent."""

    permanent = True

    def __init__(self, field: str, problem: str) -> None:
        self.field = field
        self.problem = problem
        super().__init__(f"Invalid {field}: {problem}")


class BloomAPIError(BloomError):
    """Bloom answered with an error status."""

    def __init__(
        self,
        status: int,
        code: str | None,
        message: str,
        *,
        operation_id: str | None = None,
        data: Any = None,
        retry_after: float | None = None,
        maybe_charged: bool = False,
    ) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.operation_id = operation_id
        self.data = data
        self.retry_after = retry_after
        self.maybe_charged = maybe_charged
        super().__init__(self._render())

    @property
    def action_url(self) -> str | None:
        if isinstance(self.data, Mapping):
            url = self.data.get("action_url") or self.data.get("actionUrl")
            return str(url) if url else None
        return None

    def _render(self) -> str:
        where = f" on {self.operation_id}" if self.operation_id else ""
        text = f"Bloom {self.code or 'error'} (HTTP {self.status}){where}: {self.message}"
        if self.action_url:
            text += f" -- fix it at {self.action_url}"
        if self.maybe_charged:
            text += f". {MAYBE_CHARGED_HINT}"
        return text


class BloomRefusedError(BloomAPIError):
    """Bloom refused the request (4xx other than 429): repeating the same call cannot succeed."""

    permanent = True


class BloomAuthError(BloomRefusedError):
    """401: the API key or token is missing, wrong or expired."""


class BloomPaymentError(BloomRefusedError):
    """402: not enough credits, or a payment is pending (see ``action_url``)."""


class BloomForbiddenError(BloomRefusedError):
    """403: banned account, plan without the feature, or access refused."""


class BloomNotFoundError(BloomRefusedError):
    """404 (or Bloom's 422 BRAND_NOT_FOUND): the brand, image or workspace does not exist."""


class BloomConflictError(BloomRefusedError):
    """409: e.g. BRAND_NOT_READY -- the brand is still onboarding."""


class BloomValidationError(BloomRefusedError):
    """400/422: Bloom refused the request's content."""


class BloomRateLimitError(BloomAPIError):
    """429: too many requests; Bloom did not act on the request."""


class BloomServerError(BloomAPIError):
    """5xx, or a reply that is not a valid Bloom answer."""


class BloomTransportError(BloomError):
    """The request could not be completed on the network (after any retries)."""

    #: False when trying again cannot help (a TLS handshake that failed): the client does not retry.
    retryable: bool = True

    def __init__(self, message: str, *, operation_id: str | None = None, maybe_charged: bool = False) -> None:
        self.operation_id = operation_id
        self.maybe_charged = maybe_charged
        if maybe_charged:
            message = f"{message}. {MAYBE_CHARGED_HINT}"
        super().__init__(message)


class BloomImagesMissingError(BloomError):
    """Bloom did not return some of the ids asked for (deleted, or not visible to this key)."""

    permanent = True

    def __init__(self, missing: list[str]) -> None:
        self.missing = list(missing)
        super().__init__(
            f"Bloom did not return these images (deleted, or not visible to this key): {self.missing}"
        )


class BloomDownloadError(BloomError):
    """A download failed; the message names the image and the reason."""

    def __init__(self, message: str, *, permanent: bool) -> None:
        super().__init__(message)
        self.permanent = permanent


class BloomReviewAnswerError(BloomError, ValueError):
    """The reviewer's answer cannot be applied (an unknown image, a line without a reason...).

    Not permanent: a retry of the task asks again (a new Required Action)."""


class ReconcileError(BloomError):
    """A paid request's answer was lost and what it created could not be identified with certainty.

    Fails the task without retries (a retry could pay twice); ``candidates`` lists what was found.
    """

    permanent = True
    maybe_charged = True

    def __init__(self, message: str, candidates: list[dict[str, Any]]) -> None:
        self.candidates = candidates
        super().__init__(message)


MAYBE_CHARGED_HINT = (
    "The request was sent but no valid answer came back, so Bloom may have accepted it and charged for it. "
    "It was not retried automatically (Bloom has no idempotency key). Check before retrying: "
    "list recent images (GET /images?limit=20, or BloomHook().list_images(limit=20)) and GET /credits."
)

_BY_STATUS: dict[int, type[BloomAPIError]] = {
    400: BloomValidationError,
    401: BloomAuthError,
    402: BloomPaymentError,
    403: BloomForbiddenError,
    404: BloomNotFoundError,
    409: BloomConflictError,
    422: BloomValidationError,
    429: BloomRateLimitError,
}
_BY_CODE: dict[str, type[BloomAPIError]] = {
    "BRAND_NOT_FOUND": BloomNotFoundError,  # 422 on some endpoints, 404 on others
    "BRAND_NOT_READY": BloomConflictError,
    "UNAUTHORIZED": BloomAuthError,
    "INVALID_UPLOAD_TOKEN": BloomAuthError,
    "TOO_MANY_REQUESTS": BloomRateLimitError,
}


def parse_retry_after(value: str | None, now: float | None = None) -> float | None:
    """``Retry-After`` as seconds: either delta-seconds or an HTTP date."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        when = parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def error_from_response(
    status: int,
    body: bytes,
    content_type: str | None,
    *,
    operation_id: str | None = None,
    retry_after: str | None = None,
    paid: bool = False,
) -> BloomAPIError:
    """Build the right error from an HTTP error answer.

    Reads Bloom's flat envelope ``{code, status, message, data}``, the nested
    ``{"error": {...}}`` one its prose documents, and anything else (an HTML
    page from a proxy, an empty body) as a clear error with the status.
    """
    code: str | None = None
    message = ""
    data: Any = None
    try:
        payload = json.loads(body) if body else None
    except ValueError:
        payload = None
    if isinstance(payload, Mapping):
        nested = payload.get("error")
        inner: Mapping[str, Any] = nested if isinstance(nested, Mapping) else payload
        code = inner.get("code") if isinstance(inner.get("code"), str) else None
        message = str(inner.get("message") or "")
        data = inner.get("data", payload.get("data"))
    if not code and not message:
        kind = (content_type or "no content type").split(";")[0]
        snippet = body[:200].decode("utf-8", "replace").strip() if body else ""
        message = f"non-JSON answer ({kind})" + (f": {snippet!r}" if snippet else " with an empty body")
    cls = (
        _BY_CODE.get(code or "")
        or _BY_STATUS.get(status)
        or (BloomServerError if status >= 500 else BloomAPIError)
    )
    return cls(
        status,
        code,
        message or "(no message)",
        operation_id=operation_id,
        data=data,
        retry_after=parse_retry_after(retry_after),
        # A paid POST answered 5xx, or 4xx without Bloom's error envelope (a proxy's page), may
        # still have been accepted: never retried blindly. A 429 and Bloom's own refusals are safe.
        maybe_charged=paid and status != 429 and (status >= 500 or not code),
    )
