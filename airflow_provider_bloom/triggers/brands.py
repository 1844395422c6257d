"""BloomBrandTrigger: wait in the triggerer until a brand's onboarding ends, without blocking the loop.

The trigger hands the brand to the wait hub of its credential (:mod:`airflow_provider_bloom.triggers.hub`),
which long-polls ``GET /brands/{id}?wait=true`` within the credential's request budget until the brand
is terminal (``ready``, ``logo_required``, ``failed``) or the absolute deadline passes. It fires exactly
one event ``{"status", "brand", "message"}``:

* ``success``: the brand is ``ready``;
* ``failed``: the brand ended ``failed`` or ``logo_required`` (the sensor decides what that means);
* ``timeout``: the deadline passed while the brand was still ``analyzing``;
* ``error``: a permanent Bloom error (the event also carries Bloom's ``code`` and ``permanent``),
  or something unexpected. Transient errors (429, 5xx, network) are asked again until the deadline.
"""

from __future__ import annotations

from typing import Any

from airflow_provider_bloom.client.spec import check_uuid
from airflow_provider_bloom.logic.records import BrandEvent, slim_brand
from airflow_provider_bloom.logic.waiting import error_fields
from airflow_provider_bloom.triggers._base import BloomWaitTrigger
from airflow_provider_bloom.triggers.hub import WaitHub

__all__ = ["BloomBrandTrigger"]


class BloomBrandTrigger(BloomWaitTrigger):
    """Fire once when a Bloom brand's onboarding ends or ``deadline`` (epoch seconds, UTC) passes.

    :param brand_id: the brand to watch.

    ``deadline``, ``bloom_conn_id``, ``poll_timeout``, ``retry_delay`` and ``not_before``: see
    :class:`~airflow_provider_bloom.triggers._base.BloomWaitTrigger`.
    """

    def __init__(self, brand_id: str, deadline: float, **kwargs: Any) -> None:
        super().__init__(deadline=deadline, **kwargs)
        self.brand_id = check_uuid("brand_id", brand_id)

    def arguments(self) -> dict[str, Any]:
        return {"brand_id": self.brand_id}

    def __repr__(self) -> str:
        name, conn = type(self).__name__, self.bloom_conn_id
        return f"<{name} brand={self.brand_id} conn={conn!r} deadline={self.deadline:.0f}>"

    async def wait_in(self, hub: WaitHub) -> BrandEvent:
        return await hub.wait_brand(self.brand_id, self)

    def error_event(self, error: BaseException) -> BrandEvent:
        return {"brand": slim_brand({"id": self.brand_id}), **error_fields(error)}
