"""One async connection lookup shared by the Bloom triggers that start together in a triggerer.

A thousand triggers that start at once (a triggerer restarting, a large mapped task deferring) await
the same lookup of their connection; triggers that start within :data:`SETTINGS_TTL_SECONDS` after
it reuse its answer. The settings hold the credential, so they stay in this process's memory: a
trigger serializes only the connection id.
"""

from __future__ import annotations

import asyncio
import time

from airflow_provider_bloom.client.settings import ClientSettings

#: How long a looked-up connection is reused by triggers that start afterwards (seconds).
SETTINGS_TTL_SECONDS = 10.0

_settings_cache: dict[str, tuple[float, ClientSettings]] = {}
_lookups: dict[tuple[int, str], asyncio.Task[ClientSettings]] = {}


def forget_connections() -> None:
    """Drop cached connection lookups (tests that change a connection call this)."""
    _settings_cache.clear()


async def connection_settings(conn_id: str) -> ClientSettings:
    """The client settings of ``conn_id``, from one async lookup shared by the triggers starting together.

    A thousand triggers that start at once await the same lookup; triggers that start within
    :data:`SETTINGS_TTL_SECONDS` after it reuse its answer.
    """
    cached = _settings_cache.get(conn_id)
    if cached is not None and cached[0] > time.monotonic():
        return cached[1]
    from airflow_provider_bloom.hooks.bloom import BloomHook

    loop = asyncio.get_running_loop()
    key = (id(loop), conn_id)
    task = _lookups.get(key)
    if task is None:
        task = loop.create_task(BloomHook(bloom_conn_id=conn_id).aget_settings())
        _lookups[key] = task

        def _done(done: asyncio.Task[ClientSettings], key: tuple[int, str] = key) -> None:
            if _lookups.get(key) is done:
                del _lookups[key]
            if not done.cancelled() and done.exception() is None:
                _settings_cache[key[1]] = (time.monotonic() + SETTINGS_TTL_SECONDS, done.result())

        task.add_done_callback(_done)
    return await asyncio.shield(task)
