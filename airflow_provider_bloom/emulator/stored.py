"""The emulator's stored state: workspaces, brands, images, files. Status is derived from timestamps.

An image knows when it turns ``generating`` and when it turns terminal the moment it is
created, so reading a status is a comparison with the clock: no timers, no background
task, and it works the same whether the app runs in a uvicorn thread or in-process.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Literal

ImageSource = Literal["generated", "uploaded", "scraped"]
FileKind = Literal["png", "png_alpha", "svg", "stored"]

#: width:height of every aspect ratio the spec allows.
ASPECT_RATIOS: dict[str, tuple[int, int]] = {
    "1:1": (1, 1),
    "2:3": (2, 3),
    "3:2": (3, 2),
    "3:4": (3, 4),
    "4:3": (4, 3),
    "4:5": (4, 5),
    "5:4": (5, 4),
    "9:16": (9, 16),
    "16:9": (16, 9),
    "21:9": (21, 9),
}
LONG_SIDE = {"2K": 2048, "4K": 4096}


def dimensions(aspect_ratio: str, image_size: str) -> tuple[int, int]:
    """Pixel size: the long side is 2048 (2K) or 4096 (4K); 16:9 2K -> 2048x1152."""
    w, h = ASPECT_RATIOS[aspect_ratio]
    long_side = LONG_SIDE[image_size]
    if w >= h:
        return long_side, round(long_side * h / w)
    return round(long_side * w / h), long_side


def size_class(width: int | None, height: int | None) -> str:
    """``4K`` when the long side is above 2K, else ``2K``."""
    return "4K" if max(width or 0, height or 0) > LONG_SIDE["2K"] else "2K"


def nearest_aspect_ratio(width: int, height: int, tolerance: float = 0.02) -> str | None:
    """The spec's aspect ratio within ``tolerance`` of ``width/height``, if any."""
    if width <= 0 or height <= 0:
        return None
    actual = width / height
    best = min(ASPECT_RATIOS, key=lambda r: abs(ASPECT_RATIOS[r][0] / ASPECT_RATIOS[r][1] - actual))
    w, h = ASPECT_RATIOS[best]
    return best if abs(w / h - actual) / actual <= tolerance else None


def iso(timestamp: float) -> str:
    """Epoch seconds as the spec's ``date-time`` (UTC, milliseconds, ``Z``)."""
    moment = dt.datetime.fromtimestamp(timestamp, tz=dt.timezone.utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


@dataclass
class Workspace:
    id: str | None
    name: str
    balance: float
    unlimited: bool

    @property
    def is_personal(self) -> bool:
        return self.id is None


@dataclass
class StoredFile:
    data: bytes
    mime_type: str


@dataclass
class StoredBrand:
    id: str
    name: str
    url: str
    workspace_id: str | None
    created_at: float
    #: When analysis ends; restarted by a logo update.
    ready_at: float
    #: Status after analysis: ``ready``, ``failed`` or ``logo_required``.
    outcome: str
    logo_url: str | None = None
    failure_code: str | None = None
    failure_message: str | None = None

    def status(self, now: float) -> str:
        return "analyzing" if now < self.ready_at else self.outcome

    def is_terminal(self, now: float) -> bool:
        return now >= self.ready_at

    def next_change(self) -> float:
        return self.ready_at


@dataclass
class StoredImage:
    id: str
    source: ImageSource
    brand_id: str
    workspace_id: str | None
    created_at: float
    prompt: str | None = None
    description: str | None = None
    aspect_ratio: str | None = None
    width: int | None = None
    height: int | None = None
    action_type: str | None = None
    variant_group_id: str | None = None
    #: Generated images only: when ``pending`` turns ``generating`` and when the image is terminal.
    generating_at: float | None = None
    terminal_at: float | None = None
    #: Generated images only: ``completed`` or ``failed`` once terminal.
    outcome: str | None = None
    failure_reason: str | None = None
    file_kind: FileKind = "png"
    stored: StoredFile | None = field(default=None, repr=False)
    content_hash: str | None = None
    #: Scraped images of a brand appear once its onboarding is over.
    visible_at: float = 0.0
    parent_id: str | None = None
    model: str | None = None
    image_size: str | None = None

    @property
    def generated(self) -> bool:
        return self.source == "generated"

    def status(self, now: float) -> str | None:
        """``None`` for uploaded and scraped images: they are never generated."""
        if not self.generated:
            return None
        assert self.generating_at is not None and self.terminal_at is not None
        if now >= self.terminal_at:
            return self.outcome
        return "generating" if now >= self.generating_at else "pending"

    def is_terminal(self, now: float) -> bool:
        return self.terminal_at is None or now >= self.terminal_at

    def next_change(self) -> float:
        return self.terminal_at if self.terminal_at is not None else 0.0

    def has_file(self, now: float) -> bool:
        """Whether ``/img/{id}`` can serve bytes now."""
        return not self.generated or self.status(now) == "completed"

    def mime_type(self) -> str:
        if self.stored is not None:
            return self.stored.mime_type
        return "image/svg+xml" if self.file_kind == "svg" else "image/png"

    @property
    def is_vector(self) -> bool:
        return self.mime_type() == "image/svg+xml"
