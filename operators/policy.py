"""RecoveryPolicy: the explicit, versioned policy file, loaded and validated in one place.

A policy says which actions exist, when each is eligible, what it costs, the caps and
cooldowns, quiet hours, the holdout share, and the automation boundary (what must go to a
human). Errors name the file, the line and the key::

    policies/x.yaml:14: actions.exchange_first_offer.cost: must be a number >= 0, got 'low'

>>> policy = RecoveryPolicy.from_text('''
... version: "t-1"
... actions:
...   proactive_reassurance:
...     cost: 0.2
...     eligible: [{name: late, min_slip_hours: 48}]
... ''')
>>> policy.version, policy.actions["proactive_reassurance"].eligible[0].min_slip_hours
('t-1', 48.0)
>>> RecoveryPolicy.from_text("version: 1\\nactions: {teleport: {cost: 1}}", "p.yaml")
... # doctest: +ELLIPSIS
Traceback (most recent call last):
...
operators.policy.PolicyError: p.yaml:2: actions.teleport: unknown action; expected one of ...
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from importlib import resources
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import yaml

from operators.actions import action_names, definition
from operators.case import OrderCase
from operators.contract import INTENTS, REFUND_REASONS
from operators.vocabulary import Covariance, SegmentCross

REQUEST_TYPE_NAMES = ("return_requested", "refund_requested", "exchange_requested")
DEFAULT_POLICY = "default.yaml"
#: How a learned policy may choose among its options (``learning.choice``).
CHOICES = ("guarded", "thompson")


class PolicyError(ValueError):
    """A policy file that cannot be used; the message says where and what."""


# --- loading with line numbers -------------------------------------------------------------


#: Limits of a policy document. A real policy has a few hundred values; YAML aliases can
#: make a 4 KB file stand for billions ("billion laughs"), and one that refers to itself
#: for infinitely many, so the expansion is counted and cut off.
MAX_POLICY_BYTES = 256 * 1024
MAX_POLICY_VALUES = 5000
MAX_POLICY_DEPTH = 32
_BRACKETS = re.compile(r"[\[\]{}]")


class _Doc:
    """A parsed YAML document plus the line of every key path, for error messages."""

    def __init__(self, text: str, source: str) -> None:
        self.source = source
        self.lines: dict[str, int] = {}
        self.raw: dict[str, str] = {}  # scalars as written (before YAML typed them)
        self._budget = MAX_POLICY_VALUES
        if len(text) > MAX_POLICY_BYTES:
            raise PolicyError(
                f"{source}:1: the policy file is {len(text)} characters, above the limit "
                f"of {MAX_POLICY_BYTES}"
            )
        # The YAML scanner is quadratic in the nesting of flow collections: refuse deep
        # nesting before it runs (brackets in quoted text count too; no policy nests deep).
        depth = deepest = 0
        for bracket in _BRACKETS.findall(text):
            depth = depth + 1 if bracket in "[{" else max(depth - 1, 0)
            deepest = max(deepest, depth)
        if deepest > 2 * MAX_POLICY_DEPTH:
            raise PolicyError(f"{source}:1: not valid YAML: nested too deeply")
        self._loader = yaml.SafeLoader("")
        try:
            node = yaml.compose(text)
        except RecursionError:
            raise PolicyError(f"{source}:1: not valid YAML: nested too deeply") from None
        except yaml.YAMLError as exc:
            mark = getattr(exc, "problem_mark", None)
            line = f"{mark.line + 1}" if mark is not None else "?"
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError(f"{source}:{line}: not valid YAML: {problem}") from None
        if node is None:
            raise PolicyError(f"{source}:1: the policy file is empty")
        try:
            self.data = self._convert(node, "")
        except yaml.YAMLError as exc:  # a scalar YAML cannot type safely (a python/* tag)
            mark = getattr(exc, "problem_mark", None)
            line = f"{mark.line + 1}" if mark is not None else "?"
            problem = getattr(exc, "problem", None) or str(exc)
            raise PolicyError(f"{source}:{line}: not valid YAML: {problem}") from None

    def _convert(self, node: yaml.Node, path: str, depth: int = 0) -> Any:
        line = node.start_mark.line + 1
        self._budget -= 1
        if self._budget < 0:
            raise PolicyError(
                f"{self.source}:{line}: the document expands to more than "
                f"{MAX_POLICY_VALUES} values (YAML aliases used too often or nested)"
            )
        if depth > MAX_POLICY_DEPTH:  # also where an alias refers to itself
            raise PolicyError(
                f"{self.source}:{line}: {path}: nested deeper than {MAX_POLICY_DEPTH} levels "
                "(or a YAML alias refers to itself)"
            )
        self.lines[path] = line
        if isinstance(node, yaml.MappingNode):
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                key = str(key_node.value)
                sub = f"{path}.{key}" if path else key
                if key in out:
                    # YAML would keep the last one silently (a pasted block, say).
                    raise PolicyError(
                        f"{self.source}:{key_node.start_mark.line + 1}: {sub}: "
                        f"duplicate key (first at line {self.lines[sub]})"
                    )
                self.lines[sub] = key_node.start_mark.line + 1
                out[key] = self._convert(value_node, sub, depth + 1)
                self.lines[sub] = key_node.start_mark.line + 1
            return out
        if isinstance(node, yaml.SequenceNode):
            return [self._convert(v, f"{path}[{i}]", depth + 1) for i, v in enumerate(node.value)]
        self.raw[path] = str(node.value)
        # The safe constructor, once per node: an aliased scalar is typed once.
        return self._loader.construct_object(node)

    def error(self, path: str, message: str) -> PolicyError:
        line = self.lines.get(path)
        probe = path
        while line is None and probe:
            probe = probe.rsplit(".", 1)[0] if "." in probe else ""
            line = self.lines.get(probe)
        return PolicyError(f"{self.source}:{line or 1}: {path or '(top)'}: {message}")


class _Reader:
    """Typed access to one mapping of the document, collecting unknown keys as errors."""

    def __init__(self, doc: _Doc, path: str, value: Any) -> None:
        if not isinstance(value, dict):
            raise doc.error(path, f"must be a mapping, got {type(value).__name__}")
        self.doc, self.path, self.value = doc, path, value
        self.used: set[str] = set()

    def _p(self, key: str) -> str:
        return f"{self.path}.{key}" if self.path else key

    def get(self, key: str, default: Any = None) -> Any:
        self.used.add(key)
        return self.value.get(key, default)

    def number(
        self, key: str, default: float | None, *, lo: float = 0.0, hi: float | None = None
    ) -> float:
        value = self.get(key, default)
        if value is None:
            raise self.doc.error(self._p(key), "is required")
        if (
            isinstance(value, bool)
            or not isinstance(value, (int, float))
            or math.isnan(value)
            or value < lo
            or (hi is not None and value > hi)
        ):
            bound = f">= {lo:g}" if hi is None else f"in [{lo:g}, {hi:g}]"
            raise self.doc.error(self._p(key), f"must be a number {bound}, got {value!r}")
        return float(value)

    def opt_number(
        self, key: str, *, lo: float = float("-inf"), hi: float | None = None
    ) -> float | None:
        if self.value.get(key) is None:
            self.used.add(key)
            return None
        return self.number(key, None, lo=lo, hi=hi)

    def boolean(self, key: str, default: bool) -> bool:
        value = self.get(key, default)
        if not isinstance(value, bool):
            raise self.doc.error(self._p(key), f"must be true or false, got {value!r}")
        return value

    def string(self, key: str, default: str | None = None) -> str:
        value = self.get(key, default)
        if value is None:
            raise self.doc.error(self._p(key), "is required")
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            value = str(value)
        if not isinstance(value, str) or not value:
            raise self.doc.error(self._p(key), f"must be a non-empty string, got {value!r}")
        return value

    def one_of(self, key: str, allowed: Sequence[str], default: str) -> str:
        value = self.get(key, default)
        if value not in allowed:
            raise self.doc.error(
                self._p(key), f"must be one of {', '.join(allowed)}, got {value!r}"
            )
        return str(value)

    def choices(self, key: str, allowed: frozenset[str] | tuple[str, ...]) -> frozenset[str] | None:
        value = self.get(key)
        if value is None:
            return None
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise self.doc.error(self._p(key), "must be a list of strings")
        bad = [v for v in value if v not in allowed]
        if bad:
            raise self.doc.error(
                self._p(key), f"unknown value(s) {bad}; expected any of {sorted(allowed)}"
            )
        return frozenset(value)

    def sub(self, key: str) -> _Reader:
        return _Reader(self.doc, self._p(key), self.get(key) or {})

    def done(self) -> None:
        unknown = sorted(set(self.value) - self.used)
        if unknown:
            raise self.doc.error(self._p(unknown[0]), "unknown key")


# --- the policy model --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Eligibility:
    """One clause of an action's eligibility: all conditions set must hold (AND); an
    action is eligible if any of its clauses holds (OR)."""

    name: str
    min_slip_hours: float | None = None
    max_slip_hours: float | None = None
    intents: frozenset[str] | None = None
    reasons: frozenset[str] | None = None
    request_types: frozenset[str] | None = None
    sku_families: frozenset[str] | None = None
    delivered: bool | None = None
    delivery_problem: bool | None = None
    exchange_preferred: bool | None = None
    has_request: bool | None = None
    min_contacts: float | None = None
    max_sentiment: float | None = None
    min_order_value: float | None = None

    def holds(self, case: OrderCase, now: float) -> bool:
        # Checked one by one, stopping at the first that fails: this runs for every clause
        # of every action at every decision point, and most clauses fail early.
        if self.min_slip_hours is not None or self.max_slip_hours is not None:
            slip = case.slip_hours(now)
            if self.min_slip_hours is not None and not slip >= self.min_slip_hours:
                return False
            if self.max_slip_hours is not None and not slip <= self.max_slip_hours:
                return False
        if self.intents is not None and case.last_intent not in self.intents:
            return False
        if self.reasons is not None and case.request_reason not in self.reasons:
            return False
        if self.request_types is not None and not (
            case.has_open_request() and case.request_type in self.request_types
        ):
            return False
        if self.sku_families is not None and case.sku_family not in self.sku_families:
            return False
        if self.delivered is not None and (case.delivered_at is not None) != self.delivered:
            return False
        if self.delivery_problem is not None and self.delivery_problem != bool(
            case.exceptions or case.failed_attempts or case.lost
        ):
            return False
        if (
            self.exchange_preferred is not None
            and case.exchange_preferred != self.exchange_preferred
        ):
            return False
        if self.has_request is not None and case.has_open_request() != self.has_request:
            return False
        if self.min_contacts is not None and not case.contacts >= self.min_contacts:
            return False
        if self.max_sentiment is not None and not (
            case.min_sentiment is not None and case.min_sentiment <= self.max_sentiment
        ):
            return False
        return self.min_order_value is None or case.order_value >= self.min_order_value


@dataclass(frozen=True, slots=True)
class ActionSpec:
    """One action: what it costs, how often, when it applies, what it says."""

    name: str
    cost: float
    credit_share: float = 0.0  # store credit offered, as a share of the order value
    cooldown_hours: float = 72.0
    customer_facing: bool = True
    eligible: tuple[Eligibility, ...] = ()
    #: A fixed P(recovered) for a scorer without an estimate for this action (none of the
    #: shipped scorers: they score every registered action).
    base_recovery: float | None = None
    message_template: str | None = None
    #: Appended to the message only when the intervention carries a credit offer, so a
    #: customer whose 30-day credit cap is used up never reads "added  to your account".
    message_credit_template: str | None = None
    channel: str | None = None


@dataclass(frozen=True, slots=True)
class AutomationBoundary:
    """What an agent may do alone; anything past it goes to human review."""

    max_value_at_risk: float = 300.0
    max_abuse_risk: float = 0.5
    review_chargeback_risk: bool = True
    review_conflicting_signals: bool = True
    min_value_for_review: float = 40.0


@dataclass(frozen=True, slots=True)
class QuietHours:
    """Customer messages decided in quiet hours are held until ``end`` (local time)."""

    start_minute: int
    end_minute: int
    timezone: str

    def send_after(self, ts: float) -> float | None:
        """The event time to hold a message until, or None if ``ts`` is not quiet."""
        tz = ZoneInfo(self.timezone)
        local = datetime.fromtimestamp(ts, UTC).astimezone(tz)
        minute = local.hour * 60 + local.minute
        s, e = self.start_minute, self.end_minute
        quiet = (s <= minute < e) if s < e else (minute >= s or minute < e)
        if not quiet:
            return None
        end = local.replace(hour=e // 60, minute=e % 60, second=0, microsecond=0)
        if end <= local:
            end += timedelta(days=1)
        return end.timestamp()


@dataclass(frozen=True, slots=True)
class RecoveryPolicy:
    """A validated policy. Build it with :meth:`load`, :meth:`from_text` or :meth:`default`."""

    version: str
    actions: dict[str, ActionSpec]
    holdout_share: float = 0.10
    holdout_salt: str = "salvage-holdout-v1"
    min_return_propensity: float = 0.15
    min_expected_saving: float = 0.5
    customer_value_weight: float = 5.0
    exploration: float = 0.0
    max_contacts_per_order: int = 2
    max_credit_per_order: float = 20.0
    max_credit_per_customer_30d: float = 40.0
    cost_budget_share: float = 0.02
    review_expires_hours: float = 48.0
    automation: AutomationBoundary = field(default_factory=AutomationBoundary)
    quiet_hours: QuietHours | None = None
    #: Every decision is labelled "refunded within this many days of event time after it".
    label_horizon_days: float = 14.0
    #: Outcomes (at a 50 % rate) that weigh as much as the heuristic prior in a segment.
    prior_outcomes: float = 50.0
    #: How the learned policy chooses: ``guarded`` (the best action under the posterior
    #: means where the posterior is sure it beats the static rules' choice, else that
    #: choice; plus the exploration floor) or ``thompson`` (Thompson sampling).
    choice: str = "guarded"
    #: The guard's confidence (``learning.guard_confidence``): the share of posterior draws
    #: in which the learned choice must save more than the static rules' before it replaces
    #: it. None: ``operators.bandit.GUARD_CONFIDENCE`` (0.99).
    guard_confidence: float | None = None
    #: The posterior over the bandit's weights (``learning.covariance``): ``diagonal``
    #: (independent weights) or ``full`` (``operators.logistic.Gaussian``).
    covariance: Covariance = Covariance.DIAGONAL
    #: ``learning.outcome_half_life_days``: the bandit forgets (stabilised exponential
    #: forgetting, ``operators.bandit``): an outcome learned this many days of event time
    #: ago counts half, the prior always in full. None: outcomes count for ever.
    outcome_half_life_days: float | None = None
    #: Keys the bandit's segments add beside the one-hot ones (``learning.segment_crosses``).
    segment_crosses: tuple[SegmentCross, ...] = ()
    #: Models and context aggregates are versioned by event time: a new version every
    #: this many hours, and a decision at time t reads the version of t less the lag
    #: (``operators.versions``; docs/decisions.md, "Replay determinism").
    version_period_hours: float = 24.0
    version_lag_hours: float = 48.0
    source: str = "<text>"

    @property
    def prior_precision(self) -> float:
        """Precision of each bandit weight's Gaussian prior (see ``operators.bandit``)."""
        return self.prior_outcomes / 4.0

    def action_costs(self) -> dict[str, float]:
        """Cost to the business of one use of each action."""
        return {name: spec.cost for name, spec in self.actions.items()}

    @classmethod
    def from_text(cls, text: str, source: str = "<text>") -> RecoveryPolicy:
        doc = _Doc(text, source)
        return _build(doc)

    @classmethod
    def load(cls, path: str | Path) -> RecoveryPolicy:
        p = Path(path)
        try:
            text = p.read_text(encoding="utf-8")
        except OSError as exc:
            raise PolicyError(f"{p}: cannot read the policy file: {exc.strerror}") from None
        return cls.from_text(text, str(p))

    @classmethod
    def default(cls) -> RecoveryPolicy:
        """The policy that ships with Salvage (``operators/policies/default.yaml``, package
        data next to this module)."""
        ref = resources.files("operators") / "policies" / DEFAULT_POLICY
        return cls.from_text(
            ref.read_text(encoding="utf-8"), f"operators/policies/{DEFAULT_POLICY}"
        )


