"""DecisionEngine: the ``decide`` step behind the decision seam.

For a case that changed, it builds features, scores the case, finds the eligible actions
under the policy, ranks them by expected margin saved, applies caps, cooldowns, quiet
hours and the automation boundary, assigns the holdout arm, and returns the records:
always a ``decision``; an ``intervention`` only for the treatment arm.

Expected saving of an action ``a``::

    P(refund) * P(recovered | a) * margin_at_risk
      + customer_value_weight * customer_value * P(refund) * P(recovered | a)
      - cost(a) - credit(a)

``margin_at_risk`` is what a refund costs the business: the order's margin plus the
credit it would not have to give, i.e. the order value less the cost of goods that come
back. We use the order's margin (value minus cost of goods), since most refunded goods
come back; lost parcels count the whole order value.
"""

from __future__ import annotations

import random
import threading
from collections import OrderedDict
from collections.abc import Iterable
from typing import Any

from operators.bandit import (
    BanditPosterior,
    Choice,
    Option,
    guarded_choice,
    logit,
    prior_offsets,
    seed_of,
    static_choice,
    thompson_choice,
)
from operators.case import DECISION_TYPES, HOUR, OrderCase
from operators.contract import Event, parse_ts
from operators.credit import CreditLedger, InMemoryCreditLedger
from operators.decision import (
    CONTROL,
    NO_ACTION,
    TREATMENT,
    CaseLabels,
    Decision,
    Scores,
    arm_of,
    intervention_id,
)
from operators.features import build_features, to_vector
from operators.messages import MessageFields, message_text
from operators.models import Pending, Resolution
from operators.policy import ActionSpec, RecoveryPolicy
from operators.records import CustomerMessage, Intervention, Offer, Output
from operators.scoring import HeuristicScorer, Scorer, abuse_risk
from operators.segments import Context, point_of
from operators.stores import ContextStore
from operators.vocabulary import Action, Outcome

#: A plain string: decisions are counted by action, and record keys must be exactly ``str``.
HUMAN_REVIEW: str = Action.HUMAN_REVIEW.value


_POINTS: dict[str, str] = {}


def _point(event_type: str) -> str:
    """The decision point of a trigger type, as the plain string records carry."""
    point = _POINTS.get(event_type)
    if point is None:
        point = point_of(event_type).value
        if len(_POINTS) < 1024:  # event types are validated: a handful in practice
            _POINTS[event_type] = point
    return point


def _probabilities(choice: Choice | None) -> tuple[tuple[str, float], ...]:
    """Each option's probability, rounded, in a stable order (empty without a choice)."""
    if choice is None or len(choice.shares) < 2:
        return ()
    return tuple((a, round(p, 6)) for a, p in sorted(choice.shares.items()))


