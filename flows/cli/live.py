"""Live-mode subcommands: ``run``, ``config show``, ``topics create``, ``produce``,
``review``, ``dispatch run``, ``dispatch retry``, ``webhook verify``. Registered into
``salvage`` by :func:`register`."""

from __future__ import annotations

import argparse
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

import yaml

from flows.cli.common import UsageError
from flows.settings import Settings, SettingsError, load_settings

log = logging.getLogger("salvage.live")


def _settings(args: argparse.Namespace) -> Settings:
    try:
        settings = load_settings(getattr(args, "config", None))
        changes: dict[str, Any] = {}
        if getattr(args, "workers", None) is not None:
            if args.workers < 1:
                raise SettingsError("workers: must be >= 1")
            changes["workers"] = args.workers
        if getattr(args, "policy", None):
            changes["policy"] = args.policy
        return dataclasses.replace(settings, **changes) if changes else settings
    except SettingsError as exc:
        raise UsageError(str(exc)) from None


def _add_config_arg(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--config",
        metavar="FILE",
        help="settings file (.toml or .yaml); default: $SALVAGE_CONFIG. SALVAGE_* "
        "environment variables override it",
    )


# --- run ----------------------------------------------------------------------------------


def init_recovery(directory: Path, partitions: int) -> bool:
    """Create Bytewax recovery partitions in ``directory`` unless some exist (see
    :func:`flows.live.init_recovery`; imported when used, as the flow is)."""
    from flows.live import init_recovery as init

    return init(directory, partitions)


def _cmd_run(args: argparse.Namespace) -> int:
    from bytewax._bytewax import cli_main

    from flows.live import (
        LiveOptions,
        build_live_flow,
        log_start,
        recovery_from_settings,
        start_metrics_server,
    )

    settings = _settings(args)
    try:
        settings.check_secrets()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    close_at_end = getattr(args, "close_at_end", None)
    if close_at_end is not None and close_at_end <= 0:
        raise UsageError("--close-at-end must be > 0")
    flow = build_live_flow(settings, LiveOptions(close_at_end_seconds=close_at_end))
    recovery, epoch = recovery_from_settings(settings)
    start_metrics_server(settings)
    addresses = args.addresses.split(";") if args.addresses else None
    log_start(settings, "salvage run")
    cli_main(
        flow,
        workers_per_process=settings.workers,
        process_id=args.process_id,
        addresses=addresses,
        epoch_interval=epoch,
        recovery_config=recovery,
    )
    return 0


# --- config show ------------------------------------------------------------------------


def _cmd_config_show(args: argparse.Namespace) -> int:
    settings = _settings(args)
    effective = settings.effective()
    if args.json:
        print(json.dumps(effective, indent=2))
    else:
        print(yaml.safe_dump(effective, sort_keys=False).rstrip())
    return 0


# --- topics create ------------------------------------------------------------------------


def _cmd_topics_create(args: argparse.Namespace) -> int:
    from flows.connectors.kafka import create_topics

    settings = _settings(args)
    try:
        results = create_topics(settings.kafka, args.partitions, args.replication_factor)
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    for r in results:
        print(f"{r.topic:<40} {r.note}")
    return 0


# --- produce ------------------------------------------------------------------------------


def _cmd_produce(args: argparse.Namespace) -> int:
    from flows.connectors.kafka import iter_input_dir, make_producer, produce_events

    settings = _settings(args)
    if args.rate is not None and args.rate <= 0:
        raise UsageError("--rate must be > 0")
    producer = make_producer(settings.kafka)
    started = time.perf_counter()
    n = produce_events(
        producer, settings.kafka, iter_input_dir(Path(args.input_dir)), args.rate, limit=args.limit
    )
    seconds = time.perf_counter() - started
    print(f"produced {n:,} events in {seconds:.1f} s ({n / max(seconds, 1e-9):,.0f} events/s)")
    return 0


# --- review -------------------------------------------------------------------------------


def _cmd_review(args: argparse.Namespace) -> int:

    from flows.connectors.kafka import make_producer
    from operators.contract import format_ts
    from operators.review import sign_decision

    settings = _settings(args)
    secret = settings.review.secret()
    if secret is None:
        raise UsageError(
            f"environment variable {settings.review.secret_env} is not set: review decisions "
            "are signed with the review secret (review.secret_env)"
        )
    edits: dict[str, Any] = {}
    if args.decision == "reject" and (args.action or args.credit is not None or args.message):
        raise UsageError("--action, --credit and --message only go with approve")
    if args.action:
        edits["action"] = args.action
    if args.credit is not None:
        edits["credit_amount"] = args.credit
    if args.message:
        edits["message_text"] = args.message
    record = {
        "review_id": args.review_id,
        "order_id": args.order_id,
        "decision": args.decision,
        "reviewer_id": args.reviewer,
        "decided_at": format_ts(round(time.time(), 3)),
        "edits": edits or None,
        "note": args.note,
    }
    producer = make_producer(settings.kafka)
    producer.produce(
        settings.kafka.review_decisions_topic,
        value=sign_decision(secret, record),
        key=args.order_id.encode(),
    )
    if producer.flush(30.0):
        print("salvage: error: the review decision was not acknowledged", file=sys.stderr)
        return 1
    print(f"{args.decision} for review {args.review_id} sent")
    return 0


