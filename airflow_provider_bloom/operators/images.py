"""Operators that start Bloom image work: GenerateImageOperator (and, re-exported at the end, the others)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom._images import flatten_image_ids
from airflow_provider_bloom._spec import MAX_WAIT_SECONDS, check_value, get_operation, to_camel
from airflow_provider_bloom.exceptions import MAYBE_CHARGED_HINT, BloomError
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.operators._base import (
    DEFAULT_DEFER_AFTER,
    DEFAULT_MIN_DEFER_SECONDS,
    AirflowFailException,
    BloomBaseOperator,
    ImageWaitMixin,
    PaidRequestLedger,
    bloom_errors,
    literal_from_template,
)
from airflow_provider_bloom.reconcile import Attempt, ImageQuery

if TYPE_CHECKING:
    from airflow.sdk import Context

GENERATE = "images.generate"


def _is_literal(value: Any) -> bool:
    """True for a value known at DAG-parse time: no Jinja, no XComArg, no mapped argument."""
    if value is None or isinstance(value, (bool, int, float)):
        return True
    if isinstance(value, str):
        return "{{" not in value and "{%" not in value
    if isinstance(value, (list, tuple)):
        return all(_is_literal(v) for v in value)
    return False


class GenerateImageOperator(ImageWaitMixin, BloomBaseOperator):
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
        deferring; images that end within it need no deferral (default 10; 0 defers at once).
    :param min_defer_seconds: deferrable mode: the trigger does not fire sooner than this after
        the deferral (default 10), which keeps Airflow's defer-exit race from failing the task.
    """

    template_fields: Sequence[str] = (
        "prompt",
        "brand_session_id",
        "aspect_ratio",
        "image_size",
        "model",
        "variant_count",
        "reference_image_ids",
    )
    operator_extra_links = image_links()
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
        wait_for_completion: bool = False,
        deferrable: bool | None = None,
        wait_timeout: float = 600,
        poll_timeout: int = MAX_WAIT_SECONDS,
        on_failure: str = "fail",
        include_urls: bool = False,
        defer_after: float = DEFAULT_DEFER_AFTER,
        min_defer_seconds: float = DEFAULT_MIN_DEFER_SECONDS,
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
        self.set_wait_options(
            wait_for_completion=wait_for_completion,
            deferrable=deferrable,
            wait_timeout=wait_timeout,
            poll_timeout=poll_timeout,
            on_failure=on_failure,
            include_urls=include_urls,
            defer_after=defer_after,
            min_defer_seconds=min_defer_seconds,
        )
        # Fail at parse time on what is already known; the rest is checked once rendered.
        for name in self.template_fields:
            value = getattr(self, name)
            if value is not None and _is_literal(value):
                self._checked(name, value)

    # -- request ---------------------------------------------------------------------------
    @staticmethod
    def _checked(name: str, value: Any) -> Any:
        """One argument, normalised and checked against the spec (raises BloomInputError naming it)."""
        if name == "variant_count" and isinstance(value, str) and value.strip().isdigit():
            value = int(value)  # a rendered template is a string
        if name == "reference_image_ids":
            value = literal_from_template(value)
            if value in ([], ()):
                return None
            value = flatten_image_ids(value, name)
        schema = get_operation(GENERATE).body[to_camel(name)]
        return check_value(name, value, schema)

    def build_request(self) -> dict[str, Any]:
        """The generation's arguments, rendered and checked: nothing is sent if this raises."""
        request: dict[str, Any] = {}
        for name in self.template_fields:
            value = getattr(self, name)
            if value is not None:
                request[name] = self._checked(name, value)
        return request

    # -- run -------------------------------------------------------------------------------
    def execute(self, context: Context) -> Any:
        with bloom_errors("Bloom image generation"):
            call = self.hook.client.prepare(GENERATE, body=self.build_request())
            body = dict(call.json or {})
            ledger = PaidRequestLedger(context, self.log, reuse_on_clear=self.reuse_on_clear)
            accepted = ledger.run(
                GENERATE,
                call.json,
                lambda: self.hook.client.execute(call),
                recover=lambda lost, attempt: self._recover(body, lost, attempt),
                valid=lambda answer: _valid_ids(answer.get("ids")),
            )
        ids = self._accepted_ids(accepted)
        self.log.info(
            "Bloom accepted the generation: %d image(s) %s (variant group %s)",
            len(ids),
            ids,
            accepted.get("variantGroupId"),
        )
        context["ti"].xcom_push(key="variant_group_id", value=accepted.get("variantGroupId"))
        BloomImageLink.persist_all(context, self.hook.settings.base_url, ids)
        if not self.wait_for_completion:
            return ids
        return self.wait_for_images(context, ids)

    def _recover(self, body: Mapping[str, Any], lost: BloomError, attempt: Attempt) -> dict[str, Any]:
        """The images a generation whose answer was lost created: one group with its prompt, ratio
        and variant count, created while the request was out (see :mod:`..reconcile`)."""
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
            "status": "pending",
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


# ---- end of GenerateImageOperator. Other image operators live in their own module and are
# ---- re-exported below this line (owned by the colleague who writes them).
from airflow_provider_bloom.operators.image_tools import (  # noqa: E402
    DeleteImagesOperator,
    EditImageOperator,
    ListImagesOperator,
    RemoveBackgroundOperator,
    ResizeImageOperator,
    SearchImagesOperator,
    UploadImageOperator,
    VectorizeImageOperator,
)

__all__ = [
    "DeleteImagesOperator",
    "EditImageOperator",
    "GenerateImageOperator",
    "ListImagesOperator",
    "RemoveBackgroundOperator",
    "ResizeImageOperator",
    "SearchImagesOperator",
    "UploadImageOperator",
    "VectorizeImageOperator",
]
