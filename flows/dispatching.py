"""Webhook dispatch in processes of its own: ``salvage dispatch run``.

Under ``webhooks.delivery: dispatcher`` the live flow claims each intervention in the
dispatch ledger, checks it against the policy's caps and writes it to the *outbox* (the
retry queue in Redis), one round trip per batch, and sends nothing: signing, HTTP, quick
attempts and slow retries take none of the dataflow's CPU or GIL. This module is the
other half: a process that runs a :class:`~flows.connectors.webhooks.Dispatcher`'s retry
loop over the same Redis and sends what the flow wrote. Run as many as the endpoints need:
each takes one delivery at a time with a lease, so two never send one at once, and a
delivery whose process died is taken again when its lease ends (sooner once its quick
attempts have begun: each is written ahead with the end of its quick attempts).

What it guarantees is what the flow's own delivery threads guarantee (docs/live.md):
at least once per attempt, the ``Idempotency-Key`` for the receiver to deduplicate, and
never again once the ledger says delivered.
"""

from __future__ import annotations

import logging
import random
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from flows.connectors.webhooks import DeliveryResult, Dispatcher, DispatchMetrics
from flows.settings import KafkaSettings, Settings
from operators.stores import DEFAULT_LEASE_SECONDS, DispatchLedger, RetryQueue

log = logging.getLogger("salvage.dispatch")

#: How often an idle dispatcher process looks at the outbox: the most a delivery waits
#: there once written (a busy loop takes the next one at once). One Redis read each.
OUTBOX_POLL_SECONDS = 0.05


def dead_letter_writer(kafka: KafkaSettings) -> Callable[[dict[str, Any]], None]:
    """A function that writes one dead-letter record to the dead-letter topic and waits
    for the broker to take it (a delivery given up on is rare; losing its record is not
    an option). The producer is made at the first record, so a process that never gives
    up on a delivery never connects for it."""
    import orjson

    from flows.connectors.kafka import make_producer

    topic = kafka.output_topics["dead_letter"]
    headers: list[tuple[str, str | bytes | None]] = [
        ("type", b"dead_letter"),
        ("contract_version", b"1"),
    ]
    producers: list[Any] = []
    lock = threading.Lock()  # deliveries give up on their own threads

    def dead_letter(record: dict[str, Any]) -> None:
        with lock:
            if not producers:
                producers.append(make_producer(kafka))
            producer = producers[0]
        key = record.get("order_id")
        producer.produce(
            topic,
            value=orjson.dumps(record),
            key=key.encode() if isinstance(key, str) else None,
            headers=headers,
        )
        producer.flush(10.0)

    return dead_letter


@dataclass
class DispatchProcess:
    """One dispatcher process over the outbox in Redis (``salvage dispatch run``).

    ``exit_when_idle``: stop once nothing has been parked or in flight for this many
    seconds (drills, benchmarks, a one-off drain); None: run until :meth:`stop`.
    """

    settings: Settings
    ledger: DispatchLedger
    outbox: RetryQueue
    dead_letter: Callable[[dict[str, Any]], None]
    secrets: Mapping[str, str] = field(repr=False)  # never in a log line or a traceback
    poll_seconds: float = OUTBOX_POLL_SECONDS
    lease_seconds: float = DEFAULT_LEASE_SECONDS
    exit_when_idle: float | None = None
    metrics: DispatchMetrics | None = None
    on_result: Callable[[DeliveryResult], None] | None = None

    def __post_init__(self) -> None:
        longest = max(
            (ep.timeout_seconds for ep in self.settings.webhooks.endpoints.values()), default=0
        )
        if self.lease_seconds <= longest:
            # A lease must outlast an attempt, or a slow attempt's delivery is taken twice.
            raise ValueError(
                f"the lease ({self.lease_seconds:g} s) must be longer than the longest "
                f"endpoint timeout ({longest:g} s)"
            )
        self.results: Counter[str] = Counter()
        self._stop = threading.Event()
        self._lock = threading.Lock()

    def _record(self, result: DeliveryResult) -> None:
        with self._lock:
            self.results[result.status] += 1
        if self.on_result is not None:
            self.on_result(result)

    def stop(self) -> None:
        """Stop taking deliveries (safe from a signal handler)."""
        self._stop.set()

    def run(self, grace_seconds: float = 10.0) -> Counter[str]:
        """Send what the outbox holds until :meth:`stop` (or idle past ``exit_when_idle``);
        then wait up to ``grace_seconds`` for requests on the wire. Returns the count of
        each delivery result."""
        dispatcher = Dispatcher(
            self.settings.webhooks,
            self.secrets,
            self.ledger,
            self.dead_letter,
            rng=random.Random(),
            on_result=self._record,
            metrics=self.metrics,
            retries=self.outbox,
            retry_poll_seconds=self.poll_seconds,
            retry_lease_seconds=self.lease_seconds,
        )
        idle_since: float | None = None
        try:
            while not self._stop.wait(0.1):
                if self.exit_when_idle is None:
                    continue
                if dispatcher.in_flight() or self._parked():
                    idle_since = None
                elif idle_since is None:
                    idle_since = time.monotonic()
                elif time.monotonic() - idle_since >= self.exit_when_idle:
                    log.info("the outbox has been empty for %g s: stopping", self.exit_when_idle)
                    break
        finally:
            dispatcher.close(grace_seconds)
        return self.results

    def _parked(self) -> int:
        try:
            return self.outbox.pending()
        except Exception as exc:  # a Redis blip: not idle, look again
            log.warning("outbox: %s; looking again", type(exc).__name__)
            return 1