# --- dispatch run -------------------------------------------------------------------------


def _cmd_dispatch_run(args: argparse.Namespace) -> int:
    import signal

    from flows.connectors.webhooks import DispatchMetrics
    from flows.dispatching import OUTBOX_POLL_SECONDS, DispatchProcess, dead_letter_writer
    from flows.live import LOG_FORMAT, redis_config, start_metrics_server
    from state.redis_retry import RedisRetryQueue
    from state.redis_store import RedisDispatchLedger
    from state.retry import DEFAULT_LEASE_SECONDS

    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = _settings(args)
    if settings.redis.url is None:
        raise UsageError("dispatch run needs redis.url: the outbox is in Redis")
    if not settings.webhooks.routes:
        raise UsageError("dispatch run: webhooks.routes is empty, there is nothing to send")
    if settings.webhooks.sent_by_flow:
        log.warning(
            "webhooks.delivery is flow: the flow sends its own webhooks; this process only "
            "takes what waits in the retry queue"
        )
    poll = OUTBOX_POLL_SECONDS if args.poll_seconds is None else args.poll_seconds
    lease = DEFAULT_LEASE_SECONDS if args.lease_seconds is None else args.lease_seconds
    for name, value in (("--poll-seconds", poll), ("--lease-seconds", lease)):
        if not value > 0:
            raise UsageError(f"{name} must be > 0")
    if args.exit_when_idle is not None and not args.exit_when_idle >= 0:
        raise UsageError("--exit-when-idle must be >= 0")
    try:
        secrets = settings.webhook_secrets()
    except SettingsError as exc:
        raise UsageError(str(exc)) from None
    # A Redis restart pauses deliveries instead of ending the process.
    config = redis_config(settings, live=True)
    client = config.connect()
    if args.metrics_port is not None:
        settings = dataclasses.replace(settings, metrics_port=args.metrics_port)
    try:
        process = DispatchProcess(
            settings,
            RedisDispatchLedger(client, config.prefix),
            RedisRetryQueue(client, config.prefix),
            dead_letter_writer(settings.kafka),
            secrets,
            poll_seconds=poll,
            lease_seconds=lease,
            exit_when_idle=args.exit_when_idle,
            metrics=DispatchMetrics.create(),
        )
    except ValueError as exc:
        raise UsageError(str(exc)) from None
    try:
        start_metrics_server(settings)
    except OSError as exc:  # beside the flow on one host, both default to metrics_port
        client.close()
        raise UsageError(
            f"metrics port {settings.metrics_port}: {exc.strerror}; pass --metrics-port "
            "(another port, or 0 for none)"
        ) from None
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: process.stop())
    log.info(
        "dispatching webhooks from the outbox (redis prefix %s) to %s",
        config.prefix,
        ", ".join(sorted(secrets)),
    )
    try:
        results = process.run()
    finally:
        client.close()
    done = ", ".join(f"{n} {status}" for status, n in sorted(results.items())) or "nothing"
    log.info("dispatcher stopped: %s", done)
    return 0


# --- dispatch retry -----------------------------------------------------------------------


def _cmd_dispatch_retry(args: argparse.Namespace) -> int:
    from flows.connectors.webhooks import Dispatcher
    from flows.live import redis_config
    from state.redis_retry import RedisRetryQueue
    from state.redis_store import RedisDispatchLedger

    settings = _settings(args)
    if settings.redis.url is None:
        raise UsageError(
            "dispatch retry needs redis.url: dead-lettered deliveries are kept in Redis"
        )
    config = redis_config(settings, live=False)
    client = config.connect()
    queue = RedisRetryQueue(client, config.prefix)
    try:
        buried = queue.buried()
        if args.endpoint:
            buried = [b for b in buried if b.endpoint == args.endpoint]
        if not args.intervention_ids and not args.all:
            for b in buried:
                print(
                    f"{b.iid}  {b.endpoint}  {b.attempts} attempts  "
                    f"buried {_when(b.buried_at)}  {b.reason}"
                )
            print(f"{len(buried)} dead-lettered deliveries", file=sys.stderr)
            return 0
        wanted = list(args.intervention_ids) or [b.iid for b in buried]
        routed = set(settings.webhooks.routes.values())
        try:
            secrets = {name: settings.webhooks.endpoints[name].secret() for name in routed}
        except SettingsError as exc:
            raise UsageError(str(exc)) from None

        def dead_letter(record: dict[str, Any]) -> None:
            # Given up again: kept (buried) for the next re-send; reported here.
            print(f"dead-lettered again: {record['event_id']}: {record['reason']}")

        dispatcher = Dispatcher(
            settings.webhooks,
            secrets,
            RedisDispatchLedger(client, config.prefix),
            dead_letter,
            retries=queue,
        )
        failed = 0
        try:
            for iid in wanted:
                result = dispatcher.resend(iid)
                if result is None:
                    print(f"{iid}: not dead-lettered (unknown, or already re-sent)")
                    failed += 1
                    continue
                print(f"{iid}: {result.status} ({result.attempts} attempts)")
                failed += result.status not in ("delivered", "retrying", "skipped_duplicate")
        finally:
            dispatcher.close()
        return 1 if failed else 0
    finally:
        client.close()