def _hhmm(doc: _Doc, path: str, value: Any) -> int:
    if isinstance(value, int) and not isinstance(value, bool):
        # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260: use the text as written.
        value = doc.raw.get(path, value)
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":":
        raise doc.error(path, f"must be a time like '21:00', got {value!r}")
    try:
        h, m = int(value[:2]), int(value[3:])
    except ValueError:
        raise doc.error(path, f"must be a time like '21:00', got {value!r}") from None
    if not (0 <= h < 24 and 0 <= m < 60):
        raise doc.error(path, f"must be a time like '21:00', got {value!r}")
    return h * 60 + m


def _eligibility(doc: _Doc, path: str, value: Any) -> Eligibility:
    r = _Reader(doc, path, value)
    clause = Eligibility(
        name=r.string("name"),
        min_slip_hours=r.opt_number("min_slip_hours", lo=0.0),
        max_slip_hours=r.opt_number("max_slip_hours", lo=0.0),
        intents=r.choices("intents", INTENTS),
        reasons=r.choices("reasons", REFUND_REASONS),
        request_types=r.choices("request_types", REQUEST_TYPE_NAMES),
        sku_families=_families(r),
        delivered=_opt_bool(r, "delivered"),
        delivery_problem=_opt_bool(r, "delivery_problem"),
        exchange_preferred=_opt_bool(r, "exchange_preferred"),
        has_request=_opt_bool(r, "has_request"),
        min_contacts=r.opt_number("min_contacts", lo=0.0),
        max_sentiment=r.opt_number("max_sentiment", lo=-1.0, hi=1.0),
        min_order_value=r.opt_number("min_order_value", lo=0.0),
    )
    r.done()
    return clause


