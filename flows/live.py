"""Live mode: the replay dataflow fed from Kafka, writing to Kafka, with the review loop and
the webhook dispatcher.

::

    orders/delivery/support/refunds topics ─ build_streams (decode, clock, case, decide)
      interventions ─┬──────────────────────────────────────────┬─ interventions topic
                     └─ human_review requests ─┐                 └─ dispatcher (webhooks)
      review-decisions topic ─ parse ──────────┼─ review (per order, wall-clock expiry)
      outcomes ─────────────────── case closed ┘     ├─ approved interventions (merged above)
                                                     └─ review records ─ decisions topic
      decisions, outcomes, dead letters ─ their topics

Run it with ``salvage run`` or ``python -m bytewax.run flows.live:flow`` (settings from
``SALVAGE_CONFIG`` and ``SALVAGE_*`` variables; see :mod:`flows.settings`).

Stores: with ``redis.url`` set, the Redis implementations (``state.redis_store``) hold the
dispatch ledger, the context aggregates and the case views; without it, in-memory ones
(dispatch dedup then only lasts as long as the process).
"""

from __future__ import annotations

import logging
import pickle
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple

import bytewax.operators as op
from bytewax.dataflow import Dataflow, Stream
from bytewax.operators import StatefulLogic

from flows.connectors.kafka import KafkaInputSource, KafkaRoutedSink
from flows.connectors.webhooks import DeliveryResult, Dispatcher, DispatchMetrics, DispatchSink
from flows.dataflow import (
    OUTPUT_NAMES,
    RECORD_OUTPUTS,
    TAG_OF_OUTPUT,
    FlowObserver,
    FlowParts,
    FlowStreams,
    ModelRuntime,
    build_streams,
    observe_outputs,
)
from flows.dispatching import dead_letter_writer
from flows.runtime import tune_gc
from flows.settings import Settings, load_settings
from flows.tagged import tag_records, tagged_records
from operators.caps import DispatchCaps
from operators.case import DAY, HOUR
from operators.contract import DeadLetter
from operators.credit import CreditLedger, InMemoryCreditLedger
from operators.engine import DecisionEngine
from operators.memo import DecisionMemo, RememberingDecider
from operators.online_scorer import OnlineScorer
from operators.policy import RecoveryPolicy
from operators.review import (
    REVIEW_ACTION,
    REVIEW_STREAM,
    CapStores,
    ReviewAuth,
    ReviewBook,
    ReviewDecision,
    parse_decision,
)
from operators.stores import ContextStore
from state.cases import CaseStore, InMemoryCaseStore
from state.contacts import ContactBook, InMemoryContactBook
from state.context import InMemoryContextStore
from state.dispatch import DispatchLedger, InMemoryDispatchLedger
from state.memo import InMemoryDecisionMemo
from state.models import InMemoryModelStore, ModelStore
from state.retry import InMemoryRetryQueue, RetryQueue

if TYPE_CHECKING:
    from state.redis_conn import RedisStoreConfig

log = logging.getLogger("salvage.live")

#: How often each dispatcher looks for webhook deliveries due for a slow retry.
RETRY_POLL_SECONDS = 1.0
#: Wall seconds at least between two learner checkpoints to the model store
#: (``ModelRuntime.checkpoint_every_seconds``; every epoch checkpoints the newest anyway).
CHECKPOINT_SECONDS = 5.0


@dataclass
class LiveStores:
    """Where live state goes. Factories are called on the workers, once per process."""

    ledger: Callable[[], DispatchLedger]
    context: Callable[[], ContextStore]
    cases: Callable[[], CaseStore] | None = None
    kind: str = "memory"
    models: Callable[[], ModelStore] | None = None
    #: Credit granted per customer (30-day cap) and contacts per order (contact limit):
    #: checked at approval and at dispatch. None: one in-memory store per flow.
    credit: Callable[[], CreditLedger] | None = None
    contacts: Callable[[], ContactBook] | None = None
    #: Webhook deliveries waiting for a slow retry, and those given up on.
    retries: Callable[[], RetryQueue] | None = None
    #: The first decision of each decision point, so a re-read event after a resume is not
    #: decided again differently (``operators.memo``). None: one in-memory memo per flow.
    memo: Callable[[], DecisionMemo] | None = None