def _when(ts: float | None) -> str:
    from operators.contract import format_ts

    return format_ts(ts) if ts is not None else "-"


# --- webhook verify -----------------------------------------------------------------------


def _tolerance(text: str) -> float:
    """A signature tolerance: a finite number of seconds >= 0 (``nan`` would accept any
    age, ``inf`` every replay)."""
    from operators.signature import valid_tolerance

    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if not valid_tolerance(value):
        raise argparse.ArgumentTypeError(f"must be a finite number >= 0, got {text!r}")
    return value


def _cmd_webhook_verify(args: argparse.Namespace) -> int:
    from operators.signature import explain

    secret = os.environ.get(args.secret_env)
    if not secret:
        raise UsageError(f"environment variable {args.secret_env} is not set")
    if args.body_file == "-":
        body = sys.stdin.buffer.read()
    else:
        try:
            body = Path(args.body_file).read_bytes()
        except OSError as exc:
            raise UsageError(f"{args.body_file}: {exc.strerror}") from None
    why = explain(secret, body, args.header, args.tolerance, args.now)
    if why == "ok":
        print("valid signature")
        return 0
    print(f"invalid signature: {why}")
    return 1


# --- registration -------------------------------------------------------------------------


def register(sub: argparse._SubParsersAction) -> None:
    """Add the live-mode subcommands to ``salvage``."""
    p = sub.add_parser(
        "run",
        help="run the dataflow live: Kafka in, Kafka and webhooks out",
        description="Run the live dataflow with the settings from --config/$SALVAGE_CONFIG "
        "and SALVAGE_* variables. Same as `python -m bytewax.run flows.live:flow`.",
    )
    _add_config_arg(p)
    p.add_argument("--policy", metavar="FILE", help="policy file (overrides the settings)")
    p.add_argument("--workers", type=int, help="workers in this process (overrides settings)")
    p.add_argument("--process-id", type=int, help="this process's index in a cluster")
    p.add_argument(
        "--addresses", metavar="H:P;H:P", help="host:port of every process in the cluster"
    )
    p.add_argument(
        "--close-at-end",
        type=float,
        metavar="SECONDS",
        help="demos and drills: once every input partition has been read to its end and "
        "stayed there SECONDS, end the input, close the open cases as censored (as a replay "
        "does at the end of its files), deliver what is pending and exit",
    )
    p.set_defaults(func=_cmd_run)

    c = sub.add_parser("config", help="inspect live-mode settings")
    csub = c.add_subparsers(dest="config_command", required=True, metavar="COMMAND")
    show = csub.add_parser(
        "show",
        help="print the effective settings (secrets masked)",
        description="Print the settings after merging defaults, the file and SALVAGE_* "
        "variables. Secrets are masked; webhook secrets show only whether they are set.",
    )
    _add_config_arg(show)
    show.add_argument("--json", action="store_true", help="JSON instead of YAML")
    show.set_defaults(func=_cmd_config_show)

    t = sub.add_parser("topics", help="manage the Kafka topics Salvage uses")
    tsub = t.add_subparsers(dest="topics_command", required=True, metavar="COMMAND")
    create = tsub.add_parser(
        "create",
        help="create the input, review and output topics (existing ones are kept)",
        description="Create every topic in the settings. Records are keyed by order_id, so "
        "one order always lands on one partition.",
    )
    _add_config_arg(create)
    create.add_argument("--partitions", type=int, default=3, help="partitions (default 3)")
    create.add_argument(
        "--replication-factor", type=int, default=1, help="replication factor (default 1)"
    )
    create.set_defaults(func=_cmd_topics_create)

    pr = sub.add_parser(
        "produce",
        help="produce a replay directory's events to the input topics",
        description="Produce orders/delivery/support/refunds JSONL from INPUT_DIR to the "
        "input topics in event-time order, keyed by order_id.",
    )
    pr.add_argument("input_dir", help="directory with the stream files (e.g. from simulate)")
    _add_config_arg(pr)
    pr.add_argument("--rate", type=float, help="events per second (default: as fast as possible)")
    pr.add_argument("--limit", type=int, help="stop after this many events")
    pr.set_defaults(func=_cmd_produce)

    rv = sub.add_parser(
        "review",
        help="send a reviewer's decision on a human-review request",
        description="Produce an approve/reject decision to the review-decisions topic, "
        "signed with the review secret ($SALVAGE_REVIEW_SECRET, or the variable named by "
        "review.secret_env). The reviewer must be on review.reviewers.",
    )
    rv.add_argument("decision", choices=["approve", "reject"])
    rv.add_argument("order_id")
    rv.add_argument("review_id", help="intervention_id of the human_review intervention")
    rv.add_argument("--reviewer", required=True, help="reviewer id (not a name or email)")
    rv.add_argument("--action", help="approve a different action than the proposed one")
    rv.add_argument("--credit", type=float, help="store credit (within the policy cap)")
    rv.add_argument("--message", help="replace the message text")
    rv.add_argument("--note", help="free-text note for the audit trail")
    _add_config_arg(rv)
    rv.set_defaults(func=_cmd_review)

    d = sub.add_parser("dispatch", help="webhook deliveries")
    dsub = d.add_subparsers(dest="dispatch_command", required=True, metavar="COMMAND")
    dr = dsub.add_parser(
        "retry",
        help="list or re-send dead-lettered webhook deliveries",
        description="Without arguments, list the dead-lettered deliveries kept in Redis. "
        "With intervention ids (or --all), send them again: each is re-claimed in the "
        "dispatch ledger first, so a delivery that went through, or one another re-send "
        "has taken, is not sent again (at most one delivery per Idempotency-Key). A "
        "re-send that still fails goes back to the retry schedule. Exit 1 if any id "
        "was not re-sent.",
    )
    dr.add_argument("intervention_ids", nargs="*", metavar="INTERVENTION_ID")
    dr.add_argument("--all", action="store_true", help="re-send every dead-lettered delivery")
    dr.add_argument("--endpoint", help="only deliveries to this endpoint")
    _add_config_arg(dr)
    dr.set_defaults(func=_cmd_dispatch_retry)
    drun = dsub.add_parser(
        "run",
        help="send the webhooks the flow wrote to the outbox (webhooks.delivery: dispatcher)",
        description="Run a dispatcher process: take each delivery the live flow wrote to "
        "the outbox in Redis, sign it and send it, with the quick attempts and slow "
        "retries of its endpoint; dead-lettered ones go to the dead-letter topic. Run as "
        "many as the endpoints need: each delivery is taken by one at a time (a lease), "
        "and one whose process died is taken again. Stops on SIGTERM or SIGINT, after "
        "waiting for requests on the wire.",
    )
    _add_config_arg(drun)
    drun.add_argument(
        "--poll-seconds",
        type=float,
        default=None,
        help="how often an idle dispatcher looks at the outbox (default 0.05)",
    )
    drun.add_argument(
        "--lease-seconds",
        type=float,
        default=None,
        help="how long a taken delivery is this process's before another may take it "
        "(default 300; longer than every endpoint's timeout)",
    )
    drun.add_argument(
        "--exit-when-idle",
        type=float,
        metavar="SECONDS",
        help="stop once the outbox has been empty this long (drains, drills)",
    )
    drun.add_argument(
        "--metrics-port", type=int, help="Prometheus metrics port (default: metrics_port; 0: off)"
    )
    drun.set_defaults(func=_cmd_dispatch_run)

    w = sub.add_parser("webhook", help="webhook tools")
    wsub = w.add_subparsers(dest="webhook_command", required=True, metavar="COMMAND")
    v = wsub.add_parser(
        "verify",
        help="check an X-Salvage-Signature header against a body",
        description="Exit 0 if HEADER is a valid signature of the body under the secret in "
        "$SECRET_ENV, 1 with the reason if not.",
    )
    v.add_argument("--secret-env", required=True, metavar="NAME", help="variable with the secret")
    v.add_argument("--header", required=True, help="the X-Salvage-Signature value")
    v.add_argument("--body-file", required=True, metavar="FILE", help="raw body ('-': stdin)")
    v.add_argument(
        "--tolerance", type=_tolerance, default=300.0, help="max age in seconds (default 300)"
    )
    v.add_argument("--now", type=float, help=argparse.SUPPRESS)
    v.set_defaults(func=_cmd_webhook_verify)
