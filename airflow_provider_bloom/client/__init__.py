"""The client layer: Bloom's API with no Airflow in it.

- :mod:`.spec`: Bloom's OpenAPI document read as operations, and the input checks made before a call;
- :mod:`.operations`: the 23 operations as methods, declared once for both clients and the hook;
- :mod:`.core`: what both transports share: building and checking a request, reading an answer,
  redacting credentials, and the one retry policy (:mod:`.retry`);
- :mod:`.transport`: :class:`~.transport.BloomClient` and :class:`~.transport.AsyncBloomClient`, both
  on httpx (one library, one error classification), each a thin loop around those decisions;
- :mod:`.settings`: what a client is configured with; :mod:`.files`: file inputs and uploads.

Nothing here is imported eagerly: a DAG file that imports an operator loads no HTTP stack.
"""
