"""Operators that start paid Bloom image work: generate, and post-process existing images (edit,
resize, remove the background, vectorize). Each can wait for what it started.

The library operators (upload, search, list, delete) are in :mod:`.library` and are importable from
here too, as they always were.

The post-processing operators take one image id, a list of ids, or the image records a sensor
returns; they check every input before spending (ids, arguments against Bloom's spec, and that each
image is completed and can take the operation), then post one paid request per image, each through
the task's :class:`~airflow_provider_bloom.tasks.ledger.PaidRequestLedger` so a retried task
never pays twice. They return the new image ids (or, with ``wait_for_completion=True``, the finished
image records).
"""

from __future__ import annotations

import functools
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow.providers.common.compat.sdk import AirflowFailException

from airflow_provider_bloom.exceptions import MAYBE_CHARGED_HINT, BloomError
from airflow_provider_bloom.lineage import record_provenance
from airflow_provider_bloom.logic.provenance import generation_provenance
from airflow_provider_bloom.logic.reconcile import Attempt, ImageQuery
from airflow_provider_bloom.logic.records import ImageStatus
from airflow_provider_bloom.operators._image_work import (
    DEFAULT_FALLBACK_MODELS,
    DEFAULT_MAX_ATTEMPTS,
    DEFAULT_RETRY_PAUSE,
    ImageWorkOperator,
    PostProcessOperator,
    rendered_argument,
)
from airflow_provider_bloom.tasks.base import bloom_errors

if TYPE_CHECKING:
    from airflow.sdk import Context

    from airflow_provider_bloom.client.core import PreparedCall

GENERATE = "images.generate"
#: The generation's request arguments (templated).
REQUEST_FIELDS = (
    "prompt",
    "brand_session_id",
    "aspect_ratio",
    "image_size",
    "model",
    "variant_count",
    "reference_image_ids",
)


