"""``python -m airflow_provider_bloom.emulator --host 127.0.0.1 --port 8787``: serve until SIGINT/SIGTERM."""

from __future__ import annotations

import argparse
import logging
import resource
from collections.abc import Sequence

from airflow_provider_bloom.emulator.config import EmulatorConfig


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    defaults = EmulatorConfig()
    parser = argparse.ArgumentParser(prog="python -m airflow_provider_bloom.emulator", description=__doc__)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8787)
    parser.add_argument("--generation-seconds", type=float, default=defaults.generation_seconds)
    parser.add_argument("--generation-jitter", type=float, default=defaults.generation_jitter)
    parser.add_argument("--brand-ready-seconds", type=float, default=defaults.brand_ready_seconds)
    parser.add_argument(
        "--rate-limit",
        type=int,
        default=defaults.rate_limit_per_minute,
        help="requests per minute per key; 0 = off",
    )
    parser.add_argument("--envelope", choices=("flat", "nested"), default=defaults.error_envelope)
    parser.add_argument("--credits", type=float, default=defaults.initial_credits)
    parser.add_argument("--unlimited-credits", action="store_true")
    parser.add_argument("--no-4k", action="store_true", help="the plan lacks 4K (403 FEATURE_NOT_ENTITLED)")
    parser.add_argument("--download-base-url", default=None, help="origin of signed download URLs")
    parser.add_argument(
        "--validate-responses", action="store_true", help="record responses that break the spec"
    )
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument(
        "--clock-offset", type=float, default=0.0, help="seconds the emulated clock runs ahead (<0: behind)"
    )
    parser.add_argument(
        "--list-delay", type=float, default=0.0, help="seconds before new images show up in filtered lists"
    )
    parser.add_argument(
        "--admin-from",
        action="append",
        metavar="NETWORK",
        help="client network allowed to use the admin API /_emulator/ (repeatable; 'any' for all; "
        "default: loopback only)",
    )
    parser.add_argument(
        "--fetch-url-origin",
        action="append",
        metavar="ORIGIN",
        help="loopback origin (http://127.0.0.1:8123) whose URLs images.upload may really fetch (repeatable)",
    )
    parser.add_argument(
        "--log-level", default="info", choices=("critical", "error", "warning", "info", "debug")
    )
    return parser.parse_args(argv)


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    defaults = EmulatorConfig()
    return EmulatorConfig(
        generation_seconds=args.generation_seconds,
        generation_jitter=args.generation_jitter,
        brand_ready_seconds=args.brand_ready_seconds,
        rate_limit_per_minute=args.rate_limit or None,
        error_envelope=args.envelope,
        initial_credits=args.credits,
        unlimited_credits=args.unlimited_credits,
        entitled_4k=not args.no_4k,
        download_base_url=args.download_base_url,
        validate_responses=args.validate_responses,
        seed=args.seed,
        clock_offset_seconds=args.clock_offset,
        list_delay_seconds=args.list_delay,
        admin_networks=_admin_networks(args.admin_from) or defaults.admin_networks,
        fetch_url_origins=list(args.fetch_url_origin or []),
    )


def _admin_networks(values: Sequence[str] | None) -> list[str]:
    networks: list[str] = []
    for value in values or []:
        networks += ["0.0.0.0/0", "::/0"] if value.strip().lower() == "any" else [value.strip()]
    return networks


def _raise_open_file_limit() -> None:
    """Thousands of long-polls need thousands of sockets."""
    try:
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < hard:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    except (ValueError, OSError):
        pass


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    config = config_from_args(args)
    logging.basicConfig(
        level=args.log_level.upper(), format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    _raise_open_file_limit()
    from airflow_provider_bloom.emulator.server import serve

    print(f"Bloom emulator: http://{args.host}:{args.port}/api/v1 (admin: /_emulator/)", flush=True)
    serve(config, args.host, args.port, args.log_level)


if __name__ == "__main__":
    main()
