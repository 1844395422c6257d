"""The emulated account: workspaces and their credit ledgers, brands, images, tokens.

Pure Python (no web framework): every Bloom rule that is not about HTTP lives here and
raises :class:`EmulatorError` with the spec's status and code. Statuses are derived from
timestamps (see :mod:`~airflow_provider_bloom.emulator.stored`), so nothing runs in the background.
"""

from __future__ import annotations

import hashlib
import random
import re
import secrets
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlparse

from airflow_provider_bloom.emulator.config import (
    BRAND_FAIL_MARKER,
    BRAND_LOGO_REQUIRED_MARKER,
    CONTENT_SAFETY_MARKER,
    DEFAULT_BRAND_ID,
    DEFAULT_BRAND_NAME,
    INVALID_LOGO_MARKER,
    PRICING_URL,
    RATE_LIMITED_MARKER,
    SEEDED_IMAGE_IDS,
    EmulatorConfig,
)
from airflow_provider_bloom.emulator.errors import EmulatorError
from airflow_provider_bloom.emulator.media import Sniffed
from airflow_provider_bloom.emulator.stored import (
    FileKind,
    ImageSource,
    StoredBrand,
    StoredFile,
    StoredImage,
    Workspace,
    dimensions,
    nearest_aspect_ratio,
    size_class,
)
from airflow_provider_bloom.logic.prices import credits_for, parse_prices

PERSONAL_WORKSPACE_NAME = "Personal"
#: Models whose content filter blocks ``[content_safety]`` (Bloom's advice: retry with ``standard``).
STRICT_MODELS = frozenset({"pro", "fast"})
#: The model Bloom uses when a request names none (the spec: ``pro`` is the default).
DEFAULT_MODEL = "pro"
_CONTENT_SAFETY = re.compile(re.escape(CONTENT_SAFETY_MARKER[:-1]) + r"(?::([a-z, ]*))?\]")


def refused_on(prompt: str, model: str | None) -> bool:
    """Whether the emulated content filter blocks ``prompt`` on ``model``.

    ``[content_safety]`` is blocked on ``pro`` and ``fast`` (and on no model named: ``pro``) and
    passes on ``standard``; ``[content_safety:pro,standard]`` is blocked on the models it names.
    """
    found = _CONTENT_SAFETY.search(prompt)
    if found is None:
        return False
    model = model or DEFAULT_MODEL
    if found.group(1) is None:
        return model in STRICT_MODELS
    return model in {m.strip() for m in found.group(1).split(",") if m.strip()}


BRAND_COLORS = ["#1F6FEB", "#F5A623", "#FFFFFF"]
BRAND_FONTS = ["Inter", "Playfair Display"]

#: Library images of the seeded brand: (description, width, height).
_SEEDED_LIBRARY = (
    ("A red drone in flight over a green field", 1600, 1200),
    ("Team working at desks in a bright office", 1920, 1080),
    ("Product on a white background", 1080, 1080),
)
_WORDS = re.compile(r"\w+")
_STOPWORDS = frozenset({"a", "an", "and", "at", "for", "in", "of", "on", "over", "the", "to", "with"})


@dataclass
class UploadToken:
    kind: str
    brand_id: str | None
    expires_at: float


@dataclass(frozen=True)
class ImageFilter:
    ids: list[str] | None = None
    workspace_id: str | None = None
    brand_id: str | None = None
    source: str | None = None
    status: str | None = None
    action_type: str | None = None


def _words(text: str) -> set[str]:
    return {w.lower() for w in _WORDS.findall(text)} - _STOPWORDS


