"""``salvage context load`` and ``salvage case``: seed and inspect the live Redis state.

``salvage context load FILE`` seeds customer stats and SKU-family / courier-lane base
rates from a CSV or JSONL export (fields in ``docs/state.md``). Bad rows are reported by
line number and skipped; the others are loaded.

``salvage case ORDER_ID`` prints what Salvage knows about an order: the case timeline and
signals, every decision with its scores, rule and reasons, the interventions (and whether
they were dispatched) and the outcome. ``--json`` prints the raw records instead.

The Redis URL comes from ``--redis-url``, else ``$SALVAGE_REDIS_URL``, else ``redis.url`` of
the live settings file named by ``$SALVAGE_CONFIG``, else ``redis://127.0.0.1:6379/0``; its
password is never printed.

Exit codes: 0 done, 1 failure (Redis unreachable, unknown order, rows rejected), 2 bad
usage or an unreadable file.
"""

from __future__ import annotations

import argparse
import csv
import os
import sys
import time
from pathlib import Path
from typing import Any

import orjson
import redis

from flows.cli.context_rows import (
    MAX_REPORTED_REJECTS,
    RowError,
    detect_format,
    load_context,
    row_timestamp,
)
from operators.masking import mask_url
from state.redis_conn import (
    PREFIX_ENV,
    RedisConfigError,
    connect,
    resolve_url,
)
from state.redis_store import RedisCaseStore, RedisContextStore, RedisDispatchLedger


def _num(x: Any, digits: int = 2) -> str:
    return f"{x:.{digits}f}" if isinstance(x, (int, float)) and not isinstance(x, bool) else "-"


def _yes(x: Any) -> str:
    return "yes" if x else "no"


def format_case(
    order_id: str, case: dict[str, Any], dispatch: dict[str, str | None] | None = None
) -> str:
    """A case from the case store as readable text (``salvage case``).

    >>> print(format_case("o1", {"view": None, "decisions": [], "interventions": [],
    ...     "outcome": {"outcome": "kept", "resolved_at": "2026-06-30T00:00:00Z",
    ...                 "refund_value": 0.0, "retained_value": 80.0, "order_value": 80.0,
    ...                 "currency": "EUR"}}))
    order o1
    <BLANKLINE>
    decisions: none
    <BLANKLINE>
    interventions: none
    <BLANKLINE>
    outcome
      kept at 2026-06-30T00:00:00Z   refund 0.00   retained 80.00 of 80.00 EUR
    """
    dispatch = dispatch or {}
    view = case.get("view") or {}
    out: list[str] = []
    head = f"order {order_id}"
    if view:
        head += f"   stage {view.get('stage')}   as of {view.get('as_of')}"
    out.append(head)
    if view:
        cur = view.get("currency") or ""
        out.append(
            f"  customer {view.get('customer_id') or '-'}   "
            f"value {_num(view.get('order_value'))} {cur}   "
            f"family {view.get('sku_family') or '-'}   lane {view.get('courier_lane') or '-'}   "
            f"campaign {view.get('campaign') or '-'}   arm {view.get('arm') or '-'}"
        )
        s = view.get("signals") or {}
        request = s.get("request")
        if request and s.get("request_reason"):
            request = f"{request} ({s['request_reason']})"
        sentiment = s.get("last_sentiment")
        out += [
            "",
            "signals",
            f"  slip {_num(s.get('slip_hours'), 1)} h   delays {s.get('delays', 0)}   "
            f"exceptions {s.get('exceptions', 0)}   "
            f"failed attempts {s.get('failed_attempts', 0)}   lost {_yes(s.get('lost'))}",
            f"  contacts {s.get('contacts', 0)}   last intent {s.get('last_intent') or '-'}   "
            f"sentiment {_num(sentiment) if sentiment is not None else '-'}   "
            f"request {request or '-'}   "
            f"exchange preferred {_yes(s.get('exchange_preferred'))}",
        ]
        timeline = view.get("timeline") or []
        out += ["", f"timeline ({len(timeline)} events)"]
        out += [f"  {ts}  {type_}" for ts, type_ in timeline]
        actions = view.get("actions") or []
        if actions:
            out.append("  actions: " + ", ".join(f"{a} at {ts}" for ts, a in actions))

    decisions = case.get("decisions") or []
    out.append("")
    out.append(f"decisions ({len(decisions)})" if decisions else "decisions: none")
    for d in decisions:
        if d.get("review_id"):
            # A reviewer's answer to a human-review request (see operators/review.py).
            out.append(
                f"  {d.get('decided_at') or '-'}  review {d.get('status')} by "
                f"{d.get('reviewer_id') or '-'}: {d.get('reason') or '-'}"
            )
            continue
        flags = "automated" if d.get("automated") else "needs review"
        line = f"  {d.get('decided_at')}  {d.get('action')}  {flags}  arm {d.get('arm')}"
        if d.get("proposed_action"):
            line += f"  proposes {d['proposed_action']}"
        out.append(line)
        out.append(f"      rule     {d.get('rule')}")
        out.append(f"      reasons  {'; '.join(d.get('reasons') or []) or '-'}")
        scores = d.get("scores") or {}
        if scores:
            out.append("      scores   " + "  ".join(f"{k} {_num(v)}" for k, v in scores.items()))
        out.append(
            f"      value at risk {_num(d.get('value_at_risk'))}   "
            f"expected saving {_num(d.get('expected_saving'))}   "
            f"policy {d.get('policy_version') or '-'}   model {d.get('model_version') or '-'}   "
            f"trigger {d.get('trigger_event_id') or '-'}"
        )

    interventions = case.get("interventions") or []
    out.append("")
    out.append(f"interventions ({len(interventions)})" if interventions else "interventions: none")
    for iv in interventions:
        iv_id = iv.get("intervention_id") or "-"
        status = dispatch.get(iv_id) or "not dispatched"
        out.append(f"  {iv.get('decided_at')}  {iv.get('action')}  {iv_id}  dispatch: {status}")
        offer = iv.get("offer")
        if offer:
            kind = str(offer.get("type", "offer")).replace("_", " ")
            out.append(f"      offer    {kind} {_num(offer.get('amount'))} {offer.get('currency')}")
        message = iv.get("message")
        if message:
            after = f" after {message['send_after']}" if message.get("send_after") else ""
            out.append(f"      message  {message.get('channel')}{after}: {message.get('text')!r}")
        if iv.get("review_expires_at"):
            out.append(f"      review expires {iv['review_expires_at']}")

    outcome = case.get("outcome")
    out.append("")
    if outcome:
        p = outcome.get("predicted_return_propensity")
        line = (
            f"  {outcome.get('outcome')} at {outcome.get('resolved_at') or '-'}   "
            f"refund {_num(outcome.get('refund_value'))}   "
            f"retained {_num(outcome.get('retained_value'))} of "
            f"{_num(outcome.get('order_value'))} {outcome.get('currency') or ''}"
        ).rstrip()
        if p is not None:
            line += f"   predicted P(refund) {_num(p)}"
        out += ["outcome", line]
    else:
        out.append("outcome: open")
    return "\n".join(out)