def _once(make: Callable[[], Any]) -> Callable[[], Any]:
    holder: list[Any] = []

    def get() -> Any:
        if not holder:
            holder.append(make())
        return holder[0]

    return get


def redis_config(settings: Settings, live: bool = True) -> RedisStoreConfig:
    """The Redis connection of ``settings`` (``from_env``: the case TTL and context cache
    variables apply too). ``live``: a Redis restart pauses the caller (decisions,
    deliveries) instead of failing it (docs/operations.md); a one-off command fails."""
    from state.redis_conn import RedisStoreConfig, live_outage_seconds

    assert settings.redis.url is not None
    return RedisStoreConfig.from_env(
        url=settings.redis.url,
        prefix=settings.redis.prefix,
        password=settings.redis.password,
        ca_file=settings.redis.ca_file,
        outage_seconds=live_outage_seconds() if live else 0.0,
    )


def stores_from_settings(settings: Settings) -> LiveStores:
    """Redis stores when ``redis.url`` is set, else in-memory ones (with a warning)."""
    if settings.redis.url is None:
        log.warning(
            "redis.url is not set: dispatch dedup, case views, context, the credit ledger, "
            "contact counts and webhook retries live in memory and are lost on restart"
        )
        return LiveStores(
            ledger=_once(InMemoryDispatchLedger),
            context=_once(InMemoryContextStore),
            cases=_once(InMemoryCaseStore),
            models=_once(InMemoryModelStore),
            credit=_once(InMemoryCreditLedger),
            contacts=_once(InMemoryContactBook),
            retries=_once(InMemoryRetryQueue),
            memo=_once(InMemoryDecisionMemo),
        )
    # Imported by name: the Redis stores are optional at import time of this module.
    from state.redis_store import RedisStores

    config = redis_config(settings)
    from state.redis_credit import RedisContactBook, RedisCreditLedger
    from state.redis_memo import RedisDecisionMemo
    from state.redis_retry import RedisRetryQueue

    opened = _once(lambda: RedisStores.open(config))
    # The guard stores share the stores' client (its connection pool is thread-safe).
    credit = _once(lambda: RedisCreditLedger(opened().dispatch.client, config.prefix))
    contacts = _once(lambda: RedisContactBook(opened().dispatch.client, config.prefix))
    retries = _once(lambda: RedisRetryQueue(opened().dispatch.client, config.prefix))
    # Kept as long as an open case is: a point cannot be re-read after its case expired.
    memo_ttl = int(config.case_open_ttl_days * DAY)
    memo = _once(lambda: RedisDecisionMemo(opened().dispatch.client, config.prefix, memo_ttl))
    return LiveStores(
        ledger=lambda: opened().dispatch,
        context=lambda: opened().context,
        cases=lambda: opened().cases,
        kind="redis",
        models=lambda: opened().models,
        credit=credit,
        contacts=contacts,
        retries=retries,
        memo=memo,
    )


def review_auth(settings: Settings) -> ReviewAuth:
    """Who may decide reviews, from the settings; warns when nobody can."""
    rv = settings.review
    secret = rv.secret()
    if secret is None:
        log.warning(
            "review decisions will be dead-lettered: %s (review.secret_env) is not set",
            rv.secret_env,
        )
    if not rv.reviewers:
        log.warning("review decisions will be dead-lettered: review.reviewers is empty")
    return ReviewAuth.create(
        secret,
        rv.reviewers,
        rv.link_hosts,
        max_message_chars=rv.max_message_chars,
        max_age_seconds=rv.signature_max_age_hours * HOUR,
    )


# --- the review step -----------------------------------------------------------------------