class DecisionEngine:
    """Policy + scorer + context: implements the ``Decider`` seam of the case window.

    With a scorer that learns (``OnlineScorer``), actions are chosen by Thompson sampling
    over the bandit posteriors it reads (``operators.bandit``); with a fixed scorer
    (``HeuristicScorer``, ``--no-learning``), by the static rules: the largest expected
    saving. Both explore an ``ranking.exploration`` share uniformly among ``none`` and the
    eligible actions, and log the probability of their choice.

    ``emit_examples`` emits a ``pending`` learning example at every decision point until
    the case's first action, and a ``resolution`` when the case closes: the learner step
    labels each example at its horizon (see ``operators.models.Learner``).
    """

    def __init__(
        self,
        policy: RecoveryPolicy,
        scorer: Scorer | None = None,
        *,
        context: ContextStore,
        ledger: CreditLedger | None = None,
        emit_examples: bool = True,
    ) -> None:
        self.policy = policy
        self.scorer: Scorer = scorer or HeuristicScorer()
        self.context: ContextStore = context
        self.ledger: CreditLedger = ledger if ledger is not None else InMemoryCreditLedger()
        self.emit_examples = emit_examples
        self.prior = HeuristicScorer()
        # Thompson sampling before the first published posterior: the prior alone.
        self.prior_posterior = BanditPosterior(policy.prior_precision)
        #: Order id -> customer id, from the batches :meth:`prepare` saw (newest last).
        self._customer_of: OrderedDict[str, str] = OrderedDict()
        self._customer_lock = threading.Lock()  # workers of a process share the engine

    #: Orders :meth:`prepare` remembers the customer of (a bounded map, not per case: an
    #: order past it is read from the store at its decision, as without ``prepare``).
    CUSTOMERS_KEPT = 100_000

    def prepare(self, events: Iterable[Event]) -> None:
        """Before a batch of events reaches the cases (live mode): load the customers of
        their orders from a context store that can fetch many at once (``prefetch``), and
        the credit granted to the customers of the batch's possible decision points from a
        ledger that can (``prefetch``), so the batch's decisions read them from memory
        instead of one round trip each."""
        prefetch = getattr(self.context, "prefetch", None)
        prefetch_credit = getattr(self.ledger, "prefetch", None)
        if prefetch is None and prefetch_credit is None:
            return
        customer_of = self._customer_of
        wanted: list[str] = []
        deciding: list[str] = []  # customers of events that can be decision points
        with self._customer_lock:
            for e in events:
                cid = e.body.get("customer_id")
                if isinstance(cid, str) and cid:
                    customer_of[e.order_id] = cid
                    customer_of.move_to_end(e.order_id)
                else:
                    cid = customer_of.get(e.order_id)
                    if cid is None:
                        continue
                wanted.append(cid)
                if e.type in DECISION_TYPES:
                    deciding.append(cid)
            while len(customer_of) > self.CUSTOMERS_KEPT:
                customer_of.popitem(last=False)
        if wanted and prefetch is not None:
            prefetch(wanted)
        if prefetch_credit is not None:
            prefetch_credit(deciding)

    # --- the seam ----------------------------------------------------------------------

    def decide(self, case: OrderCase, trigger: Event) -> list[Output]:
        # The decision is made as of the latest event the case knows: an event that arrived
        # out of order (late, within the allowed lateness) must not date the decision
        # before events already folded into the features.
        now = max(trigger.occurred_at, case.last_event_at)
        features = build_features(case, self.context, now)
        with_prior = getattr(self.scorer, "score_with_prior", None)
        # The heuristic prior is the bandit's fixed offset (and the static rules' scorer).
        if with_prior is not None:
            # Scored with the model version of the decision's event time (replay determinism).
            scores, recover, prior_p, prior_rec = with_prior(features, now)
        else:
            scores, recover = self.scorer.score(features)
            if isinstance(self.scorer, HeuristicScorer):
                prior_p, prior_rec = scores.return_propensity, recover
            else:
                prior_p = self.prior.return_propensity(features)
                prior_rec = self.prior.recovery(features, scores.abuse_risk)
        if case.arm is None:
            case.arm = arm_of(case.order_id, self.policy.holdout_share, self.policy.holdout_salt)
        if case.first_propensity is None:
            case.first_propensity = round(scores.return_propensity, 4)
        point = _point(trigger.type)
        ctx = Context.of(
            point, case.lane, case.sku_family, case.support_reason(), case.customer_orders,
            case.campaign,
        )  # fmt: skip
        # Stamped on the decision where it is built (the versions and the case's labels).
        stamp = (self.policy.version, self.scorer.version, CaseLabels.of_case(case))
        decision = self._choose(
            case, trigger, now, features, scores, recover, point, ctx, prior_p, prior_rec, stamp
        )
        treated = case.arm == TREATMENT
        # Once the treatment arm acted, later points teach nothing: the truth of the case is
        # keyed on its first action.
        acted_before = treated and bool(case.actions)
        out: list[Output] = [("decision", decision.to_record())]
        if decision.action != NO_ACTION:
            case.record_action(now, decision.action)
            if treated:
                out.append(("intervention", self._intervention(decision, case, now).to_record()))
        if self.emit_examples and not acted_before:
            action = decision.action if treated and decision.action != NO_ACTION else None
            p_arm = prior_p if action is None else prior_p * (1.0 - prior_rec.get(action, 0.0))
            # Only points where the policy could act teach the bandit: "doing nothing" is
            # compared with the actions on the same kind of case (an exchange request, or a
            # point where nothing was eligible, says nothing about what an action would do).
            keys = (
                ctx.keys(decision.eligible, self.policy.segment_crosses)
                if decision.eligible or action is not None
                else ()
            )
            out.append(
                ("pending", Pending(
                    case.order_id, now, to_vector(features), scores.return_propensity,
                    action, case.arm or TREATMENT, point, case.example_points == 0,
                    keys, logit(p_arm), threading.get_ident(),
                ))
            )  # fmt: skip
            case.example_points += 1
        return out

    def on_close(self, case: OrderCase, outcome: dict[str, Any]) -> list[Output]:
        """Fold the closed case into the context aggregates and tell the learner how it
        ended (its pending examples are labelled at their horizon, not now)."""
        kind = outcome["outcome"]
        out: list[Output] = []
        if case.example_points and self.emit_examples:
            resolved_at = case.resolved_at or parse_ts(outcome["resolved_at"])
            out.append(
                ("resolution", Resolution(case.order_id, kind, resolved_at, threading.get_ident()))
            )
        if kind == Outcome.CENSORED:
            return out  # not an outcome yet: the aggregates learn only what ended
        self.context.record_outcome(
            {
                **outcome,
                "delayed": case.slip_hours(case.last_event_at) > 24 or case.delays > 0,
                "resolved_at_ts": case.resolved_at or case.last_event_at,
            }
        )
        return out

    # --- choosing ----------------------------------------------------------------------

    def _margin_at_risk(self, case: OrderCase) -> float:
        if case.lost or case.returned_to_sender:
            return case.order_value
        return case.margin

    def _credit(self, spec: ActionSpec, case: OrderCase, now: float) -> float:
        if spec.credit_share <= 0 or not case.customer_id:
            return 0.0
        room = self.policy.max_credit_per_customer_30d - self.ledger.used(case.customer_id, now)
        amount = min(spec.credit_share * case.order_value, self.policy.max_credit_per_order, room)
        return round(max(amount, 0.0), 2)

    @staticmethod
    def _recovery(recover: dict[str, float], spec: ActionSpec) -> float:
        """P(recovered | the action) from the scorer, or the policy's fixed
        ``base_recovery``. Neither: an error, never a silent 0 (an action missing from a
        scorer would otherwise never be chosen)."""
        p = recover.get(spec.name, spec.base_recovery)
        if p is None:
            raise KeyError(
                f"the scorer has no P(recovered) for {spec.name!r} and the policy sets no "
                "base_recovery for it: register the action in operators/actions.py"
            )
        return p

    def _blocked(self, spec: ActionSpec, case: OrderCase, now: float) -> str | None:
        for ts, action in reversed(case.actions):
            if action == spec.name and now - ts < spec.cooldown_hours * HOUR:
                return f"{spec.name} cooldown ({spec.cooldown_hours:g}h)"
        if spec.customer_facing:
            contacts = sum(1 for _, a in case.actions if a != HUMAN_REVIEW)
            if contacts >= self.policy.max_contacts_per_order:
                return f"contact limit ({self.policy.max_contacts_per_order} per order)"
        return None

    def _choose(
        self,
        case: OrderCase,
        trigger: Event,
        now: float,
        features: dict[str, float],
        scores: Scores,
        recover: dict[str, float],
        point: str,
        ctx: Context,
        prior_p: float,
        prior_rec: dict[str, float],
        stamp: tuple[str, str, CaseLabels],
    ) -> Decision:
        policy = self.policy
        arm = case.arm or TREATMENT
        p_refund = scores.return_propensity
        margin_at_risk = self._margin_at_risk(case)
        value = margin_at_risk + policy.customer_value_weight * scores.customer_value
        value_at_risk = round(case.order_value * p_refund, 2)
        reasons: list[str] = [f"P(refund)={p_refund:.2f}"]
        posterior = self._posterior()
        segment = ctx.segment if posterior is not None else None

        # Eligible and not blocked by cooldowns or the contact limit, before any threshold
        # (logged, so that baselines and off-policy estimates know what could be chosen).
        candidates: list[tuple[float, ActionSpec, str, float]] = []
        blocked: list[str] = []
        for spec in policy.actions.values():
            if spec.name == HUMAN_REVIEW:
                continue
            clause = None
            for c in spec.eligible:
                if c.holds(case, now):
                    clause = c
                    break
            if clause is None:
                continue
            why = self._blocked(spec, case, now)
            if why is not None:
                blocked.append(why)
                continue
            credit = self._credit(spec, case, now)
            p_rec = self._recovery(recover, spec)
            ev = p_refund * p_rec * value - spec.cost - credit
            candidates.append((ev, spec, clause.name, credit))
        eligible = tuple(sorted(c[1].name for c in candidates))

        def none(rule: str, *why: str, choice: Choice | None = None) -> Decision:
            return Decision(
                case.order_id, now, trigger.event_id, NO_ACTION, arm, True, rule,
                tuple(reasons + list(why)), scores, value_at_risk, 0.0, None,
                point, eligible, round(choice.propensity, 6) if choice else 1.0, segment,
                _probabilities(choice), *stamp,
            )  # fmt: skip

        # A learning policy's gate reads the heuristic prior, as the static rules do: the
        # learned return propensity is calibrated on average but not at every rare point,
        # and a gate it closes wrongly would stop the bandit from ever learning there.
        gate_p = prior_p if posterior is not None else p_refund
        if gate_p < policy.min_return_propensity:
            return none("below_propensity_threshold", f"below {policy.min_return_propensity:.2f}")

        best = max(candidates, key=lambda c: c[0]) if candidates else None
        abuse, abuse_reasons = abuse_risk(features)
        review = self._review_reasons(case, value_at_risk, abuse, abuse_reasons)
        if (
            review
            and HUMAN_REVIEW in policy.actions
            and case.order_value >= policy.automation.min_value_for_review
        ):
            # The automation boundary: deterministic, never explored.
            spec = policy.actions[HUMAN_REVIEW]
            why = self._blocked(spec, case, now)
            if why is not None:
                # A person already has this case: acting alone now would cross the boundary.
                return none("awaiting_review", *review, why)
            proposed = best[1].name if best else None
            saving = round(best[0], 2) if best else 0.0
            reasons.extend(review)
            if proposed:
                reasons.append(f"proposed {proposed}")
            return Decision(
                case.order_id, now, trigger.event_id, HUMAN_REVIEW, arm, False,
                "automation_boundary", tuple(reasons), scores, value_at_risk,
                saving, proposed, point, eligible, 1.0, segment, (), *stamp,
            )  # fmt: skip
        if best is None:
            return none("no_eligible_action", *blocked)

        # Seeded per order and trigger: a replay draws exactly the same.
        rng = random.Random(seed_of(case.order_id, trigger.event_id))
        by_name = {c[1].name: c for c in candidates}
        if posterior is not None:
            offsets = prior_offsets(prior_p, prior_rec, by_name)
            keys = ctx.keys(eligible, policy.segment_crosses)
            options = [Option(n, c[1].cost + c[3], value) for n, c in by_name.items()]
            if policy.choice == "thompson":
                choice = thompson_choice(
                    posterior, keys, offsets, options, policy.exploration, rng,
                    policy.min_expected_saving,
                )  # fmt: skip
            else:
                # The baseline is the static rules' choice: expected savings under the
                # heuristic prior, not under the learned scores.
                static_ev = {
                    n: prior_p * prior_rec.get(n, 0.0) * value - c[1].cost - c[3]
                    for n, c in by_name.items()
                }
                top = max(static_ev, key=static_ev.__getitem__)
                rule_choice = top if static_ev[top] >= policy.min_expected_saving else NO_ACTION
                choice = guarded_choice(
                    posterior, keys, offsets, options, policy.exploration, rng,
                    policy.min_expected_saving, rule_choice, policy.guard_confidence,
                )  # fmt: skip
            mean_saving = choice.mean_saving
            kind = "exploration" if choice.explored else f"learned ({policy.choice})"
        else:
            ev, spec, _, _ = best
            rule_choice = spec.name if ev >= policy.min_expected_saving else NO_ACTION
            choice = static_choice(rule_choice, [NO_ACTION, *by_name], policy.exploration, rng)
            mean_saving = by_name[choice.action][0] if choice.action in by_name else 0.0
            kind = "exploration" if choice.explored else "static rules"
            if choice.action == NO_ACTION and not choice.explored:
                return none(
                    "below_expected_saving", f"best {spec.name} saves {ev:.2f}", choice=choice
                )
        if choice.action == NO_ACTION:
            return none("exploration" if choice.explored else "learned_none", kind, choice=choice)
        _, spec, clause_name, credit = by_name[choice.action]
        reasons.append(kind)
        reasons.append(f"P(recovered|{spec.name})={recover.get(spec.name, 0.0):.2f}")
        reasons.append(f"margin at risk {margin_at_risk:.2f}")
        if credit:
            reasons.append(f"credit {credit:.2f}")
        return Decision(
            case.order_id, now, trigger.event_id, spec.name, arm, True,
            f"{spec.name}.{clause_name}", tuple(reasons), scores, value_at_risk,
            round(mean_saving, 2), None, point, eligible, round(choice.propensity, 6), segment,
            _probabilities(choice), *stamp,
        )  # fmt: skip

    def _posterior(self) -> BanditPosterior | None:
        """The bandit posterior to sample, or None for the static rules (a fixed scorer)."""
        if not getattr(self.scorer, "learns", False):
            return None
        posterior: BanditPosterior | None = getattr(self.scorer, "posterior", None)
        return posterior if posterior is not None else self.prior_posterior

    def _review_reasons(
        self, case: OrderCase, value_at_risk: float, abuse: float, abuse_reasons: list[str]
    ) -> list[str]:
        """Why the case must go to a human, if it must (the automation boundary)."""
        b = self.policy.automation
        if not (case.has_open_request() or case.stage == "at_risk"):
            return []
        out: list[str] = []
        if case.order_value * 1.0 > b.max_value_at_risk and case.has_open_request():
            out.append(f"value at risk {case.order_value:.2f} above {b.max_value_at_risk:g}")
        if abuse > b.max_abuse_risk and case.has_open_request():
            out.append(f"abuse risk {abuse:.2f}: " + "; ".join(abuse_reasons))
        if (
            b.review_conflicting_signals
            and case.delivered_at is not None
            and (case.lost or case.last_intent in ("where_is_my_order", "delivery_problem"))
            and case.has_open_request()
        ):
            out.append("conflicting signals: delivered, but reported not received")
        return out

    # --- records -----------------------------------------------------------------------

    def _intervention(self, d: Decision, case: OrderCase, now: float) -> Intervention:
        spec = self.policy.actions[d.action]
        iid = intervention_id(d.order_id, d.action, d.trigger_event_id, self.policy.version)
        offer = None
        proposed = self.policy.actions.get(d.proposed_action or "")
        credit_spec = spec if spec.credit_share > 0 else proposed
        if credit_spec is not None and credit_spec.credit_share > 0:
            credit = self._credit(credit_spec, case, now)
            if credit > 0 and d.automated and case.customer_id:
                cap = self.policy.max_credit_per_customer_30d
                # Keyed by the intervention id: a dispatcher that reserves the same grant
                # again (the caps check at dispatch) does not count it twice.
                credit = self.ledger.reserve(case.customer_id, now, credit, cap, grant_id=iid)
            if credit > 0:
                offer = Offer(credit, case.currency)
        message = None
        if spec.message_template is not None:
            send_after = None
            if self.policy.quiet_hours is not None and spec.customer_facing:
                send_after = self.policy.quiet_hours.send_after(now)
            text = message_text(
                spec, MessageFields.of_case(case), offer.to_record() if offer else None
            )
            message = CustomerMessage(spec.channel, d.action, text, send_after)
        review_hours = self.policy.review_expires_hours
        return Intervention(
            intervention_id=iid,
            decision=d,
            customer_id=case.customer_id,
            order_value=case.order_value,
            currency=case.currency,
            offer=offer,
            message=message,
            estimated_delivery_at=case.estimate_at or case.promised_at,
            review_expires_at=now + review_hours * HOUR if d.action == HUMAN_REVIEW else None,
        )


__all__ = [
    "CONTROL",
    "TREATMENT",
    "DecisionEngine",
]
