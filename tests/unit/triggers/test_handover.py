"""The worker's brief wait hands the trigger what it learned: the images that ended are not asked again.

Against the emulator: an image handed over as settled is then deleted, so that the trigger would get
an error event (Bloom no longer returns it) if it asked for it again.
"""

from __future__ import annotations

import json

import pytest
from airflow.providers.common.compat.sdk import TaskDeferred

from airflow_provider_bloom.hooks.bloom import BloomHook
from airflow_provider_bloom.sensors.images import BloomImageSensor
from tests.helpers import events_of


@pytest.fixture
def one_done_one_running(bloom_conn) -> tuple[str, str]:
    bloom_conn.configure(generation_seconds=600)
    done, running = (BloomHook().generate_images(prompt)["ids"][0] for prompt in ("done", "running"))
    bloom_conn.reschedule_images(0.1, [done])
    BloomHook().wait_for_images([done], timeout=10)
    return done, running


def defer(sensor: BloomImageSensor, ids: list[str]):
    with pytest.raises(TaskDeferred) as deferred:  # one still running: defer
        sensor.wait_briefly_or_defer({}, ids)  # type: ignore[arg-type]
    return deferred.value.trigger


async def test_the_trigger_asks_only_for_what_the_brief_wait_saw_running(bloom_conn, one_done_one_running):
    done, running = one_done_one_running
    sensor = BloomImageSensor(
        task_id="s", image_ids=[done, running], deferrable=True, defer_after=1, min_defer_seconds=0
    )
    trigger = defer(sensor, [done, running])
    _, kwargs = trigger.serialize()
    assert [(r["id"], r["status"]) for r in kwargs["settled"]] == [(done, "completed")]
    assert json.loads(json.dumps(kwargs)) == kwargs  # small primitives
    BloomHook().delete_images([done])  # asking for it again would now end in an error event
    bloom_conn.reschedule_images(0.2, [running])
    (event,) = await events_of(trigger)
    assert event["status"] == "success", event
    assert [(r["id"], r["status"]) for r in event["images"]] == [(done, "completed"), (running, "completed")]


def test_with_include_urls_nothing_is_handed_over(bloom_conn, one_done_one_running):
    """Signed URLs never go into trigger kwargs: the trigger reads every URL itself."""
    done, running = one_done_one_running
    sensor = BloomImageSensor(
        task_id="s", image_ids=[done, running], deferrable=True, defer_after=1, include_urls=True
    )
    _, kwargs = defer(sensor, [done, running]).serialize()
    assert "settled" not in kwargs and kwargs["image_ids"] == [done, running]