class BloomGenerateImageOperator(ImageWorkOperator):
    """Generate on-brand images with Bloom (``POST /images/generations``).

    Returns (XCom ``return_value``) the list of new image ids and pushes
    ``variant_group_id``. With ``wait_for_completion=True`` it also waits until
    the images are terminal (in the worker, or deferred to the triggerer with
    ``deferrable=True``) and returns their records instead, like dbt Cloud's
    run-job operator.

    Every argument is checked against Bloom's spec before anything is sent
    (literal values already when the DAG is parsed); a bad one fails the task
    without retries, naming the field.

    Never pays twice: on Airflow 3.3+ the ids are kept in ``task_state_store`` the moment Bloom
    accepts the request, and a later try of the same run of the task (a retry, or a resume after the
    worker died) reuses them instead of posting again. Clearing the task makes new images (pass
    ``reuse_on_clear=True`` to keep them). A request whose answer was lost is not sent again: the
    images it created are looked up in Bloom's list (same prompt, ratio and variant count, one
    variant group, created while the request was out) and adopted when the match is certain;
    otherwise the task fails without retries, listing the candidates.

    :param prompt: what to generate (1-2000 characters). Templated.
    :param brand_session_id: the brand; defaults to the connection's ``brand_session_id`` extra. Templated.
    :param aspect_ratio: one of Bloom's ratios ("1:1", "16:9", ...). Templated.
    :param image_size: "2K" (1 credit) or "4K" (2 credits). Templated.
    :param model: "fast", "standard" or "pro". Templated.
    :param variant_count: 1-5 variants (each costs like one image). Templated.
    :param reference_image_ids: up to 10 image ids (a list, an upstream task's output, records). Templated.
    :param bloom_conn_id: the Bloom connection.
    :param wait_for_completion: wait until the images are terminal and return their records.
    :param deferrable: wait in the triggerer (default: ``[operators] default_deferrable``).
    :param wait_timeout: seconds the wait may take before the task fails (and may be retried).
    :param poll_timeout: seconds Bloom may hold each long-poll (1..295).
    :param on_failure: when an image failed: "fail" the task, "skip" it, or "ignore" (return all).
    :param include_urls: keep Bloom's signed download URLs in the returned records.
    :param defer_after: deferrable mode: seconds to wait in the worker (one long-poll) before
        deferring, at most ``wait_timeout``; images that end within it need no deferral (default 10;
        0 defers at once).
    :param min_defer_seconds: deferrable mode: the trigger does not fire sooner than this after
        the deferral (default 10), which keeps Airflow's defer-exit race from failing the task.
    :param max_credits: the most this task may spend (by the provider's price list, earlier tries
        included); a call that would pass it fails the task before it is sent. Templated.
    :param on_refused: ``"report"`` (default: a refused image is failed, as Bloom says) or
        ``"regenerate"``: make it again, after ``content_safety`` on the next of ``fallback_models``,
        after ``rate_limited`` on the same model once ``retry_pause`` seconds have passed (needs
        ``wait_for_completion=True``). Every attempt is a paid request kept in the ledger (a retry of
        the task pays none twice); XCom ``bloom_attempts`` lists them, and the task returns the final
        images. See the refusals how-to.
    :param fallback_models: models to try after ``content_safety``, in order (default
        ``["standard"]``, Bloom's advice).
    :param max_attempts: requests per input at most, the first included (default 3).
    :param retry_pause: seconds to pause before asking again after ``rate_limited`` (default 10).

    Pushes XCom ``bloom_credits`` (what the task spent, see the credits how-to).
    """

    operation = GENERATE
    template_fields: Sequence[str] = (*REQUEST_FIELDS, "max_credits")
    ui_color = "#f4d6e6"

    def __init__(
        self,
        *,
        prompt: str,
        brand_session_id: str | None = None,
        aspect_ratio: str | None = None,
        image_size: str | None = None,
        model: str | None = None,
        variant_count: int | str | None = None,
        reference_image_ids: Any = None,
        on_refused: str = "report",
        fallback_models: Sequence[str] | None = DEFAULT_FALLBACK_MODELS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_pause: float = DEFAULT_RETRY_PAUSE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.brand_session_id = brand_session_id
        self.aspect_ratio = aspect_ratio
        self.image_size = image_size
        self.model = model
        self.variant_count = variant_count
        self.reference_image_ids = reference_image_ids
        self.check_known(REQUEST_FIELDS)
        self.set_refusal_policy(on_refused, fallback_models, max_attempts, retry_pause)

    def build_request(self) -> dict[str, Any]:
        """Return the generation's rendered arguments (the hook's ``prepare`` checks them)."""
        return {
            name: rendered_argument(name, getattr(self, name))
            for name in REQUEST_FIELDS
            if getattr(self, name) is not None
        }

    def execute(self, context: Context) -> Any:
        meter = self.credit_meter()
        with self.spending(context, meter):
            with bloom_errors("Bloom image generation"):
                call = self.hook.prepare(GENERATE, body=self.build_request())
                body = dict(call.json or {})
                accepted = self.paid_ledger(context, meter).pay(
                    call,
                    functools.partial(self.hook.send, call),
                    recover=lambda lost, attempt: self._recover(body, lost, attempt),
                    valid=lambda answer: _valid_ids(answer.get("ids")),
                    what="the generation",
                )
            ids = self._accepted_ids(accepted)
            self.log.info(
                "Bloom accepted the generation: %d image(s) %s (variant group %s)",
                len(ids),
                ids,
                accepted.get("variantGroupId"),
            )
            context["ti"].xcom_push(key="variant_group_id", value=accepted.get("variantGroupId"))
            group, prices = accepted.get("variantGroupId"), self.hook.settings.prices
            record_provenance(self, context, generation_provenance(body, ids, group, prices=prices))
            if self.refusal.regenerates:
                first = {"model": body.get("model"), "image_ids": ids}
                return self.start_attempts(context, [{"key": body["prompt"], "attempts": [first]}], meter)
            return self.finish(context, ids)

    def attempt_call(self, key: str, model: str | None) -> PreparedCall:
        """The same generation on ``model`` (a refused image made again)."""
        return self.hook.prepare(GENERATE, body={**self.build_request(), "model": model})

    def _recover(self, body: Mapping[str, Any], lost: BloomError, attempt: Attempt) -> dict[str, Any]:
        """The images a generation whose answer was lost created: one group with its prompt, ratio
        and variant count, created while the request was out (see
        :mod:`~airflow_provider_bloom.logic.reconcile`)."""
        query = ImageQuery(
            operation=GENERATE,
            action_type="generation",
            brand_session_id=str(body["brandSessionId"]),
            count=int(body.get("variantCount") or 1),
            prompt=str(body["prompt"]),
            aspect_ratio=body.get("aspectRatio"),  # Bloom documents no default: any ratio if unset
        )
        found = self.reconciler().images(query, lost, attempt)
        self.log.warning(
            "Recovered the %d image(s) of the generation whose answer was lost: %s (created %s)",
            len(found.ids),
            found.ids,
            [r.get("createdAt") for r in found.records],
        )
        return {
            "ids": found.ids,
            "variantGroupId": found.records[0].get("variantGroupId"),
            "status": ImageStatus.PENDING.value,
            "recovered": True,
        }

    @staticmethod
    def _accepted_ids(accepted: Mapping[str, Any]) -> list[str]:
        ids = accepted.get("ids")
        if not _valid_ids(ids):
            raise AirflowFailException(
                f"Bloom accepted the generation but its answer holds no image ids: {dict(accepted)!r:.200}. "
                f"{MAYBE_CHARGED_HINT}"
            )
        return list(ids or [])


def _valid_ids(ids: Any) -> bool:
    return isinstance(ids, list) and bool(ids) and all(isinstance(i, str) and i for i in ids)


class BloomEditImageOperator(PostProcessOperator):
    """Edit completed (or uploaded) Bloom images with a prompt: one new image per input.

    :param image_ids: an image id, a list of ids, or image records (e.g. a sensor's output). Templated.
    :param prompt: what to change (1-2000 characters). Templated.
    :param brand_session_id: the brand; defaults to the connection's ``brand_session_id``. Templated.
    :param image_size: ``"2K"`` (1 credit) or ``"4K"`` (2 credits).
    :param model: ``"fast"``, ``"standard"`` or ``"pro"``.
    :param reference_image_ids: up to 9 extra context images (ids, records, or a search's output). Templated.
    :param check_sources: check before paying that every input is completed and editable (free GETs).
    :param wait_for_completion: wait for the new images and return their records instead of their ids.
    :param deferrable: wait in the triggerer instead of a worker slot.
    :param wait_timeout: seconds to wait for the new images.
    :param poll_timeout: seconds per long-poll (1-295).
    :param on_failure: when a new image fails: ``"fail"``, ``"skip"`` or ``"ignore"``.
    :param include_urls: keep signed download URLs in the returned records.
    :param max_credits: the most this task may spend; a call that would pass it is not sent. Templated.
    :param on_refused: ``"report"`` or ``"regenerate"``, with ``fallback_models``, ``max_attempts`` and
        ``retry_pause``: as :class:`BloomGenerateImageOperator`, per input image.
    :return: the new image ids (input order), or their records when waiting.
    """

    operation = "images.edit"
    action = "edit"
    arguments = ("prompt", "image_size", "model", "reference_image_ids")
    template_fields: Sequence[str] = (
        "image_ids",
        "prompt",
        "brand_session_id",
        "reference_image_ids",
        "max_credits",
    )
    template_fields_renderers = {"prompt": "md"}

    def __init__(
        self,
        *,
        prompt: str,
        image_size: str | None = None,
        model: str | None = None,
        reference_image_ids: Any = None,
        on_refused: str = "report",
        fallback_models: Sequence[str] | None = DEFAULT_FALLBACK_MODELS,
        max_attempts: int = DEFAULT_MAX_ATTEMPTS,
        retry_pause: float = DEFAULT_RETRY_PAUSE,
        **kwargs: Any,
    ) -> None:
        super().__init__(**kwargs)
        self.prompt = prompt
        self.image_size = image_size
        self.model = model
        self.reference_image_ids = reference_image_ids
        self.check_known(self.arguments)
        self.set_refusal_policy(on_refused, fallback_models, max_attempts, retry_pause)

    def attempt_call(self, key: str, model: str | None) -> PreparedCall:
        """The same edit of image ``key`` on ``model`` (a refused image made again)."""
        return self.hook.prepare(
            self.operation, path={"id": key}, body={**self.request_body(), "model": model}
        )

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        return None  # any completed, uploaded or scraped image can be edited

    def recovery_query(self, image_id: str, call: PreparedCall, created: Sequence[str]) -> ImageQuery:
        """An edit result carries its prompt and keeps its source's aspect ratio: one such record,
        created while the request was out and not made earlier by this task, is certain."""
        body = call.json or {}
        try:
            ratio = self.hook.get_image(image_id).get("aspectRatio")
        except BloomError as exc:  # the ratio only narrows the search
            self.log.warning("Could not read the source image %s (%s); matching any ratio", image_id, exc)
            ratio = None
        return ImageQuery(
            operation=self.operation,
            action_type=self.action,
            brand_session_id=body.get("brandSessionId"),
            prompt=body.get("prompt"),
            aspect_ratio=ratio,
            exclude=frozenset(created),
        )


class BloomResizeImageOperator(PostProcessOperator):
    """Re-frame completed Bloom images to another aspect ratio (e.g. ``"9:16"`` for stories).

    Costs like a generation of the source's size. Takes the arguments of :class:`BloomEditImageOperator`
    except ``prompt``/``image_size``/``model``/``reference_image_ids``, plus:

    :param target_aspect_ratio: one of Bloom's ratios (``"1:1"``, ``"9:16"``, ``"16:9"``, ...). Templated.
    :return: the new image ids, or their records when waiting.
    """

    operation = "images.resize"
    action = "resize"
    arguments = ("target_aspect_ratio",)
    template_fields: Sequence[str] = ("image_ids", "target_aspect_ratio", "brand_session_id", "max_credits")

    def __init__(self, *, target_aspect_ratio: str, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.target_aspect_ratio = target_aspect_ratio
        self.check_known(self.arguments)

    def source_problem(self, record: Mapping[str, Any]) -> str | None:
        if record.get("aspectRatio") == self.target_aspect_ratio:
            return f"is already {self.target_aspect_ratio}; Bloom refuses a resize to the same ratio"
        return super().source_problem(record)


class BloomRemoveBackgroundOperator(PostProcessOperator):
    """Cut out the subject of completed Bloom images (a transparent PNG per input).

    Arguments as :class:`BloomResizeImageOperator` without ``target_aspect_ratio``.

    :return: the new image ids, or their records when waiting.
    """

    operation = "images.removeBackground"
    action = "remove-background"


class BloomVectorizeImageOperator(PostProcessOperator):
    """Turn completed Bloom images (logo-like marks work best) into SVGs.

    Arguments as :class:`BloomResizeImageOperator` without ``target_aspect_ratio``.

    :return: the new image ids, or their records when waiting.
    """

    operation = "images.vectorize"
    action = "vectorize"


__all__ = [
    "BloomEditImageOperator",
    "BloomGenerateImageOperator",
    "BloomRemoveBackgroundOperator",
    "BloomResizeImageOperator",
    "BloomVectorizeImageOperator",
]