class ReviewLogic(StatefulLogic[tuple[str, Any], tuple[str, dict[str, Any]], bytes]):
    """Bytewax wrapper of :class:`~operators.review.ReviewBook` (one per order), woken by
    wall-clock time for expiry."""

    def __init__(
        self,
        book: ReviewBook,
        policy: RecoveryPolicy,
        clock: Callable[[], float],
        stores: CapStores | None = None,
    ) -> None:
        self.book = book
        self.policy = policy
        self.clock = clock
        self.stores = stores

    def _discard(self, now: float) -> bool:
        return StatefulLogic.DISCARD if self.book.finished(now) else StatefulLogic.RETAIN

    def on_item(self, value: tuple[str, Any]) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        kind, payload = value
        now = self.clock()
        book = self.book
        if kind == "request":
            return book.on_request(payload, now, self.policy), self._discard(now)
        if kind == "decision":
            out = book.on_decision(payload, self.policy, now, self.stores)
            return out, self._discard(now)
        # kind == "closed": only orders with review state need to remember it.
        if book.empty():
            return [], StatefulLogic.DISCARD
        return book.on_close(payload, now), self._discard(now)

    def on_notify(self) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        now = self.clock()
        return self.book.on_time(now), self._discard(now)

    def on_eof(self) -> tuple[list[tuple[str, dict[str, Any]]], bool]:
        return [], StatefulLogic.RETAIN

    def notify_at(self) -> datetime | None:
        at = self.book.next_wakeup()
        return datetime.fromtimestamp(at, UTC) if at else None

    def snapshot(self) -> bytes:
        return pickle.dumps(self.book, pickle.HIGHEST_PROTOCOL)


def add_review_loop(
    streams: FlowStreams,
    decisions: Stream[Any],
    policy: RecoveryPolicy,
    expires_seconds: float,
    retention_seconds: float,
    clock: Callable[[], float] = time.time,
    auth: ReviewAuth | None = None,
    stores: CapStores | Callable[[], CapStores] | None = None,
) -> ReviewStreams:
    """Join review requests, reviewer decisions and case closes per order. Approved
    interventions are merged into ``streams.records["interventions"]``; review-decision
    dead letters (bad input, failed authentication with ``auth``, decisions for requests
    never issued) into ``streams.records["dead_letter"]``. ``stores``: the contacts and
    credit the caps of an approval are checked against. Returns the review records and
    the approved interventions."""
    records = streams.records
    parsed = op.map("review_parse", decisions, lambda item: parse_decision(item[1], item[2], auth))
    valid = op.branch("review_valid", parsed, lambda x: isinstance(x, ReviewDecision))
    requests = op.filter_map(
        "review_requests",
        records["interventions"],
        lambda iv: ("request", iv) if iv.get("action") == REVIEW_ACTION else None,
    )
    closes = op.map("review_closes", records["outcomes"], lambda o: ("closed", o))
    answers = op.map("review_answers", valid.trues, lambda d: ("decision", d))
    joined = op.merge("review_inputs", requests, answers, closes)

    def order_of(item: tuple[str, Any]) -> str:
        kind, payload = item
        return payload.order_id if kind == "decision" else payload["order_id"]

    keyed = op.key_on("review_key", joined, order_of)

    def builder(snap: bytes | None) -> ReviewLogic:
        caps = stores() if callable(stores) else stores
        if snap is not None:
            return ReviewLogic(pickle.loads(snap), policy, clock, caps)
        book = ReviewBook(expires_seconds=expires_seconds, retention_seconds=retention_seconds)
        return ReviewLogic(book, policy, clock, caps)

    reviewed = op.map("review_unkey", op.stateful("review", keyed, builder), lambda kv: kv[1])
    approved = op.filter_map(
        "review_approved", reviewed, lambda t: t[1] if t[0] == "intervention" else None
    )
    reviews = op.filter_map(
        "review_records", reviewed, lambda t: t[1] if t[0] == "review" else None
    )
    refused = op.filter_map(
        "review_refused", reviewed, lambda t: t[1] if t[0] == "dead_letter" else None
    )
    records["interventions"] = op.merge("interventions_all", records["interventions"], approved)
    bad = op.map("review_dead_letter", valid.falses, _dead_letter_record)
    records["dead_letter"] = op.merge("dead_letter_all", records["dead_letter"], bad, refused)
    return ReviewStreams(reviews, approved)


class ReviewStreams(NamedTuple):
    """What the review loop adds to a flow."""

    #: A record per review request and answer (to the decisions topic, type ``review``).
    reviews: Stream[dict[str, Any]]
    #: Interventions a reviewer approved (also merged into the interventions output).
    approved: Stream[dict[str, Any]]


#: The kinds of record the case step emits that go to Kafka as they are.
_CASE_KINDS_TO_KAFKA = frozenset(TAG_OF_OUTPUT[name] for name in RECORD_OUTPUTS)


