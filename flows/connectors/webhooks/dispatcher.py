"""Dispatcher: deliver interventions to messaging systems as signed webhooks.

For each intervention the dispatcher

1. routes it by action to an endpoint (``webhooks.routes``; unrouted actions are skipped),
2. claims its ``intervention_id`` in the :class:`~state.dispatch.DispatchLedger` — a
   Bytewax resume re-emits the last epoch's interventions, and a claimed id is not sent
   again, so a restart does not deliver twice,
3. POSTs the JSON body with ``X-Salvage-Signature`` (see :mod:`flows.connectors.webhooks.signing`),
   ``Idempotency-Key: <intervention_id>``, ``X-Salvage-Event`` and
   ``X-Salvage-Contract-Version``,
4. retries 5xx, 408, 429, timeouts and connection errors with exponential backoff and full
   jitter (``uniform(0, min(max, base * 2**(attempt-1)))``); other 4xx are final, and so
   is a 3xx: redirects are never followed (the signature and headers would go to another
   host, and its 200 would count as delivered),
5. after the last attempt (or a final 4xx) writes a dead-letter record and marks the id
   ``dead_letter`` in the ledger; on success marks it ``delivered``.

Deliveries run on a thread pool; each endpoint has a bound on requests in flight. When an
endpoint is saturated, ``submit_many`` (the flow's batches) waits at most
``SLOT_WAIT_SECONDS`` per batch, then parks what has no slot in the retry queue, due at
once, in one call, and the retry loop sends it as slots free up: the flow does not wait for
a slow endpoint. Without a retry loop, ``submit`` waits for a slot (backpressure on the
dataflow). A dispatcher that does not send (``sends=False``: the flow's, under
``webhooks.delivery: dispatcher``) claims, checks and parks every delivery in the retry
queue, the outbox, in one call per batch; ``salvage dispatch run`` processes run the retry
loop that sends them. The body includes ``message.send_after``: quiet hours are the
receiver's to honour.

A process that dies mid-delivery leaves a ``claimed`` entry. The next run re-sends such an
orphaned claim when the intervention is re-emitted (receivers deduplicate by
``Idempotency-Key``); ids *delivered* or *dead-lettered* are never sent again.

Logs carry intervention ids, actions, endpoint names and HTTP statuses: never customer ids
or message text.
"""

from __future__ import annotations

import functools
import logging
import random
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

from flows.connectors.webhooks.backoff import backoff_delay, quick_phase_bound, retry_delay
from flows.connectors.webhooks.http import AttemptResult, post_json
from flows.connectors.webhooks.metrics import DispatchMetrics, attempt_outcome
from flows.connectors.webhooks.payload import dead_letter_record, webhook_body
from flows.connectors.webhooks.signing import signed_headers
from flows.settings import EndpointSettings, WebhookSettings
from operators.case import DAY
from operators.contract import format_ts
from state.dispatch import DispatchLedger
from state.retry import DEFAULT_LEASE_SECONDS, RetryItem, RetryQueue

log = logging.getLogger("salvage.dispatch")

#: How long a batch may wait in all for free delivery slots before what still has none goes
#: to the retry queue: a receiver that answers in milliseconds frees a slot sooner than
#: the queue's round trips would cost, a slow one never holds the flow longer than this.
SLOT_WAIT_SECONDS = 0.02
#: The error a delivery parked for want of a free slot carries until its first attempt: it
#: was never sent, so the retry loop that takes it starts its quick attempts, no re-send.
WAITING_FOR_A_SLOT = "waiting for a free delivery slot"
#: The same for a delivery the flow wrote to the outbox (``webhooks.delivery: dispatcher``)
#: for a ``salvage dispatch run`` process to send.
IN_THE_OUTBOX = "in the outbox for a dispatcher"
#: What a parked delivery that was never sent carries: its first taker starts its quick
#: attempts (no "re-sending" warning, no attempt counted before them).
NEVER_SENT = (WAITING_FOR_A_SLOT, IN_THE_OUTBOX)


