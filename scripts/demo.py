"""``make demo``: run the example ``bloom_content_pipeline`` end to end and leave the images in ./output.

Without ``BLOOM_API_KEY`` it starts the built-in Bloom emulator on loopback (no key, no network). With
``BLOOM_API_KEY`` and ``BLOOM_BRAND_ID`` (optionally ``BLOOM_BASE_URL``) set, the same command runs against
Bloom itself and spends credits (the pipeline's ``check_credits`` task stops it first when the balance
is short).

Airflow runs with a throwaway home (a temporary folder with a SQLite database), through ``dag.test()`` in
a child process; the parent shows progress, prints a table of the results and stops everything it
started, also on Ctrl-C. Nothing prints the API key.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import sqlite3
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from types import FrameType
from typing import Any

import httpx
from bloom_connection import CONN_ENV_VAR, BloomTarget, ConfigurationError, target_from_env
from local_stack import DAGS_FOLDER, EMULATOR_MODULE, ManagedProcess, start_emulator

DAG_ID = "bloom_content_pipeline"
FINISHED = {"success", "failed", "skipped", "upstream_failed", "removed"}
ACTIVE = {"queued", "running", "deferred", "up_for_retry", "up_for_reschedule"}
#: Demo-speed emulator: an image takes 3-5 s, like a fast real generation, not the tests' 50 ms.
EMULATOR_ARGS = ("--generation-seconds", "3", "--generation-jitter", "2", "--brand-ready-seconds", "3")

__all__ = ["DAGS_FOLDER", "EMULATOR_MODULE", "main"]


class Interrupted(Exception):
    """SIGINT/SIGTERM/SIGHUP arrived: stop, clean up, exit 130."""


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


class Clock:
    def __init__(self) -> None:
        self.start = time.monotonic()

    def __call__(self) -> str:
        return f"[{time.monotonic() - self.start:5.1f}s]"


# ----------------------------------------------------------------------------- the child: dag.test()


def run_child(output: str, result_file: Path) -> int:
    """In the child process: run the pipeline with dag.test() and write what happened to ``result_file``."""
    from airflow.dag_processing.dagbag import DagBag
    from airflow.models.xcom import XComModel
    from airflow.utils.session import create_session

    bag = DagBag(str(DAGS_FOLDER))
    dag = bag.get_dag(DAG_ID)
    if bag.import_errors or dag is None:
        result_file.write_text(json.dumps({"state": "import_error", "errors": bag.import_errors}))
        return 1
    dag_run = dag.test(run_conf={"output": output})
    with create_session() as session:
        tis = dag_run.get_task_instances(session=session)
        tasks = {f"{ti.task_id}[{ti.map_index}]": ti.state for ti in tis}
        values = {}
        for task_id in ("write_manifest", "credits_report"):
            row = (
                session.query(XComModel)
                .filter_by(dag_id=DAG_ID, run_id=dag_run.run_id, task_id=task_id, key="return_value")
                .one_or_none()
            )
            values[task_id] = XComModel.deserialize_value(row) if row is not None else None
    result = {
        "state": str(dag_run.state),
        "run_id": dag_run.run_id,
        "tasks": tasks,
        "entries": values["write_manifest"],
        "credits": values["credits_report"],
    }
    result_file.write_text(json.dumps(result, default=str))
    return 0 if result["state"] == "success" else 1


# ----------------------------------------------------------------------------- the parent


def airflow_env(home: Path, target: BloomTarget) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("AIRFLOW__", "AIRFLOW_CONN_"))}
    env.update(
        {
            "AIRFLOW_HOME": str(home),
            "AIRFLOW__DATABASE__SQL_ALCHEMY_CONN": f"sqlite:///{home / 'airflow.db'}",
            "AIRFLOW__CORE__DAGS_FOLDER": str(DAGS_FOLDER),
            "AIRFLOW__CORE__LOAD_EXAMPLES": "False",
            "AIRFLOW__LOGGING__BASE_LOG_FOLDER": str(home / "logs"),
            CONN_ENV_VAR: target.connection_json(),
            "PYTHONUNBUFFERED": "1",
        }
    )
    return env


def task_states(db: Path) -> dict[str, str]:
    """``task[map_index]`` -> state of the newest run, read straight from the SQLite metadata DB."""
    if not db.exists():
        return {}
    try:
        with sqlite3.connect(f"file:{db}?mode=ro", uri=True, timeout=1) as conn:
            rows = conn.execute(
                "SELECT task_id, map_index, state FROM task_instance WHERE dag_id = ? AND run_id = "
                "(SELECT run_id FROM dag_run WHERE dag_id = ? ORDER BY id DESC LIMIT 1)",
                (DAG_ID, DAG_ID),
            ).fetchall()
    except sqlite3.Error:  # the DB is busy or not migrated yet: try again next tick
        return {}
    return {f"{task}[{index}]" if index >= 0 else task: state or "none" for task, index, state in rows}


def image_counts(root_url: str | None) -> str:
    if root_url is None:
        return ""
    try:
        images = httpx.get(f"{root_url}/_emulator/images", timeout=2).json()["images"]
    except (httpx.HTTPError, ValueError, KeyError):
        return ""
    counts = Counter(image["status"] for image in images if image.get("source") == "generated")
    listed = ", ".join(f"{n} {status}" for status, n in sorted(counts.items()))
    return f" · images: {listed}" if counts else ""


def progress_line(states: Mapping[str, str], root_url: str | None) -> str:
    done = sum(state in FINISHED for state in states.values())
    busy = sorted(name for name, state in states.items() if state in ACTIVE)
    now = f" · now: {', '.join(busy[:4])}{' ...' if len(busy) > 4 else ''}" if busy else ""
    return f"tasks {done}/{len(states)} done{now}{image_counts(root_url)}"


def wait_with_progress(child: ManagedProcess, db: Path, root_url: str | None, clock: Clock) -> None:
    last, last_print = "", 0.0
    while child.alive:
        states = task_states(db)
        line = progress_line(states, root_url) if states else "parsing the DAGs, starting the in-process API"
        if line != last or time.monotonic() - last_print > 10:
            print(f"{clock()} {line}", flush=True)
            last, last_print = line, time.monotonic()
        time.sleep(1)


def human_size(size: int | None) -> str:
    if size is None:
        return "-"
    return f"{size / 1024:.1f} KB" if size < 1024 * 1024 else f"{size / 1024 / 1024:.1f} MB"


def short(text: str, width: int) -> str:
    return text if len(text) <= width else text[: width - 1] + "…"


def results_table(entries: list[dict[str, Any]]) -> Iterator[str]:
    """prompt, channel, image id, status, file, size: one line per image."""
    cwd = Path.cwd()

    def shown(file: str | None) -> str:
        if not file:
            return "-"
        path = Path(file.removeprefix("file://"))
        try:
            return str(path.relative_to(cwd))
        except ValueError:
            return str(path)

    rows = [
        (
            short(e["prompt"], 44),
            e["channel"],
            e["image_id"],
            e["status"] + (f" ({e['failure_reason']})" if e.get("failure_reason") else ""),
            shown(e.get("file")),
            human_size(e.get("bytes")),
        )
        for e in entries
    ]
    header = ("prompt", "channel", "image id", "status", "file", "size")
    widths = [max(len(str(r[i])) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, tuple("-" * w for w in widths), *rows]:
        yield "  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip()


def migrate(env: Mapping[str, str], log_dir: Path) -> None:
    child = ManagedProcess("db-migrate", [sys.executable, "-m", "airflow", "db", "migrate"], env, log_dir)
    try:
        child.start()
        assert child.proc is not None
        if child.proc.wait() != 0:
            raise RuntimeError(f"airflow db migrate failed:\n{child.tail()}")
    finally:
        child.stop()


@contextmanager
def signals_raise() -> Iterator[None]:
    handled = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    previous = {sig: signal.signal(sig, _interrupt) for sig in handled}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", default="output", help="where the images go (default ./output)")
    parser.add_argument("--keep-home", action="store_true", help="keep the throwaway AIRFLOW_HOME")
    parser.add_argument("--child", metavar="RESULT_FILE", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    output = str(Path(args.output).resolve())
    if args.child:
        return run_child(output, Path(args.child))

    clock = Clock()
    try:
        target = target_from_env(os.environ, "http://127.0.0.1:0/api/v1")
    except ConfigurationError as exc:
        print(f"demo: {exc}", file=sys.stderr)
        return 2
    home = Path(tempfile.mkdtemp(prefix="bloom-demo-airflow-"))
    (home / "demo-logs").mkdir()
    started: list[ManagedProcess] = []
    succeeded, keep_logs = False, True
    try:
        with signals_raise():
            succeeded = run_demo(target, home, output, started, clock)
            keep_logs = not succeeded
    except Interrupted as exc:
        print(f"\n{clock()} Interrupted ({exc}): stopping what the demo started...", flush=True)
        keep_logs = False
        return 130
    except Exception as exc:
        print(f"{clock()} The demo failed: {redact(str(exc), target)}", file=sys.stderr)
        return 1
    finally:
        for process in reversed(started):
            process.stop(grace=5)
        if keep_logs or args.keep_home:
            print(f"Airflow home and logs kept in {home}", file=sys.stderr)
        else:
            shutil.rmtree(home, ignore_errors=True)
    return 0 if succeeded else 1


def run_demo(
    target: BloomTarget, home: Path, output: str, started: list[ManagedProcess], clock: Clock
) -> bool:
    """Emulator (unless Bloom), metadata DB, the pipeline in a child with progress, then the table."""
    log_dir = home / "demo-logs"
    root_url = None
    if target.mode == "emulator":
        emulator, root_url = start_emulator(log_dir, *EMULATOR_ARGS)
        started.append(emulator)
        target = target_from_env(os.environ, f"{root_url}/api/v1")
    say(clock, f"Bloom: {target.describe()}")
    if target.mode == "bloom":
        say(clock, "This spends Bloom credits (check_credits stops the run when the balance is short).")
    env = airflow_env(home, target)
    say(clock, f"Airflow home (throwaway): {home}")
    begun = time.monotonic()
    migrate(env, log_dir)
    say(clock, f"Metadata database ready (airflow db migrate took {time.monotonic() - begun:.1f}s)")
    say(clock, f"Running {DAG_ID} with dag.test(); images go to {output}")
    result_file = home / "result.json"
    argv = [sys.executable, str(Path(__file__).resolve()), "--output", output, "--child", str(result_file)]
    child = ManagedProcess("dag-test", argv, env, log_dir).start()
    started.append(child)
    wait_with_progress(child, home / "airflow.db", root_url, clock)
    result = json.loads(result_file.read_text()) if result_file.exists() else {"state": "crashed"}
    return report(result, child, target, clock)


def say(clock: Clock, text: str) -> None:
    print(f"{clock()} {text}", flush=True)


def redact(text: str, target: BloomTarget) -> str:
    return text.replace(target.api_key, "***") if target.api_key else text


def report(result: Mapping[str, Any], child: ManagedProcess, target: BloomTarget, clock: Clock) -> bool:
    entries = result.get("entries") or []
    if result.get("state") != "success":
        failed = {t: s for t, s in (result.get("tasks") or {}).items() if s not in ("success", "skipped")}
        print(f"{clock()} {DAG_ID} did not succeed: {result.get('state')}; tasks: {failed}", file=sys.stderr)
        if result.get("errors"):
            print(redact(json.dumps(result["errors"], indent=2), target), file=sys.stderr)
        print(redact(child.tail(60), target), file=sys.stderr)
        return False
    print(f"{clock()} {DAG_ID} succeeded:\n")
    for line in results_table(entries):
        print("  " + line)
    files = [e["file"] for e in entries if e.get("file")]
    folder = Path(files[0].removeprefix("file://")).parent if files else None
    print(f"\n{len(files)} image file(s) in {folder} (manifest.json beside them).", flush=True)
    for line in credits_lines(result.get("credits")):
        print(line, flush=True)
    return True


def credits_lines(report: Mapping[str, Any] | None) -> list[str]:
    """What the run spent (the pipeline's credits_report task), and whether Bloom's balance agrees."""
    if not isinstance(report, Mapping):
        return ["Credits: the run's credits_report task left no report."]
    kinds = ", ".join(f"{kind} {credits}" for kind, credits in sorted((report.get("by_kind") or {}).items()))
    lines = [f"Credits spent by this run: {report.get('credits')} ({kinds or 'nothing'})."]
    if report.get("balance_drop") is not None:
        verdict = "as computed" if report.get("matches") else "NOT as computed"
        lines.append(
            f"Bloom's balance went from {report['balance_start']:g} to {report['balance_end']:g}: "
            f"a drop of {report['balance_drop']:g}, {verdict}."
        )
    return lines


if __name__ == "__main__":
    sys.exit(main())