def _dead_letter_record(parsed: ReviewDecision | DeadLetter) -> dict[str, Any]:
    """The dead-letter record of a review decision that did not parse (the branch's false
    side holds only dead letters)."""
    assert isinstance(parsed, DeadLetter), parsed
    return parsed.to_record()


def review_case_record(review: dict[str, Any]) -> dict[str, Any]:
    """A review record as a case-store decision entry (the audit trail of ``salvage case``)."""
    return {
        **review,
        "trigger_event_id": f"{review['review_id']}:{review['recorded_at']}",
        "action": f"review_{review['status']}",
        "decided_at": review.get("decided_at") or review.get("recorded_at"),
        "rule": REVIEW_ACTION,
        "reasons": [r for r in (review.get("reason"),) if r],
    }


# --- the whole flow ---------------------------------------------------------------------------


@dataclass
class LiveOptions:
    """Test and tooling hooks; production uses the defaults."""

    stores: LiveStores | None = None
    policy: RecoveryPolicy | None = None
    #: None: the Prometheus metrics of flows.observability on the default registry.
    observer: FlowObserver | None = None
    clock: Callable[[], float] = time.time
    on_delivery: Callable[[DeliveryResult], None] | None = None
    dispatcher_rng_seed: int | None = None
    flow_id: str = "salvage-live"
    #: Demos and drills (``salvage run --close-at-end``): end the input once every input
    #: partition has been at its end this many seconds, and close the open cases as
    #: censored, as a replay does at the end of its files. None: the input never ends.
    close_at_end_seconds: float | None = None