@dataclass(frozen=True)
class DeliveryResult:
    """How one intervention's delivery ended."""

    intervention_id: str
    endpoint: str
    #: delivered | dead_letter | skipped_duplicate | unrouted | abandoned | blocked |
    #: retrying (parked in the retry queue for a later attempt) | queued (parked in the
    #: retry queue until a slot of its endpoint is free: the flow does not wait; or in
    #: the outbox for a dispatcher process)
    status: str
    attempts: int = 0
    http_status: int | None = None
    error: str | None = None
    seconds: float = 0.0


@dataclass
class _Endpoint:
    settings: EndpointSettings
    secret: str = field(repr=False)  # never in a log line or a traceback
    slots: threading.BoundedSemaphore = field(repr=False)


@dataclass
class Dispatcher:
    """Delivers interventions to webhook endpoints; thread-safe ``submit``.

    ``secrets`` maps endpoint name -> HMAC secret (resolved from the environment by the
    caller). ``dead_letter`` receives dead-letter records. ``rng``, ``sleep`` and ``clock``
    are injectable for tests; ``post`` is the HTTP call.
    """

    webhooks: WebhookSettings
    secrets: Mapping[str, str] = field(repr=False)  # never in a log line or a traceback
    ledger: DispatchLedger
    dead_letter: Callable[[dict[str, Any]], None]
    rng: random.Random = field(default_factory=random.Random)
    post: Callable[[str, bytes, Mapping[str, str], float], AttemptResult] = post_json
    clock: Callable[[], float] = time.time
    on_result: Callable[[DeliveryResult], None] | None = None
    metrics: DispatchMetrics | None = None
    #: Checked once an intervention is claimed, before it is sent: the reason it must not
    #: go out (``operators.caps.DispatchCaps``: the policy's caps), or None.
    guard: Callable[[dict[str, Any]], str | None] | None = None
    #: Where deliveries wait between slow retries and where those given up on are kept
    #: (None: no slow retries; a delivery is dead-lettered after its quick attempts).
    retries: RetryQueue | None = None
    #: How often the retry loop looks for due deliveries (0: no loop; call
    #: :meth:`retry_due` yourself, as the tests do with their own clock).
    retry_poll_seconds: float = 0.0
    retry_lease_seconds: float = DEFAULT_LEASE_SECONDS
    #: False: send nothing from here; every delivery claimed and allowed by the guard is
    #: parked in ``retries`` (the outbox) for dispatcher processes, whose retry loops send
    #: them. No secrets are needed then, and no retry loop runs here.
    sends: bool = True

    def __post_init__(self) -> None:
        if not self.sends and self.retries is None:
            raise ValueError("a dispatcher that does not send needs a retry queue (the outbox)")
        self._endpoints: dict[str, _Endpoint] = {}
        for name, ep in self.webhooks.endpoints.items():
            if name not in set(self.webhooks.routes.values()):
                continue
            secret = self.secrets[name] if self.sends else ""
            self._endpoints[name] = _Endpoint(
                ep, secret, threading.BoundedSemaphore(ep.max_in_flight)
            )
        workers = sum(e.settings.max_in_flight for e in self._endpoints.values()) or 1
        self._pool = ThreadPoolExecutor(workers, thread_name_prefix="salvage-dispatch")
        self._stopping = threading.Event()
        self._lock = threading.Lock()
        self._claimed_here: set[str] = set()
        self._futures: set[Future[DeliveryResult]] = set()
        self._rng_lock = threading.Lock()
        self._ttl = int(self.webhooks.ledger_ttl_days * DAY)
        self._pump_thread: threading.Thread | None = None
        if self.sends and self.retries is not None and self.retry_poll_seconds > 0:
            self._pump_thread = threading.Thread(
                target=self._pump, name="salvage-dispatch-retries", daemon=True
            )
            self._pump_thread.start()

    # --- submitting ------------------------------------------------------------------------

    def route(self, intervention: dict[str, Any]) -> _Endpoint | None:
        ep = self.webhooks.endpoint_for(str(intervention.get("action")))
        return self._endpoints.get(ep.name) if ep is not None else None

    def _claim(self, iid: str, claimed: bool | None = None) -> bool:
        """Claim ``iid`` (``claimed``: the answer of a batch claim already made)."""
        if claimed is None:
            claimed = self.ledger.claim(iid, self._ttl)
        if claimed:
            with self._lock:
                self._claimed_here.add(iid)
            return True
        if self.ledger.status(iid) == "claimed":
            with self._lock:
                mine = iid in self._claimed_here
            if not mine:
                # Claimed by an earlier run that stopped before the delivery ended.
                log.warning("re-sending %s: its earlier delivery did not finish", iid)
                with self._lock:
                    self._claimed_here.add(iid)
                return True
        return False

    def submit_many(
        self, interventions: Sequence[dict[str, Any]]
    ) -> list[Future[DeliveryResult] | None]:
        """:meth:`submit` of each intervention, in order, with the claims of the routed ones
        made in one call to a ledger that can (``claim_many``) and the guard's checks of the
        claimed ones in one call to a guard that can (``check_many``): a round trip to
        Redis each per batch, not one per intervention on the dataflow's thread. Where a
        retry loop runs, what finds its endpoint without a free slot waits in the retry
        queue (:meth:`_wait_in_queue`), not here."""
        claim_many = getattr(self.ledger, "claim_many", None)
        answers: dict[str, bool] = {}
        if claim_many is not None:
            routed = [
                iv
                for iv in interventions
                if isinstance(iv.get("intervention_id"), str) and self.route(iv) is not None
            ]
            # A repeated id is claimed once; its later copies are answered "taken" below.
            ids = list(dict.fromkeys(iv["intervention_id"] for iv in routed))
            answers = dict(zip(ids, claim_many(ids, self._ttl), strict=True))
        first: set[str] = set()
        futures: list[Future[DeliveryResult] | None] = [None] * len(interventions)
        going: list[tuple[int, _Endpoint]] = []
        for i, iv in enumerate(interventions):
            iid = iv.get("intervention_id")
            claimed = None
            if isinstance(iid, str) and iid in answers:
                claimed = answers[iid] and iid not in first
                first.add(iid)
            endpoint = self._claimed_endpoint(iv, claimed)
            if endpoint is not None:
                going.append((i, endpoint))
        verdicts = self._verdicts([interventions[i] for i, _ in going])
        waiting: list[tuple[_Endpoint, dict[str, Any]]] = []
        until = time.monotonic() + SLOT_WAIT_SECONDS
        for (i, endpoint), why in zip(going, verdicts, strict=True):
            futures[i] = self._send(endpoint, interventions[i], why, waiting, until)
        self._wait_in_queue(waiting)
        return futures

    def submit(
        self, intervention: dict[str, Any], claimed: bool | None = None
    ) -> Future[DeliveryResult] | None:
        """Queue one intervention for delivery. Returns None if it is not sent (unrouted,
        already claimed, or against the guard); blocks while its endpoint has
        ``max_in_flight`` requests. ``claimed``: the ledger's answer to a claim already made
        (``submit_many``)."""
        endpoint = self._claimed_endpoint(intervention, claimed)
        if endpoint is None:
            return None
        return self._send(endpoint, intervention, self._verdicts([intervention])[0])

    def _claimed_endpoint(
        self, intervention: dict[str, Any], claimed: bool | None
    ) -> _Endpoint | None:
        """The endpoint of a routed intervention this dispatcher now holds the claim of;
        None (reported) if it is unrouted or someone else's."""
        iid = intervention.get("intervention_id")
        endpoint = self.route(intervention)
        if endpoint is None or not isinstance(iid, str):
            self._report(DeliveryResult(str(iid), "-", "unrouted"))
            return None
        if not self._claim(iid, claimed):
            self._report(DeliveryResult(iid, endpoint.settings.name, "skipped_duplicate"))
            return None
        return endpoint

    def _verdicts(self, interventions: list[dict[str, Any]]) -> list[str | None]:
        """The guard's reason against each claimed intervention, or None to send it."""
        if self.guard is None or not interventions:
            return [None] * len(interventions)
        check_many = getattr(self.guard, "check_many", None)
        if check_many is not None:
            return list(check_many(interventions))
        return [self.guard(iv) for iv in interventions]

    def _send(
        self,
        endpoint: _Endpoint,
        intervention: dict[str, Any],
        why: str | None,
        waiting: list[tuple[_Endpoint, dict[str, Any]]] | None = None,
        until: float = 0.0,
    ) -> Future[DeliveryResult] | None:
        """Start the delivery on a free slot of its endpoint. Without one by ``until``
        (monotonic): into ``waiting`` (for the retry queue) where a retry loop runs, else
        wait here for a slot."""
        if why is not None:
            self._refuse(endpoint, intervention, why)
            return None
        if not self.sends:
            if waiting is None:
                self._wait_in_queue([(endpoint, intervention)])
            else:
                waiting.append((endpoint, intervention))
            return None
        if waiting is not None and self._pump_thread is not None:
            if not endpoint.slots.acquire(timeout=max(until - time.monotonic(), 0.0)):
                waiting.append((endpoint, intervention))
                return None
        else:
            endpoint.slots.acquire()
        return self._start(endpoint, intervention)

    def _start(self, endpoint: _Endpoint, intervention: dict[str, Any]) -> Future[DeliveryResult]:
        """Deliver on the pool, on a slot of ``endpoint`` already taken (released when done)."""
        if self.metrics is not None:
            self.metrics.in_flight.labels(endpoint.settings.name).inc()
        future = self._pool.submit(self._deliver, endpoint, intervention)
        with self._lock:
            self._futures.add(future)
        future.add_done_callback(functools.partial(self._done, endpoint=endpoint))
        return future

    def _wait_in_queue(self, waiting: list[tuple[_Endpoint, dict[str, Any]]]) -> None:
        """Park deliveries whose endpoint has no free slot in the retry queue, due now, in
        one call, so that the flow goes on (dispatch must not hold it back); the retry loop
        sends them as slots free up. Written before the flow moves past them, like every
        delivery before its first attempt, so a crash loses none; their ledger entries stay
        ``claimed``, so a copy re-emitted after a crash is re-sent as any interrupted
        delivery is (logged "re-sending"), and the queue's copy is then skipped as
        delivered."""
        if not waiting:
            return
        assert self.retries is not None
        now = self.clock()
        why = WAITING_FOR_A_SLOT if self.sends else IN_THE_OUTBOX
        items = [
            RetryItem(iv, endpoint.settings.name, 0, now, now, why) for endpoint, iv in waiting
        ]
        self.retries.park_many(items)
        for item in items:
            self._report(DeliveryResult(item.iid, item.endpoint, "queued"))

    def _done(self, future: Future[DeliveryResult], endpoint: _Endpoint) -> None:
        endpoint.slots.release()
        if self.metrics is not None:
            self.metrics.in_flight.labels(endpoint.settings.name).dec()
        with self._lock:
            self._futures.discard(future)
        if future.exception() is not None:
            log.error("delivery crashed: %s", type(future.exception()).__name__)

    # --- delivering ------------------------------------------------------------------------

    def _delay(self, attempt: int, ep: EndpointSettings, retry_after: float | None) -> float:
        with self._rng_lock:
            delay = backoff_delay(
                attempt, ep.backoff_base_seconds, ep.backoff_max_seconds, self.rng
            )
        if retry_after is not None:
            delay = max(delay, min(retry_after, ep.backoff_max_seconds))
        return delay

    def deliver_now(self, intervention: dict[str, Any]) -> DeliveryResult:
        """Deliver in the calling thread (claim included); for tools and tests."""
        endpoint = self.route(intervention)
        iid = str(intervention.get("intervention_id"))
        if endpoint is None:
            return DeliveryResult(iid, "-", "unrouted")
        if not self._claim(iid):
            return DeliveryResult(iid, endpoint.settings.name, "skipped_duplicate")
        why = self._verdicts([intervention])[0]
        if why is not None:
            return self._refuse(endpoint, intervention, why)
        return self._deliver(endpoint, intervention)

    def _refuse(
        self, endpoint: _Endpoint, intervention: dict[str, Any], why: str
    ) -> DeliveryResult:
        """Dead-letter a claimed intervention that breaks the guard's caps (never sent)."""
        iid = intervention["intervention_id"]
        name = endpoint.settings.name
        reason = f"not sent, breaks the policy caps: {why}"
        self.dead_letter(dead_letter_record(intervention, name, reason, self.clock()))
        self.ledger.mark_delivered(iid, "blocked", self._ttl)
        log.warning("webhook %s for %s not sent: it breaks the policy caps", name, iid)
        result = DeliveryResult(iid, name, "blocked", error=why)
        self._report(result)
        return result

    def _attempt(
        self, endpoint: _Endpoint, intervention: dict[str, Any], body: bytes, attempt: int
    ) -> AttemptResult:
        """One signed HTTP attempt (headers, POST, metrics)."""
        if not self.sends:
            # The one place a request is signed: a flow's outbox writer holds no secrets.
            raise RuntimeError("this dispatcher writes the outbox and sends nothing")
        ep = endpoint.settings
        headers = signed_headers(
            endpoint.secret,
            body,
            timestamp=int(self.clock()),
            intervention_id=intervention["intervention_id"],
            attempt=attempt,
            extra=ep.headers,
        )
        result = self.post(ep.url, body, headers, ep.timeout_seconds)
        if self.metrics is not None:
            self.metrics.attempts.labels(ep.name, attempt_outcome(result)).inc()
        return result

    def _deliver(self, endpoint: _Endpoint, intervention: dict[str, Any]) -> DeliveryResult:
        """The quick attempts (``max_attempts``, backoff in seconds, in this thread); then
        parked for the slow retries, or given up."""
        ep = endpoint.settings
        iid = intervention["intervention_id"]
        body = webhook_body(intervention)
        started = time.monotonic()
        first_at = self.clock()
        if self.retries is not None:
            # Written ahead: if this process dies during the quick attempts, the delivery
            # is not lost with it; another dispatcher takes it when the lease ends.
            lease = quick_phase_bound(ep)
            self.retries.park(RetryItem(intervention, ep.name, 0, first_at, first_at + lease))
        result = AttemptResult(None, "not attempted")
        attempt = 0
        while attempt < ep.max_attempts:
            attempt += 1
            result = self._attempt(endpoint, intervention, body, attempt)
            if result.ok:
                self.ledger.mark_delivered(iid, "delivered", self._ttl)
                if self.retries is not None:
                    self.retries.done(iid)
                return self._finish(iid, ep, "delivered", attempt, result, started)
            if not result.retryable or attempt >= ep.max_attempts:
                break
            delay = self._delay(attempt, ep, result.retry_after)
            log.info(
                "webhook %s for %s: %s (attempt %d of %d), retrying in %.2f s",
                ep.name, iid, result.error, attempt, ep.max_attempts, delay,
            )  # fmt: skip
            if self._stopping.wait(delay):
                if self.retries is not None:
                    # Shutting down: the next attempt is due now, from the retry queue.
                    item = RetryItem(intervention, ep.name, attempt, first_at, self.clock())
                    return self._park(item, result, started)
                # Shutting down: give the claim back so the next run delivers it.
                self.ledger.release(iid)
                return self._finish(iid, ep, "abandoned", attempt, result, started)
        item = RetryItem(intervention, ep.name, attempt, first_at, first_at, result.error)
        if result.retryable and self._slow_retries(ep):
            item.due_at = self.clock() + self._retry_delay(1, ep)
            return self._park(item, result, started)
        return self._give_up(item, ep, result, started)

    def _slow_retries(self, ep: EndpointSettings) -> bool:
        return self.retries is not None and ep.retry_hours > 0

    def _retry_delay(self, retry: int, ep: EndpointSettings) -> float:
        with self._rng_lock:
            return retry_delay(retry, ep.retry_base_seconds, ep.retry_max_seconds, self.rng)

    def _park(self, item: RetryItem, result: AttemptResult, started: float) -> DeliveryResult:
        assert self.retries is not None
        self.retries.park(item)
        self.ledger.mark_delivered(item.iid, "retrying", self._ttl)
        log.info(
            "webhook %s for %s: %s after %d attempts; next attempt at %s",
            item.endpoint, item.iid, result.error, item.attempts, format_ts(item.due_at),
        )  # fmt: skip
        ep = self._endpoints[item.endpoint].settings
        return self._finish(item.iid, ep, "retrying", item.attempts, result, started)

    def _give_up(
        self, item: RetryItem, ep: EndpointSettings, result: AttemptResult, started: float
    ) -> DeliveryResult:
        intervention, iid, attempt = item.intervention, item.iid, item.attempts
        reason = result.error or f"HTTP {result.status}"
        if result.retryable:
            reason += f" after {attempt} attempts"
            span = self.clock() - item.first_at
            if span >= 60:
                reason += f" over {span / 3600:.1f} h"
        else:
            reason += " (not retried)"
        self.dead_letter(dead_letter_record(intervention, ep.name, reason, self.clock()))
        self.ledger.mark_delivered(iid, "dead_letter", self._ttl)
        if self.retries is not None:
            item.reason, item.buried_at, item.error = reason, self.clock(), result.error
            self.retries.bury(item)
            self.retries.done(iid)
        log.warning("webhook %s for %s dead-lettered: %s", ep.name, iid, reason)
        return self._finish(iid, ep, "dead_letter", attempt, result, started)

    # --- slow retries ----------------------------------------------------------------------

    def retry_due(self, now: float | None = None, limit: int = 100) -> list[DeliveryResult]:
        """One attempt for each parked delivery due by ``now`` (default: the clock); each
        is parked again for its next retry, delivered, or given up. Runs in the calling
        thread (the retry loop's, or a test's)."""
        if self.retries is None:
            return []
        t = self.clock() if now is None else now
        taken = self.retries.take_due(t, limit, self.retry_lease_seconds)
        return [r for r in (self._retry_one(item) for item in taken) if r is not None]

    def _retry_one(
        self, item: RetryItem, inline: bool = True, held: _Endpoint | None = None
    ) -> DeliveryResult | None:
        """One attempt of a parked delivery; one that waited for a free slot starts its
        quick attempts instead: here (``inline``), or on the pool (the retry loop: None).
        ``held``: an endpoint whose slot the caller took for it (released if not used)."""
        started = False
        try:
            result = self._retry_taken(item, inline, held)
            started = result is None
            return result
        finally:
            if held is not None and not started:
                held.slots.release()

    def _retry_taken(
        self, item: RetryItem, inline: bool, held: _Endpoint | None
    ) -> DeliveryResult | None:
        assert self.retries is not None
        started = time.monotonic()
        iid = item.iid
        endpoint = self._endpoints.get(item.endpoint) or self.route(item.intervention)
        if endpoint is None:
            # The endpoint was removed from the settings: keep it for a deliberate re-send.
            item.reason = f"endpoint {item.endpoint} is no longer configured"
            item.buried_at = self.clock()
            self.retries.bury(item)
            self.retries.done(iid)
            return DeliveryResult(iid, item.endpoint, "unrouted", item.attempts)
        ep = endpoint.settings
        item.endpoint = ep.name
        if self.ledger.status(iid) == "delivered":
            self.retries.done(iid)  # delivered meanwhile (e.g. by a re-send)
            return DeliveryResult(iid, ep.name, "skipped_duplicate", item.attempts)
        if item.attempts == 0 and item.error in NEVER_SENT:
            # Parked for want of a free slot, or in the outbox, never sent: its quick
            # attempts start now, on a slot of its endpoint (``max_in_flight`` holds).
            if not inline:
                if held is not endpoint:
                    if held is not None:
                        held.slots.release()
                    endpoint.slots.acquire()
                self._start(endpoint, item.intervention)  # the slot is released when done
                return None
            endpoint.slots.acquire()
            try:
                return self._deliver(endpoint, item.intervention)
            finally:
                endpoint.slots.release()
        if item.attempts == 0:
            # Parked ahead of its first attempt by a run that stopped before the delivery
            # ended: the receiver may have accepted it already (same Idempotency-Key).
            log.warning("re-sending %s: its earlier delivery did not finish", iid)
        item.attempts += 1
        result = self._attempt(endpoint, item.intervention, webhook_body(item.intervention),
                               item.attempts)  # fmt: skip
        if result.ok:
            self.ledger.mark_delivered(iid, "delivered", self._ttl)
            self.retries.done(iid)
            log.info("webhook %s for %s delivered on attempt %d", ep.name, iid, item.attempts)
            return self._finish(iid, ep, "delivered", item.attempts, result, started)
        now = self.clock()
        deadline = item.first_at + ep.retry_hours * 3600.0
        if not result.retryable or now >= deadline:
            return self._give_up(item, ep, result, started)
        retry = max(item.attempts - ep.max_attempts, 0) + 1
        # The last attempt is made at the deadline, so the schedule spans all of it.
        item.due_at = min(now + self._retry_delay(retry, ep), deadline)
        item.error = result.error
        return self._park(item, result, started)

    def _pump(self) -> None:
        while not self._stopping.wait(self.retry_poll_seconds):
            try:
                # Again at once while there is more: the free slots set the pace.
                while not self._stopping.is_set() and self._pump_one():
                    pass
            except Exception as exc:  # a Redis blip: parked items wait for the next poll
                log.warning("retry loop: %s; trying again", type(exc).__name__)

    def _pump_one(self) -> bool:
        """Take one due delivery and handle it (False: none was due). With one endpoint, a
        free slot is taken first, so what is taken starts at once: a delivery is never
        leased to this process while it waits for a slot (a crash then would hold it back
        until the lease ended)."""
        assert self.retries is not None
        only = next(iter(self._endpoints.values())) if len(self._endpoints) == 1 else None
        if only is not None:
            only.slots.acquire()
            if self._stopping.is_set():
                only.slots.release()
                return False
        try:
            taken = self.retries.take_due(self.clock(), 1, self.retry_lease_seconds)
        except BaseException:
            if only is not None:
                only.slots.release()
            raise
        if not taken:
            if only is not None:
                only.slots.release()
            return False
        self._retry_one(taken[0], inline=False, held=only)
        return True

    def resend(self, intervention_id: str) -> DeliveryResult | None:
        """Send a dead-lettered delivery again (``salvage dispatch retry``): take it from
        the buried ones, re-claim its id in the ledger (only a dead-lettered or forgotten
        id can be), then deliver it as new: quick attempts, then the slow retries.
        None if it is not buried (never, or already re-sent)."""
        if self.retries is None:
            raise ValueError("re-sending needs a retry queue")
        item = self.retries.unbury(intervention_id)
        if item is None:
            return None
        iid = item.iid
        if not (self.ledger.reopen(iid, self._ttl) or self.ledger.claim(iid, self._ttl)):
            # Delivered, or being sent by another re-send: at most one delivery per key.
            return DeliveryResult(iid, item.endpoint, "skipped_duplicate", item.attempts)
        endpoint = self._endpoints.get(item.endpoint) or self.route(item.intervention)
        if endpoint is None:
            self.ledger.mark_delivered(iid, "dead_letter", self._ttl)
            self.retries.bury(item)
            return DeliveryResult(iid, item.endpoint, "unrouted", item.attempts)
        with self._lock:
            self._claimed_here.add(iid)
        return self._deliver(endpoint, item.intervention)

    def _finish(
        self,
        iid: str,
        ep: EndpointSettings,
        status: str,
        attempts: int,
        result: AttemptResult,
        started: float,
    ) -> DeliveryResult:
        seconds = time.monotonic() - started
        if self.metrics is not None:
            self.metrics.seconds.labels(ep.name).observe(seconds)
        outcome = DeliveryResult(
            iid, ep.name, status, attempts, result.status, result.error, seconds
        )
        self._report(outcome)
        return outcome

    def _report(self, result: DeliveryResult) -> None:
        if self.metrics is not None:
            self.metrics.deliveries.labels(result.endpoint, result.status).inc()
        if self.on_result is not None:
            self.on_result(result)

    # --- lifetime --------------------------------------------------------------------------

    def in_flight(self) -> int:
        with self._lock:
            return len(self._futures)

    def close(self, grace_seconds: float = 10.0) -> None:
        """Stop retrying (pending retries give their claims back), wait up to
        ``grace_seconds`` for requests on the wire, then stop the pool."""
        self._stopping.set()
        if self._pump_thread is not None:
            self._pump_thread.join(grace_seconds)
        deadline = time.monotonic() + grace_seconds
        while self.in_flight() and time.monotonic() < deadline:
            time.sleep(0.01)
        self._pool.shutdown(wait=False, cancel_futures=True)