def _families(r: _Reader) -> frozenset[str] | None:
    value = r.get("sku_families")
    if value is None:
        return None
    if not isinstance(value, list) or not value or not all(isinstance(v, str) for v in value):
        raise r.doc.error(r._p("sku_families"), "must be a non-empty list of strings")
    return frozenset(value)


def _opt_bool(r: _Reader, key: str) -> bool | None:
    if r.value.get(key) is None:
        r.used.add(key)
        return None
    return r.boolean(key, False)


def _action(doc: _Doc, path: str, name: str, value: Any) -> ActionSpec:
    known = action_names()
    if name not in known:
        raise doc.error(path, f"unknown action; expected one of {', '.join(known)}")
    defaults = definition(name)
    r = _Reader(doc, path, value)
    clauses = r.get("eligible", [])
    if not isinstance(clauses, list):
        raise doc.error(f"{path}.eligible", "must be a list of clauses")
    # Without a ``message`` key the action says what the registry says; ``message: null``
    # sends none.
    message = r.get("message")
    template = channel = credit_template = None
    if "message" not in r.value and defaults.message is not None:
        template = defaults.message.template
        channel = defaults.message.channel
        credit_template = defaults.message.credit_template
    if message is not None:
        m = _Reader(doc, f"{path}.message", message)
        template = " ".join(m.string("template").split())
        channel = m.string("channel", "email")
        if m.value.get("credit_template") is not None:
            credit_template = " ".join(m.string("credit_template").split())
        m.used.add("credit_template")
        m.done()
    spec = ActionSpec(
        name=name,
        cost=r.number("cost", None),
        credit_share=r.number("credit_share", defaults.credit_share, hi=1.0),
        cooldown_hours=r.number("cooldown_hours", defaults.cooldown_hours),
        customer_facing=defaults.customer_facing,
        eligible=tuple(
            _eligibility(doc, f"{path}.eligible[{i}]", c) for i, c in enumerate(clauses)
        ),
        base_recovery=r.opt_number("base_recovery", lo=0.0, hi=1.0),
        message_template=template,
        message_credit_template=credit_template,
        channel=channel,
    )
    r.done()
    return spec