def build_live_flow(settings: Settings, options: LiveOptions | None = None) -> Dataflow:
    """The live dataflow for ``settings``. Validates secrets before building."""
    tune_gc()
    opts = options or LiveOptions()
    settings.check_secrets()
    policy = opts.policy or (
        RecoveryPolicy.load(settings.policy) if settings.policy else RecoveryPolicy.default()
    )
    stores = opts.stores or stores_from_settings(settings)
    kafka = settings.kafka
    observer = opts.observer if opts.observer is not None else _metrics_observer()

    # Online models: one learner step (a single writer) checkpoints to the model store;
    # scorers read its snapshots in this process and its checkpoints in the others.
    model_store = stores.models() if stores.models is not None else None
    models = ModelRuntime.for_policy(
        policy, settings.window, store=model_store, checkpoint_every_seconds=CHECKPOINT_SECONDS
    )

    # One credit ledger for the engine, the review loop and the dispatcher (durable and
    # shared across processes in Redis), so every 30-day cap counts every grant once.
    credit = stores.credit or _once(InMemoryCreditLedger)

    memo = stores.memo or _once(InMemoryDecisionMemo)

    def decider() -> RememberingDecider:
        scorer = OnlineScorer(models.board, store=model_store)
        engine = DecisionEngine(policy, scorer=scorer, context=stores.context(), ledger=credit())
        # Effectively once per decision point: after a resume, re-read events get the
        # decision they got before the crash, not one made against state that moved on.
        return RememberingDecider(engine, memo(), policy.version)

    inputs = {kafka.topic_of(s): s for s in kafka.topics}
    end = opts.close_at_end_seconds
    source = KafkaInputSource(
        kafka, inputs, settings.batch_size, on_lag=observer.on_kafka_lag, end_when_idle=end
    )
    # One watermark per input partition: the clock takes the lowest, so a partition read
    # ahead of the others (a backlog, a restart from earliest) makes no event late.
    window = replace(settings.window, sources=tuple(source.list_parts()))
    parts = FlowParts(
        source=source,
        sinks={},
        decider_factory=decider,
        window=window,
        close_open_cases_at_eof=end is not None,
        emit_case_views=stores.cases is not None,
        observer=observer,
        models=models,
        # The memo is read and written once per batch, not twice per decision point.
        decides_per_batch=True,
    )
    streams = build_streams(parts, opts.flow_id)
    review_source = KafkaInputSource(
        kafka, {kafka.review_decisions_topic: REVIEW_STREAM}, settings.batch_size,
        end_when_idle=end,
    )  # fmt: skip
    decisions = op.input("review_input", streams.flow, review_source)
    expires_hours = settings.review.expires_hours
    if expires_hours is None:
        expires_hours = policy.review_expires_hours
    contacts = stores.contacts or _once(InMemoryContactBook)
    review = add_review_loop(
        streams,
        decisions,
        policy,
        expires_hours * HOUR,
        settings.review.retention_hours * HOUR,
        opts.clock,
        auth=review_auth(settings),
        # Opened on the workers, on first use.
        stores=lambda: CapStores(credit(), contacts()),
    )
    reviews = review.reviews
    if observer.on_output is not None:
        # Reviewers' answers move cases out of review in the metrics.
        hook = observer.on_output
        reviews = op.inspect("observe_reviews", reviews, lambda _s, r: hook("reviews", r))
    observe_outputs(streams, list(OUTPUT_NAMES), observer)

    # Every output topic through one sink: the case step's decisions, interventions and
    # outcomes of a batch leave in one produce and one wait for the broker's
    # acknowledgement, not one per topic (docs/performance.md, "Live latency").
    out = kafka.output_topics
    # A record's kind is its ``type`` header; reviews share the decisions topic.
    routes = {TAG_OF_OUTPUT[name]: out[name] for name in OUTPUT_NAMES}
    routes["review"] = out["decisions"]
    to_kafka = op.merge(
        "kafka_records",
        tagged_records(streams, "kafka_case_records", _CASE_KINDS_TO_KAFKA),
        tag_records("kafka_approved", review.approved, "intervention"),
        tag_records("kafka_dead_letters", streams.records["dead_letter"], "dead_letter"),
        tag_records("kafka_reviews", reviews, "review"),
    )
    op.output("out_kafka", to_kafka, KafkaRoutedSink(kafka, routes))

    if stores.cases is not None:
        from flows.case_sink import CaseStoreSink, case_records

        all_records = op.merge(
            "case_records_all",
            case_records(streams),
            tag_records("case_tag_approved", review.approved, "intervention"),
            op.map(
                "case_tag_reviews", review.reviews, lambda r: ("decision", review_case_record(r))
            ),
        )
        op.output("out_case_store", all_records, CaseStoreSink(stores.cases))

    if settings.webhooks.routes:
        retries = stores.retries or _once(InMemoryRetryQueue)
        sends = settings.webhooks.sent_by_flow
        # ``webhooks.delivery: dispatcher``: no secrets here; the flow writes the outbox.
        secrets = settings.webhook_secrets() if sends else {}

        def make_dispatcher(worker_index: int) -> Dispatcher:
            import random

            seed = opts.dispatcher_rng_seed
            return Dispatcher(
                settings.webhooks,
                secrets,
                stores.ledger(),
                dead_letter_writer(kafka),
                rng=random.Random(None if seed is None else seed + worker_index),
                on_result=opts.on_delivery,
                metrics=DispatchMetrics.create(),
                guard=DispatchCaps(policy, credit(), contacts()),
                retries=retries(),
                retry_poll_seconds=RETRY_POLL_SECONDS,
                sends=sends,
            )

        op.output("dispatch", streams.records["interventions"], DispatchSink(make_dispatcher))
    return streams.flow


def _metrics_observer() -> FlowObserver:
    """The flow metrics (flows.observability) on the default registry, if they can be set up."""
    try:
        from flows.observability.metrics import SalvageMetrics

        metrics = SalvageMetrics()
    except (ImportError, ValueError) as exc:  # e.g. registered twice in one process
        log.warning("flow metrics are off: %s", exc)
        return FlowObserver()
    _watch_redis(metrics)
    return metrics.observer()


def _watch_redis(metrics: Any) -> None:
    """Redis outages in the metrics: ``salvage_redis_up`` and, per failed attempt,
    ``salvage_redis_calls_total{operation="connection",outcome="error"}``."""
    from state.redis_conn import HEALTH

    metrics.redis_up.set(1 if HEALTH.up else 0)

    def on_health(up: bool, error: BaseException | None) -> None:
        metrics.redis_up.set(1 if up else 0)
        if not up:
            metrics.redis_calls.labels("connection", "error").inc()

    HEALTH.listen(on_health)