# --- commands -----------------------------------------------------------------------------


def _err(message: str) -> None:
    print(f"salvage: error: {message}", file=sys.stderr)


def _redis_failed(exc: Exception, url: str) -> int:
    """Say why Redis failed; the exit code: 2 for a wrong URL or setting, 1 for a server
    that could not be reached or refused (the password in the URL is masked)."""
    if isinstance(exc, RedisConfigError):
        _err(str(exc))
        return 2
    _err(f"Redis at {mask_url(url)}: {type(exc).__name__}: {exc}")
    return 1


def _cmd_context_load(args: argparse.Namespace) -> int:
    path = Path(args.file)
    if not path.is_file():
        _err(f"{path}: no such file")
        return 2
    try:
        fmt = args.format or detect_format(path)
    except ValueError as exc:
        _err(str(exc))
        return 2
    as_of = time.time()
    if args.as_of is not None:
        try:
            as_of = row_timestamp({"as_of": args.as_of}, "as_of")  # type: ignore[assignment]
        except RowError as exc:
            _err(f"--as-of: {exc}")
            return 2
    url = _redis_url(args.redis_url)
    try:
        store = RedisContextStore(connect(url), args.prefix, cache_seconds=0)
        try:
            report = load_context(path, fmt, store, add=args.add, as_of=as_of)
        finally:
            store.client.close()
    except (RedisConfigError, redis.RedisError) as exc:
        return _redis_failed(exc, url)
    except (UnicodeDecodeError, csv.Error, OSError) as exc:
        _err(f"{path}: cannot read: {exc}")
        return 2
    if report.unknown_fields:
        print(
            "ignored unknown fields: " + ", ".join(sorted(report.unknown_fields)[:20]),
            file=sys.stderr,
        )
    print(
        f"loaded {report.customers:,} customers, {report.families:,} SKU families and "
        f"{report.lanes:,} courier lanes from {path} into {mask_url(url)} "
        f"(prefix {args.prefix}{', added to stored counts' if args.add else ''})"
    )
    if report.rejected:
        print(f"rejected {len(report.rejected):,} rows:", file=sys.stderr)
        for line, reason in report.rejected[:MAX_REPORTED_REJECTS]:
            print(f"  line {line}: {reason}", file=sys.stderr)
        if len(report.rejected) > MAX_REPORTED_REJECTS:
            print(
                f"  ... and {len(report.rejected) - MAX_REPORTED_REJECTS:,} more", file=sys.stderr
            )
        return 1
    if report.loaded == 0:
        _err(f"{path}: no rows to load")
        return 2
    return 0


