"""The client layer: Bloom's API with no Airflow in it.

- :mod:`.spec`: Bloom's OpenAPI document read as operations, and the input checks made before a call;
- :mod:`.operations`: the 23 operations as methods, declared once for both clients and the hook;
- :mod:`.core`: what both transports share: building and checking a request, reading an answer,
  redacting credentials, and the one retry policy (:mod:`.retry`);
- :mod:`.transport`: :class:`~.transport.BloomClient` and :class:`~.transport.AsyncBloomClient`, both
  on httpx (one library, one error classification), each a thin loop around those decisions;
- :mod:`.settings`: what a client is configured with; :mod:`.files`: file inputs and uploads.

``from airflow_provider_bloom.client import BloomClient`` (or ``AsyncBloomClient``, ``ClientSettings``)
is the way in for code outside Airflow. Nothing here is imported eagerly: the transports load when a
client class is first asked for, so a DAG file that imports an operator loads no HTTP library.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from airflow_provider_bloom.client.settings import ClientSettings
    from airflow_provider_bloom.client.transport import AsyncBloomClient, BloomClient

__all__ = ["AsyncBloomClient", "BloomClient", "ClientSettings"]


def __getattr__(name: str) -> Any:
    """Return a client class when it is first asked for: importing the package loads no HTTP library."""
    if name in ("BloomClient", "AsyncBloomClient"):
        from airflow_provider_bloom.client import transport

        return getattr(transport, name)
    if name == "ClientSettings":
        from airflow_provider_bloom.client.settings import ClientSettings

        return ClientSettings
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
