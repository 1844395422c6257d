"""Operators that start Bloom image work: GenerateImageOperator (and, re-exported at the end, the others)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from airflow_provider_bloom._images import flatten_image_ids
from airflow_provider_bloom._spec import MAX_WAIT_SECONDS, check_value, get_operation, to_camel
from airflow_provider_bloom.exceptions import MAYBE_CHARGED_HINT
from airflow_provider_bloom.links import BloomImageLink, image_links
from airflow_provider_bloom.operators._base import (
    AirflowFailException,
    BloomBaseOperator,
    ImageWaitMixin,
    PaidRequestLedger,
    bloom_errors,
    literal_from_template,
)

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

    Never pays twice: on Airflow 3.3+ the ids are kept in ``task_state_store``
    the moment Bloom accepts the request, and a later try of the same task
    instance (a retry, or a resume after the worker died) reuses them instead of
    posting again. Clearing a task that already succeeded reuses its images too,
    unless the request changed (or ``[state_store] clear_on_success`` is set).
    A request whose answer was lost fails without retries, saying it may have
    been charged.

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
            ledger = PaidRequestLedger(context, self.log)
            accepted = ledger.run(GENERATE, call.json, lambda: self.hook.client.execute(call))
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

    @staticmethod
    def _accepted_ids(accepted: Mapping[str, Any]) -> list[str]:
        ids = accepted.get("ids")
        if not isinstance(ids, list) or not ids or not all(isinstance(i, str) for i in ids):
            raise AirflowFailException(
                f"Bloom accepted the generation but its answer holds no image ids: {dict(accepted)!r:.200}. "
                f"{MAYBE_CHARGED_HINT}"
            )
        return ids


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
