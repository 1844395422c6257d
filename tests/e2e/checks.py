"""What the end-to-end tests check the same way, one copy each: the content pipeline's plan and what it paid,
the 429s Bloom's limit answered, the API key in no file, and the logs printed when a step fails.

``bloom_content_pipeline`` runs on the LocalExecutor (test_content_pipeline_e2e.py), on Celery
(test_celery_e2e.py) and under dag.test() (tests/test_examples.py); all plan the same paid requests for
the shipped prompts file.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Protocol
from urllib.parse import quote

from airflow_provider_bloom.emulator import EmulatorClient

DAG_ID = "bloom_content_pipeline"
#: Planned paid requests for the shipped prompts file: 12 generations, 4 story resizes, 3 cut-outs.
PLANNED = {"images.generate": 12, "images.resize": 4, "images.removeBackground": 3}
#: The tasks that wait for Bloom (and may defer to a triggerer).
WAITING_TASKS = ("generate", "resize_stories", "remove_backgrounds")
#: The speed of `make demo` (scripts/demo.py): 3-5 s per image, like a fast real generation.
DEMO_SPEED = {"generation_seconds": 3.0, "generation_jitter": 2.0}
#: A line each run's task logs hold (so a check of the logs reads the operators' real output).
WORKED = re.compile(r"Bloom accepted the generation|Submitted [\d,]+/[\d,]+ rows \(100%\)")


class Reporting(Protocol):
    """A deployment under test that can show its processes' logs."""

    def report(self) -> str: ...


def run_path(run_id: str, dag_id: str = DAG_ID) -> str:
    """The REST API path of a DAG run."""
    return f"/dags/{dag_id}/dagRuns/{quote(run_id, safe='')}"


def paid(emulator: EmulatorClient) -> dict[str, Any]:
    """The paid POSTs the emulator took: the total and each planned operation's."""
    counters = emulator.requests()
    by_operation = counters["by_operation"]
    return {"total": counters["paid_posts"], **{op: by_operation.get(op, 0) for op in PLANNED}}


def answered_429(emulator: EmulatorClient) -> int:
    """How many requests the emulator answered 429 (its rate limit), over every operation."""
    return count_429(emulator.requests())


def count_429(counters: dict[str, Any]) -> int:
    """The 429 answers in the emulator's request counters (``EmulatorClient.requests()``)."""
    statuses = counters.get("by_operation_status", {})
    return sum(int(by_status.get("429", 0)) for by_status in statuses.values())


def assert_key_in_no_file(api_key: str, files: Iterable[Path]) -> None:
    """The files (logs) hold the operators' own lines, and none of them holds the API key."""
    files = list(files)
    assert files, "no logs were written"
    assert any(WORKED.search(p.read_text(errors="replace")) for p in files)
    for path in files:
        assert api_key not in path.read_text(errors="replace"), f"API key in {path}"


def task_logs(home: Path) -> list[Path]:
    """Every task and trigger log file of the deployment in ``home``."""
    return [p for p in (home / "logs").rglob("*") if p.is_file()]


@contextmanager
def printing_logs_on_failure(stack: Reporting) -> Iterator[None]:
    """Print the deployment's logs when the block fails."""
    try:
        yield
    except BaseException:
        print(stack.report())
        raise