def _build(doc: _Doc) -> RecoveryPolicy:
    top = _Reader(doc, "", doc.data)
    version = top.string("version")
    top.get("description")
    raw_actions = top.get("actions")
    if not isinstance(raw_actions, dict) or not raw_actions:
        raise doc.error("actions", "must be a mapping of at least one action")
    actions = {
        name: _action(doc, f"actions.{name}", name, spec) for name, spec in raw_actions.items()
    }
    holdout = top.sub("holdout")
    share = holdout.number("share", 0.10, hi=0.9)
    salt = holdout.string("salt", "salvage-holdout-v1")
    holdout.done()
    ranking = top.sub("ranking")
    min_prop = ranking.number("min_return_propensity", 0.15, hi=1.0)
    min_saving = ranking.number("min_expected_saving", 0.5)
    cv_weight = ranking.number("customer_value_weight", 5.0)
    exploration = ranking.number("exploration", 0.0, hi=0.5)
    ranking.done()
    limits = top.sub("limits")
    max_contacts = limits.number("max_contacts_per_order", 2)
    if max_contacts != int(max_contacts):
        raise doc.error("limits.max_contacts_per_order", "must be a whole number")
    max_credit = limits.number("max_credit_per_order", 20.0)
    max_credit_30d = limits.number("max_credit_per_customer_30d", 40.0)
    budget = limits.number("cost_budget_share", 0.02, hi=1.0)
    review_expires = limits.number("review_expires_hours", 48.0)
    limits.done()
    auto = top.sub("automation")
    boundary = AutomationBoundary(
        max_value_at_risk=auto.number("max_value_at_risk", 300.0),
        max_abuse_risk=auto.number("max_abuse_risk", 0.5, hi=1.0),
        review_chargeback_risk=auto.boolean("review_chargeback_risk", True),
        review_conflicting_signals=auto.boolean("review_conflicting_signals", True),
        min_value_for_review=auto.number("min_value_for_review", 40.0),
    )
    auto.done()
    quiet = None
    if top.get("quiet_hours") is not None:
        q = top.sub("quiet_hours")
        tz = q.string("timezone", "UTC")
        try:
            ZoneInfo(tz)
        except (ZoneInfoNotFoundError, ValueError):
            raise doc.error("quiet_hours.timezone", f"unknown time zone {tz!r}") from None
        quiet = QuietHours(
            _hhmm(doc, "quiet_hours.start", q.get("start")),
            _hhmm(doc, "quiet_hours.end", q.get("end")),
            tz,
        )
        q.done()
    horizon, prior_outcomes, choice = 14.0, 50.0, "guarded"
    guard: float | None = None
    covariance = Covariance.DIAGONAL
    half_life: float | None = None
    crosses: tuple[SegmentCross, ...] = ()
    period_hours, lag_hours = 24.0, 48.0
    if top.get("learning") is not None:
        learning = top.sub("learning")
        horizon = learning.number("label_horizon_days", 14.0, lo=0.1, hi=365.0)
        prior_outcomes = learning.number("prior_outcomes", 50.0, lo=0.1)
        choice = learning.one_of("choice", CHOICES, "guarded")
        guard = learning.opt_number("guard_confidence", lo=0.5, hi=1.0)
        half_life = learning.opt_number("outcome_half_life_days", lo=1.0, hi=3650.0)
        period_hours = learning.number("version_period_hours", 24.0, lo=0.01, hi=24.0 * 365)
        lag_hours = learning.number("version_lag_hours", 48.0, lo=0.0, hi=24.0 * 365)
        covariance = Covariance(
            learning.one_of("covariance", [c.value for c in Covariance], Covariance.DIAGONAL)
        )
        named = learning.choices("segment_crosses", tuple(c.value for c in SegmentCross))
        # In the vocabulary's order, whatever the file's: the keys are the same either way.
        crosses = tuple(c for c in SegmentCross if named and c.value in named)
        learning.done()
    top.done()
    return RecoveryPolicy(
        version=version,
        actions=actions,
        holdout_share=share,
        holdout_salt=salt,
        min_return_propensity=min_prop,
        min_expected_saving=min_saving,
        customer_value_weight=cv_weight,
        exploration=exploration,
        max_contacts_per_order=int(max_contacts),
        max_credit_per_order=max_credit,
        max_credit_per_customer_30d=max_credit_30d,
        cost_budget_share=budget,
        review_expires_hours=review_expires,
        automation=boundary,
        quiet_hours=quiet,
        label_horizon_days=horizon,
        prior_outcomes=prior_outcomes,
        choice=choice,
        guard_confidence=guard,
        covariance=covariance,
        outcome_half_life_days=half_life,
        segment_crosses=crosses,
        version_period_hours=period_hours,
        version_lag_hours=lag_hours,
        source=doc.source,
    )