# --- running it: shared by ``salvage run`` and ``python -m bytewax.run flows.live:flow`` --------


def init_recovery(directory: Path, partitions: int) -> bool:
    """Create Bytewax recovery partitions in ``directory`` unless some exist. True if made."""
    from bytewax.recovery import init_db_dir

    directory.mkdir(parents=True, exist_ok=True)
    if any(directory.glob("part-*.sqlite3")):
        return False
    init_db_dir(directory, partitions)
    return True


def recovery_from_settings(settings: Settings) -> tuple[Any, timedelta]:
    """``(RecoveryConfig or None, epoch interval)`` for ``recovery.*``; creates the recovery
    partitions on first use and says in the log where recovery is, or that there is none."""
    from bytewax.recovery import RecoveryConfig

    rec = settings.recovery
    epoch = timedelta(seconds=rec.snapshot_interval_seconds)
    if not rec.dir:
        log.warning(
            "no recovery.dir: a restart re-reads input from kafka.starting_offset=%s",
            settings.kafka.starting_offset,
        )
        return None, epoch
    made = init_recovery(Path(rec.dir), rec.partitions)
    log.info(
        "recovery in %s (%s); snapshots every %g s",
        rec.dir,
        "new" if made else "resuming",
        rec.snapshot_interval_seconds,
    )
    return RecoveryConfig(rec.dir, timedelta(seconds=rec.backup_interval_seconds)), epoch


def start_metrics_server(settings: Settings) -> None:
    """Serve ``/metrics`` on ``metrics_addr:metrics_port`` (0: off)."""
    if not settings.metrics_port:
        return
    from prometheus_client import start_http_server

    start_http_server(settings.metrics_port, addr=settings.metrics_addr)
    log.info("metrics on %s:%d/metrics", settings.metrics_addr, settings.metrics_port)


def log_start(settings: Settings, how: str) -> None:
    log.info(
        "%s: %s, %d worker(s), brokers %s",
        how,
        settings.source,
        settings.workers,
        settings.kafka.bootstrap_servers,
    )


def _bytewax_run_arguments() -> dict[str, Any] | None:
    """The arguments ``python -m bytewax.run`` will run the flow with, if it is the runner:
    its ``__main__`` parses them into ``kwargs`` before it looks the flow up (Bytewax
    0.21), so the flow can still fill in what the settings say."""
    main = sys.modules.get("__main__")
    spec = getattr(main, "__spec__", None)
    kwargs = getattr(main, "kwargs", None)
    if spec is None or spec.name != "bytewax.run" or not isinstance(kwargs, dict):
        return None
    return kwargs if "recovery_config" in kwargs else None


def _flow_for_bytewax_run() -> Dataflow:
    """``flows.live:flow``: the flow ``salvage run`` runs, with its logging, its metrics
    endpoint and its recovery settings (``-r/-s/-b`` on the command line win)."""
    logging.basicConfig(level=logging.INFO, format=LOG_FORMAT)
    settings = load_settings()
    flow = build_live_flow(settings)
    run_args = _bytewax_run_arguments()
    if run_args is None:
        log.info("flows.live:flow built outside bytewax.run: recovery is the runner's")
    elif run_args["recovery_config"] is not None:
        given = run_args["recovery_config"]
        init_recovery(Path(given.db_dir), settings.recovery.partitions)
        log.info("recovery in %s (from -r)", given.db_dir)
        if settings.recovery.dir and Path(settings.recovery.dir) != Path(given.db_dir):
            log.warning("recovery.dir %s is not used: -r wins", settings.recovery.dir)
    else:
        recovery, epoch = recovery_from_settings(settings)
        if recovery is not None:
            run_args["recovery_config"] = recovery
            run_args["epoch_interval"] = epoch
    start_metrics_server(settings)
    log_start(settings, "bytewax.run flows.live:flow")
    return flow


#: The log format of ``salvage`` and of ``flows.live:flow``.
LOG_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"

_FLOW: list[Dataflow] = []


def __getattr__(name: str) -> Any:
    # ``python -m bytewax.run flows.live:flow``: built on first access from the settings
    # in the environment, not at import time.
    if name == "flow":
        if not _FLOW:
            _FLOW.append(_flow_for_bytewax_run())
        return _FLOW[0]
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