def _redis_url(arg: str | None) -> str:
    """The Redis URL to use (see the module docstring for the order)."""
    if arg or os.environ.get("SALVAGE_REDIS_URL") or not os.environ.get("SALVAGE_CONFIG"):
        return resolve_url(arg)
    from flows.settings import load_settings

    # The same store `salvage run` writes to, when its settings file is in use.
    return load_settings().redis.url or resolve_url(None)


def _cmd_case(args: argparse.Namespace) -> int:
    url = _redis_url(args.redis_url)
    try:
        client = connect(url)
        try:
            case = RedisCaseStore(client, args.prefix).get(args.order_id)
            ids = [iv.get("intervention_id") for iv in (case or {}).get("interventions", [])]
            ledger = RedisDispatchLedger(client, args.prefix)
            dispatch = {iv: ledger.status(iv) for iv in ids if iv}
        finally:
            client.close()
    except (RedisConfigError, redis.RedisError) as exc:
        return _redis_failed(exc, url)
    if case is None:
        _err(
            f"no case for order {args.order_id!r} in {mask_url(url)} (prefix {args.prefix}); "
            "it was never seen, or it expired"
        )
        return 1
    if args.json:
        record = {"order_id": args.order_id, **case, "dispatch": dispatch}
        sys.stdout.write(orjson.dumps(record, option=orjson.OPT_INDENT_2).decode() + "\n")
    else:
        print(format_case(args.order_id, case, dispatch))
    return 0


def _add_redis_args(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--redis-url",
        metavar="URL",
        help="redis:// or rediss:// URL (default: $SALVAGE_REDIS_URL, else redis.url of "
        "$SALVAGE_CONFIG, else redis://127.0.0.1:6379/0); the password may also come from "
        "$SALVAGE_REDIS_PASSWORD",
    )
    p.add_argument(
        "--prefix",
        default=os.environ.get(PREFIX_ENV) or "salvage",
        help="key prefix (default: $SALVAGE_REDIS_PREFIX, else salvage)",
    )


def register(sub: argparse._SubParsersAction) -> None:
    """Add the ``context`` and ``case`` subcommands."""
    p = sub.add_parser("context", help="seed the live context aggregates in Redis")
    psub = p.add_subparsers(dest="context_command", required=True, metavar="COMMAND")
    load = psub.add_parser(
        "load",
        help="seed customer stats and family/lane base rates from a CSV or JSONL export",
        description="Load customer stats (customer_id, orders_count, returns_count, "
        "refunds_count, exchanges_count, chargebacks, refund_value, lifetime_value, "
        "first_seen) and, with a kind column of family or lane, base rates (sku_family or "
        "courier_lane, refund_rate, delay_rate, weight, as_of). Bad rows are reported by "
        "line and skipped. See docs/state.md.",
    )
    load.add_argument("file", help="the export (.csv, .jsonl, optionally .gz)")
    load.add_argument("--format", choices=("csv", "jsonl"), help="default: from the file name")
    load.add_argument(
        "--add",
        action="store_true",
        help="add customer counts to what is stored instead of replacing them",
    )
    load.add_argument(
        "--as-of",
        metavar="TIME",
        help="event time of rate rows without as_of (RFC 3339 or epoch seconds; default: now)",
    )
    _add_redis_args(load)
    load.set_defaults(func=_cmd_context_load)

    c = sub.add_parser(
        "case",
        help="show why an order got (or did not get) an intervention",
        description="Print the case timeline, signals, decisions with scores, rules and "
        "reasons, interventions with their dispatch status, and the outcome.",
    )
    c.add_argument("order_id", help="the order id")
    c.add_argument("--json", action="store_true", help="print the raw records as JSON")
    _add_redis_args(c)
    c.set_defaults(func=_cmd_case)