class Store:
    """All mutable emulator state. Not thread-safe: use it from the app's event loop."""

    def __init__(self, config: Callable[[], EmulatorConfig], clock: Callable[[], float] = time.time) -> None:
        self._config = config
        self._local_clock = clock
        self.reset()

    @property
    def config(self) -> EmulatorConfig:
        return self._config()

    def clock(self) -> float:
        """The emulated server's time (epoch seconds): this machine's plus ``clock_offset_seconds``."""
        return self._local_clock() + self._config().clock_offset_seconds

    # ------------------------------------------------------------------ seeding

    def reset(self) -> None:
        cfg = self.config
        self.rng = random.Random(cfg.seed)
        self.workspaces: dict[str | None, Workspace] = {}
        self.brands: dict[str, StoredBrand] = {}
        self.images: dict[str, StoredImage] = {}
        self.logos: dict[str, StoredFile] = {}
        self._upload_hashes: dict[tuple[str, str], str] = {}
        self._upload_tokens: dict[str, UploadToken] = {}
        self._oauth_tokens: dict[str, float] = {}
        self.sync_workspaces(reset_credits=True)
        self._seed_default_brand()

    def sync_workspaces(self, reset_credits: bool) -> None:
        """Make workspaces match the config (and reset every balance when asked)."""
        cfg = self.config
        wanted: dict[str | None, str] = {None: PERSONAL_WORKSPACE_NAME}
        wanted.update(cfg.team_workspaces)
        for ws_id in list(self.workspaces):
            if ws_id not in wanted:
                del self.workspaces[ws_id]
        for ws_id, name in wanted.items():
            ws = self.workspaces.get(ws_id)
            if ws is None:
                self.workspaces[ws_id] = Workspace(ws_id, name, cfg.initial_credits, cfg.unlimited_credits)
                continue
            ws.name = name
            if reset_credits:
                ws.balance, ws.unlimited = cfg.initial_credits, cfg.unlimited_credits

    def _seed_default_brand(self) -> None:
        now = self.clock()
        brand = StoredBrand(
            id=DEFAULT_BRAND_ID,
            name=DEFAULT_BRAND_NAME,
            url="https://brand.emulator.local",
            workspace_id=None,
            created_at=now - 3600,
            ready_at=now - 3600,
            outcome="ready",
            logo_url="https://brand.emulator.local/logo.png",
        )
        self.brands[brand.id] = brand
        for i, (image_id, (description, width, height)) in enumerate(
            zip(SEEDED_IMAGE_IDS, _SEEDED_LIBRARY, strict=True)
        ):
            self._add_image(
                brand,
                "scraped",
                created_at=now - 3500 + i,
                description=description,
                width=width,
                height=height,
                image_id=image_id,
            )

    def new_id(self) -> str:
        return str(uuid.UUID(int=self.rng.getrandbits(128), version=4))

    # ------------------------------------------------------------------ workspaces and credits

    def workspace(self, workspace_id: str | None, status: int = 404) -> Workspace:
        ws = self.workspaces.get(workspace_id)
        if ws is None:
            raise EmulatorError(status, "WORKSPACE_NOT_FOUND")
        return ws

    def workspace_name(self, workspace_id: str | None) -> str:
        ws = self.workspaces.get(workspace_id)
        return ws.name if ws is not None else PERSONAL_WORKSPACE_NAME

    def set_credits(self, workspace_id: str | None, balance: float, unlimited: bool) -> Workspace:
        ws = self.workspace(workspace_id)
        ws.balance, ws.unlimited = float(balance), unlimited
        return ws

    def price(
        self, operation: str, body: dict[str, Any] | None = None, source_size: str | None = None
    ) -> int:
        """Credits a paid call costs: the provider's price list, with the config's ``prices`` over it."""
        return credits_for(operation, body, source_size, parse_prices(self.config.prices))

    def charge(self, workspace_id: str | None, cost: float) -> None:
        """Deduct ``cost`` now, or raise 402 ``INSUFFICIENT_CREDITS`` when the balance is short."""
        ws = self.workspace(workspace_id)
        if ws.unlimited or cost <= 0:
            return
        if ws.balance < cost:
            raise EmulatorError(
                402,
                "INSUFFICIENT_CREDITS",
                f"Not enough credits: this needs {cost:g}, the balance is {ws.balance:g}",
                {"action_url": PRICING_URL, "required": cost, "balance": ws.balance},
            )
        ws.balance -= cost

    # ------------------------------------------------------------------ brands

    def brand(self, brand_id: str, status: int = 404, code: str = "BRAND_NOT_FOUND") -> StoredBrand:
        brand = self.brands.get(brand_id)
        if brand is None:
            raise EmulatorError(status, code)
        return brand

    def ready_brand(self, brand_id: str) -> StoredBrand:
        brand = self.brand(brand_id, 422)
        status = brand.status(self.clock())
        if status != "ready":
            # Bloom's spec: only a `ready` brand can generate; `logo_required` needs PUT /brands/{id}/logo.
            message = (
                "Brand is not ready for image generation: it needs a logo (PUT /brands/{id}/logo)"
                if status == "logo_required"
                else None
            )
            raise EmulatorError(409, "BRAND_NOT_READY", message, data={"status": status})
        return brand

    def list_brands(self, workspace_id: str | None) -> list[StoredBrand]:
        brands = [b for b in self.brands.values() if workspace_id is None or b.workspace_id == workspace_id]
        return sorted(brands, key=lambda b: (-b.created_at, b.id))

    def image_count(self, brand_id: str) -> int:
        now = self.clock()
        return sum(1 for i in self.images.values() if i.brand_id == brand_id and i.visible_at <= now)

    def create_brand(
        self, url: str, workspace_id: str | None, logo_url: str | None, collect_images: bool
    ) -> StoredBrand:
        parsed = urlparse(url)
        if parsed.scheme not in ("http", "https") or not parsed.hostname:
            raise EmulatorError(400, "INVALID_URL", data={"url": url})
        self.workspace(workspace_id)
        now = self.clock()
        outcome, failure_code, failure_message = "ready", None, None
        if BRAND_FAIL_MARKER in url:
            outcome, failure_code = "failed", "SCRAPE_FAILED"
            failure_message = "We could not read this website (emulated failure)."
        elif BRAND_LOGO_REQUIRED_MARKER in url and not logo_url:
            outcome = "logo_required"
        brand = StoredBrand(
            id=self.new_id(),
            name=_brand_name(parsed.hostname or "", parsed.path),
            url=url,
            workspace_id=workspace_id,
            created_at=now,
            ready_at=now + self.config.brand_ready_seconds,
            outcome=outcome,
            logo_url=logo_url,
            failure_code=failure_code,
            failure_message=failure_message,
        )
        self.brands[brand.id] = brand
        if collect_images and outcome == "ready":
            for i, what in enumerate(("storefront photo", "product on a white background")):
                self._add_image(
                    brand,
                    "scraped",
                    created_at=brand.ready_at + i * 0.001,
                    description=f"{brand.name} {what}",
                    width=1600,
                    height=1200,
                )
        return brand

    def update_logo(self, brand_id: str, logo_url: str | None, logo: StoredFile | None = None) -> StoredBrand:
        """Store the logo and restart analysis; the brand ends ``ready``."""
        brand = self.brand(brand_id)
        if logo_url is not None and INVALID_LOGO_MARKER in logo_url:
            raise EmulatorError(400, "INVALID_LOGO")
        if logo is not None:
            logo_id = self.new_id()
            self.logos[logo_id] = logo
            logo_url = f"/img/{logo_id}"
        now = self.clock()
        brand.logo_url = logo_url
        brand.ready_at = now + self.config.brand_ready_seconds
        brand.outcome, brand.failure_code, brand.failure_message = "ready", None, None
        return brand

    def delete_brand(self, brand_id: str) -> StoredBrand:
        brand = self.brand(brand_id)
        del self.brands[brand_id]
        for image_id in [i.id for i in self.images.values() if i.brand_id == brand_id]:
            self._forget_image(image_id)
        return brand

    # ------------------------------------------------------------------ images: reading

    def image(self, image_id: str, code: str = "IMAGE_NOT_FOUND") -> StoredImage:
        record = self.images.get(image_id)
        if record is None or record.visible_at > self.clock():
            raise EmulatorError(404, code)
        return record

    def list_images(self, flt: ImageFilter) -> list[StoredImage]:
        now = self.clock()
        if flt.brand_id is not None:
            self.brand(flt.brand_id, 422)
        generated_only = flt.status is not None or flt.action_type is not None
        candidates: Iterable[StoredImage]
        listed_before = now
        if flt.ids is not None:
            candidates = [self.images[i] for i in dict.fromkeys(flt.ids) if i in self.images]
        else:
            candidates = self.images.values()
            listed_before = now - self.config.list_delay_seconds
        out = [
            r
            for r in candidates
            if r.visible_at <= now
            and (r.source == "scraped" or r.created_at <= listed_before)
            and (flt.workspace_id is None or r.workspace_id == flt.workspace_id)
            and (flt.brand_id is None or r.brand_id == flt.brand_id)
            and (flt.source is None or r.source == flt.source)
            and (not generated_only or r.generated)
            and (flt.status is None or r.status(now) == flt.status)
            and (flt.action_type is None or r.action_type == flt.action_type)
        ]
        return sorted(out, key=lambda r: (-r.created_at, r.id))

    def search(self, brand_id: str, query: str, max_distance: float) -> list[tuple[StoredImage, float]]:
        """Library images of the brand by word overlap with the query (distance in [0, 1])."""
        self.brand(brand_id, 422)
        wanted = _words(query)
        now = self.clock()
        hits = []
        for record in self.images.values():
            if record.brand_id != brand_id or record.generated or record.visible_at > now:
                continue
            have = _words(record.description or "")
            overlap = len(wanted & have) / len(wanted) if wanted else 0.0
            distance = round(1.0 - overlap, 4)
            if distance <= max_distance:
                hits.append((record, distance))
        return sorted(hits, key=lambda hit: (hit[1], -hit[0].created_at, hit[0].id))

    # ------------------------------------------------------------------ images: paid work

    def generate(
        self,
        *,
        brand_id: str,
        prompt: str,
        aspect_ratio: str,
        image_size: str,
        model: str | None,
        variant_count: int,
        reference_ids: list[str],
    ) -> list[StoredImage]:
        brand = self.ready_brand(brand_id)
        self._check_entitlement(image_size)
        self._check_references(reference_ids)
        self.charge(
            brand.workspace_id,
            self.price("images.generate", {"imageSize": image_size, "variantCount": variant_count}),
        )
        group = self.new_id() if variant_count > 1 else None
        return [
            self._new_generation(
                brand,
                action_type="generation",
                prompt=prompt,
                aspect_ratio=aspect_ratio,
                image_size=image_size,
                model=model,
                variant_group_id=group,
            )
            for _ in range(variant_count)
        ]

    def edit(
        self,
        *,
        image_id: str,
        brand_id: str,
        prompt: str,
        image_size: str,
        model: str | None,
        reference_ids: list[str],
    ) -> StoredImage:
        brand = self.ready_brand(brand_id)
        subject = self.image(image_id, "EDIT_SUBJECT_NOT_FOUND")
        status = subject.status(self.clock())
        if subject.generated and status != "completed":
            raise EmulatorError(400, "EDIT_SUBJECT_NOT_COMPLETED", data={"status": status})
        self._check_entitlement(image_size)
        self._check_references(reference_ids)
        self.charge(brand.workspace_id, self.price("images.edit", {"imageSize": image_size}))
        return self._new_generation(
            brand,
            action_type="edit",
            prompt=prompt,
            aspect_ratio=_ratio_of(subject),
            image_size=image_size,
            model=model,
            parent=subject,
        )

    def resize(self, *, image_id: str, brand_id: str, target_aspect_ratio: str) -> StoredImage:
        source = self._post_processing_source(image_id)
        brand = self.brand(brand_id, 404)
        if source.is_vector:
            raise EmulatorError(400, "IMAGE_NOT_RESIZABLE")
        if _ratio_of(source) == target_aspect_ratio:
            raise EmulatorError(400, "SAME_ASPECT_RATIO", data={"aspectRatio": target_aspect_ratio})
        image_size = size_class(source.width, source.height)
        self.charge(brand.workspace_id, self.price("images.resize", source_size=image_size))
        return self._new_generation(
            brand,
            action_type="resize",
            aspect_ratio=target_aspect_ratio,
            image_size=image_size,
            parent=source,
        )

    def remove_background(self, *, image_id: str, brand_id: str) -> StoredImage:
        source = self._post_processing_source(image_id)
        brand = self.brand(brand_id, 404, "SESSION_NOT_FOUND")
        if source.is_vector:
            raise EmulatorError(400, "IMAGE_NOT_REMOVABLE_BACKGROUND")
        self.charge(brand.workspace_id, self.price("images.removeBackground"))
        return self._new_generation(
            brand, action_type="remove-background", parent=source, file_kind="png_alpha"
        )

    def vectorize(self, *, image_id: str, brand_id: str) -> StoredImage:
        source = self._post_processing_source(image_id)
        brand = self.brand(brand_id, 404, "SESSION_NOT_FOUND")
        if source.is_vector:
            raise EmulatorError(400, "IMAGE_NOT_VECTORIZABLE")
        minimum = self.config.vectorize_min_side
        if min(source.width or 0, source.height or 0) < minimum:
            raise EmulatorError(400, "IMAGE_TOO_SMALL", data={"minSide": minimum})
        self.charge(brand.workspace_id, self.price("images.vectorize"))
        return self._new_generation(brand, action_type="vectorize", parent=source, file_kind="svg")

    def _post_processing_source(self, image_id: str) -> StoredImage:
        source = self.image(image_id)
        if source.generated and source.status(self.clock()) != "completed":
            raise EmulatorError(400, "IMAGE_NOT_COMPLETED", data={"status": source.status(self.clock())})
        return source

    def _check_entitlement(self, image_size: str) -> None:
        if image_size == "4K" and not self.config.entitled_4k:
            raise EmulatorError(403, "FEATURE_NOT_ENTITLED")

    def _check_references(self, reference_ids: list[str]) -> None:
        for ref in reference_ids:
            self.image(ref, "REFERENCE_IMAGE_NOT_FOUND")

    def _new_generation(
        self,
        brand: StoredBrand,
        *,
        action_type: str,
        prompt: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        variant_group_id: str | None = None,
        parent: StoredImage | None = None,
        file_kind: FileKind = "png",
    ) -> StoredImage:
        cfg = self.config
        now = self.clock()
        duration = cfg.generation_seconds + (
            self.rng.uniform(0, cfg.generation_jitter) if cfg.generation_jitter else 0
        )
        outcome, reason = "completed", None
        if prompt and refused_on(prompt, model):
            outcome, reason = "failed", "content_safety"
        elif prompt and RATE_LIMITED_MARKER in prompt:
            outcome, reason = "failed", "rate_limited"
        if aspect_ratio is not None and image_size is not None:
            width, height = dimensions(aspect_ratio, image_size)
        else:
            assert parent is not None
            width, height = parent.width or 0, parent.height or 0
            aspect_ratio = _ratio_of(parent)
        record = StoredImage(
            id=self.new_id(),
            source="generated",
            brand_id=brand.id,
            workspace_id=brand.workspace_id,
            created_at=now,
            prompt=prompt,
            description=prompt if parent is None else (parent.description or parent.prompt),
            aspect_ratio=aspect_ratio,
            width=width,
            height=height,
            action_type=action_type,
            variant_group_id=variant_group_id,
            generating_at=now + duration * cfg.pending_fraction,
            terminal_at=now + duration,
            outcome=outcome,
            failure_reason=reason,
            file_kind=file_kind,
            parent_id=parent.id if parent is not None else None,
            model=model,
            image_size=image_size or size_class(width, height),
        )
        self.images[record.id] = record
        return record

    # ------------------------------------------------------------------ images: library

    def add_upload(
        self, brand_id: str, data: bytes, sniffed: Sniffed, description: str
    ) -> tuple[StoredImage, bool]:
        """Store uploaded bytes; identical bytes in the same brand answer the existing image."""
        brand = self.brands[brand_id]
        digest = hashlib.sha256(data).hexdigest()
        existing_id = self._upload_hashes.get((brand_id, digest))
        if existing_id is not None and existing_id in self.images:
            return self.images[existing_id], True
        record = self._add_image(
            brand,
            "uploaded",
            created_at=self.clock(),
            description=description,
            width=sniffed.width,
            height=sniffed.height,
            stored=StoredFile(data, sniffed.mime_type),
        )
        record.content_hash = digest
        self._upload_hashes[(brand_id, digest)] = record.id
        return record, False

    def _add_image(
        self,
        brand: StoredBrand,
        source: ImageSource,
        *,
        created_at: float,
        description: str,
        width: int,
        height: int,
        stored: StoredFile | None = None,
        image_id: str | None = None,
    ) -> StoredImage:
        record = StoredImage(
            id=image_id or self.new_id(),
            source=source,
            brand_id=brand.id,
            workspace_id=brand.workspace_id,
            created_at=created_at,
            description=description,
            aspect_ratio=nearest_aspect_ratio(width, height),
            width=width,
            height=height,
            file_kind="stored" if stored is not None else "png",
            stored=stored,
            visible_at=created_at,
        )
        self.images[record.id] = record
        return record

    def delete_image(self, image_id: str) -> StoredImage:
        record = self.image(image_id)
        self._forget_image(image_id)
        return record

    def _forget_image(self, image_id: str) -> None:
        record = self.images.pop(image_id)
        if record.content_hash is not None:
            self._upload_hashes.pop((record.brand_id, record.content_hash), None)

    # ------------------------------------------------------------------ tokens

    def mint_upload_token(self, kind: str, brand_id: str | None) -> str:
        if kind not in ("image", "logo"):
            raise ValueError("kind must be 'image' or 'logo'")
        token = self.new_id()
        expires_at = self.clock() + self.config.upload_token_ttl_seconds
        self._upload_tokens[token] = UploadToken(kind, brand_id, expires_at)
        return token

    def upload_token(self, token: str, kind: str, brand_id: str | None = None) -> UploadToken:
        """The live token for this use, or 401 ``INVALID_UPLOAD_TOKEN``; spend it with :meth:`spend`."""
        found = self._upload_tokens.get(token)
        if (
            found is None
            or found.kind != kind
            or found.expires_at <= self.clock()
            or (brand_id is not None and found.brand_id is not None and found.brand_id != brand_id)
        ):
            raise EmulatorError(401, "INVALID_UPLOAD_TOKEN")
        return found

    def spend_upload_token(self, token: str) -> None:
        self._upload_tokens.pop(token, None)

    def issue_oauth_token(self, ttl: float) -> str:
        token = "bloom_at_" + secrets.token_hex(24)
        self._oauth_tokens[token] = self.clock() + ttl
        return token

    def oauth_token_state(self, token: str) -> str | None:
        """``valid``, ``expired``, or ``None`` when this is not a token the emulator issued."""
        expires_at = self._oauth_tokens.get(token)
        if expires_at is None:
            return None
        return "valid" if self.clock() < expires_at else "expired"

    # ------------------------------------------------------------------ introspection

    def reschedule_pending(self, within_seconds: float, ids: list[str] | None = None) -> list[str]:
        """Make images still running end at a uniformly random time within ``within_seconds`` from now.

        A test tool: a test can hold images running until its setup is done (say, 100 tasks deferred),
        then let them finish. Returns the ids that were rescheduled.
        """
        now = self.clock()
        changed: list[str] = []
        for image_id in ids if ids is not None else list(self.images):
            record = self.images.get(image_id)
            if record is None or record.terminal_at is None or record.terminal_at <= now:
                continue
            end = now + (self.rng.uniform(0, within_seconds) if within_seconds > 0 else 0.0)
            record.terminal_at = end
            record.generating_at = min(record.generating_at or now, end)
            changed.append(record.id)
        return changed

    def internal_record(self, record: StoredImage) -> dict[str, Any]:
        """What ``GET /_emulator/images`` shows (timestamps are epoch seconds)."""
        return {
            "id": record.id,
            "source": record.source,
            "status": record.status(self.clock()),
            "brand_id": record.brand_id,
            "workspace_id": record.workspace_id,
            "action_type": record.action_type,
            "variant_group_id": record.variant_group_id,
            "parent_id": record.parent_id,
            "prompt": record.prompt,
            "model": record.model,
            "image_size": record.image_size,
            "width": record.width,
            "height": record.height,
            "mime_type": record.mime_type(),
            "created_at": record.created_at,
            "generating_at": record.generating_at,
            "terminal_at": record.terminal_at,
            "outcome": record.outcome,
            "failure_reason": record.failure_reason,
        }


def _ratio_of(record: StoredImage) -> str:
    return record.aspect_ratio or nearest_aspect_ratio(record.width or 1, record.height or 1) or "1:1"


def _brand_name(hostname: str, path: str) -> str:
    host = hostname.lower().removeprefix("www.")
    if host.endswith("instagram.com") and path.strip("/"):
        label = path.strip("/").split("/")[0]
    else:
        label = host.split(".")[0] if host else "Brand"
    return label.replace("-", " ").replace("_", " ").title() or "Brand"
