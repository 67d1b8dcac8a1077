"""Policy files: the shipped policies load, and every bad file fails with file, line and key.

The bad files live in ``tests/data/policies/``; each starts with a comment saying what is
wrong. Expected line numbers are found in the fixture text (the line of the offending key),
so a comment added to a fixture does not break the test.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from flows.cli import main
from operators.actions import action_names
from operators.case import OrderCase
from operators.contract import INTENTS
from operators.policy import (
    AutomationBoundary,
    Eligibility,
    PolicyError,
    RecoveryPolicy,
)
from operators.vocabulary import Covariance, SegmentCross

REPO = Path(__file__).resolve().parents[2]
FIXTURES = Path(__file__).resolve().parents[1] / "data" / "policies"
SHIPPED = REPO / "operators" / "policies"
ERROR = re.compile(r"^(?P<file>[^:]+):(?P<line>\d+): (?P<key>\S+): (?P<message>.+)$", re.S)


def line_of(path: Path, needle: str) -> int:
    """1-based number of the first line of ``path`` that contains ``needle``."""
    for number, text in enumerate(path.read_text(encoding="utf-8").splitlines(), start=1):
        if needle in text:
            return number
    raise AssertionError(f"{needle!r} not in {path}")


def load_error(path: Path) -> re.Match[str]:
    with pytest.raises(PolicyError) as info:
        RecoveryPolicy.load(path)
    message = str(info.value)
    match = ERROR.match(message)
    assert match is not None, f"error does not read FILE:LINE: KEY: MESSAGE: {message}"
    assert match["file"] == str(path)
    return match


# --- the shipped policies ------------------------------------------------------------------


@pytest.mark.parametrize("name", ["default", "conservative", "learning"])
def test_shipped_policies_load_with_every_action(name: str) -> None:
    policy = RecoveryPolicy.load(SHIPPED / f"{name}.yaml")
    assert name in policy.version
    assert set(policy.actions) == set(action_names())
    assert policy.actions["human_review"].eligible == ()  # reached through the boundary only
    assert not policy.actions["human_review"].customer_facing
    for spec in policy.actions.values():
        assert spec.cost >= 0
        if spec.name != "human_review":
            assert spec.eligible and spec.message_template and spec.customer_facing
    assert policy.quiet_hours is not None and policy.quiet_hours.timezone == "Europe/Berlin"
    assert (policy.quiet_hours.start_minute, policy.quiet_hours.end_minute) == (21 * 60, 8 * 60)
    assert 0 < policy.holdout_share < 1


def test_default_is_the_shipped_default_file() -> None:
    packaged = RecoveryPolicy.default()
    on_disk = RecoveryPolicy.load(SHIPPED / "default.yaml")
    assert packaged.version == on_disk.version
    assert packaged.actions == on_disk.actions
    assert packaged.automation == on_disk.automation


def test_conservative_sets_a_higher_bar_than_default() -> None:
    default = RecoveryPolicy.load(SHIPPED / "default.yaml")
    conservative = RecoveryPolicy.load(SHIPPED / "conservative.yaml")
    assert conservative.min_return_propensity > default.min_return_propensity
    assert conservative.automation.max_value_at_risk < default.automation.max_value_at_risk
    assert conservative.exploration == 0.0 < default.exploration


def test_learning_policy_widens_eligibility_and_keeps_the_default_limits() -> None:
    default = RecoveryPolicy.load(SHIPPED / "default.yaml")
    learning = RecoveryPolicy.load(SHIPPED / "learning.yaml")
    # The caps, the boundary and the holdout are the default's: only the room to choose differs.
    for key in ("holdout_share", "holdout_salt", "max_contacts_per_order", "max_credit_per_order",
                "max_credit_per_customer_30d", "cost_budget_share", "automation"):  # fmt: skip
        assert getattr(learning, key) == getattr(default, key), key
    # Every customer-facing action but the parcel credit may answer any open request, where
    # the default lets each request reason have one action at most.
    case = OrderCase("O-1", order_value=60.0, customer_id="C-1", promised_at=0.0)
    case.request_type, case.request_reason = "refund_requested", "changed_mind"
    for name in ("proactive_reassurance", "exchange_first_offer", "product_guidance"):
        spec = learning.actions[name]
        assert any(c.holds(case, 0.0) for c in spec.eligible), name
    eligible_default = [
        n for n, s in default.actions.items() if any(c.holds(case, 0.0) for c in s.eligible)
    ]
    assert len(eligible_default) <= 1
    assert default.guard_confidence is None  # the default's meaning is unchanged


def test_the_posterior_covariance_is_read_from_a_closed_vocabulary() -> None:
    base = 'version: "t"\nactions: {human_review: {cost: 1}}\n'
    assert RecoveryPolicy.from_text(base).covariance is Covariance.DIAGONAL
    full = RecoveryPolicy.from_text(base + "learning: {covariance: full}\n")
    assert full.covariance is Covariance.FULL
    with pytest.raises(PolicyError, match=r"learning\.covariance.*diagonal, full"):
        RecoveryPolicy.from_text(base + "learning: {covariance: dense}\n")


def test_segment_crosses_are_read_from_a_closed_vocabulary_in_its_order() -> None:
    base = 'version: "t"\nactions: {human_review: {cost: 1}}\n'
    assert RecoveryPolicy.from_text(base).segment_crosses == ()
    both = RecoveryPolicy.from_text(
        base + "learning: {segment_crosses: [point_x_eligible_set, point_x_lane]}\n"
    )
    assert both.segment_crosses == (SegmentCross.POINT_LANE, SegmentCross.POINT_ELIGIBLE_SET)
    with pytest.raises(PolicyError, match=r"learning\.segment_crosses.*unknown.*point_x_tier"):
        RecoveryPolicy.from_text(base + "learning: {segment_crosses: [point_x_tier]}\n")
    shipped = RecoveryPolicy.load(SHIPPED / "learning.yaml")
    assert shipped.segment_crosses == (SegmentCross.POINT_ELIGIBLE_SET,)
    assert RecoveryPolicy.default().segment_crosses == ()  # the default's keys are unchanged


def test_guard_confidence_is_read_and_bounded() -> None:
    text = 'version: "t"\nlearning: {guard_confidence: 0.8}\nactions: {human_review: {cost: 1}}\n'
    assert RecoveryPolicy.from_text(text).guard_confidence == 0.8
    with pytest.raises(PolicyError, match="guard_confidence"):
        RecoveryPolicy.from_text(text.replace("0.8", "0.2"))


def test_minimal_policy_takes_the_documented_defaults() -> None:
    policy = RecoveryPolicy.load(FIXTURES / "good_minimal.yaml")
    assert policy.version == "test-minimal.1"
    assert list(policy.actions) == ["proactive_reassurance"]
    spec = policy.actions["proactive_reassurance"]
    assert spec.cooldown_hours == 72.0 and spec.credit_share == 0.0
    assert spec.eligible == (Eligibility("late", min_slip_hours=48.0, delivered=False),)
    assert policy.quiet_hours is None
    assert policy.automation == AutomationBoundary()
    assert (policy.holdout_share, policy.min_return_propensity, policy.exploration) == (
        0.10,
        0.15,
        0.0,
    )
    assert (policy.max_contacts_per_order, policy.max_credit_per_order) == (2, 20.0)
    assert policy.source == str(FIXTURES / "good_minimal.yaml")


# --- errors name the file, the line and the key ---------------------------------------------


@pytest.mark.parametrize(
    ("fixture", "key", "needle", "message"),
    [
        (
            "bad_unknown_action.yaml",
            "actions.teleport_parcel",
            "teleport_parcel:",
            "unknown action",
        ),
        (
            "bad_unknown_key.yaml",
            "limits.max_credit_per_ordr",
            "max_credit_per_ordr:",
            "unknown key",
        ),
        ("bad_number.yaml", "actions.exchange_first_offer.cost", "cost: low", "must be a number"),
        (
            "bad_intent.yaml",
            "actions.proactive_reassurance.eligible[1].intents",
            "where_is_my_parcel",
            "unknown value(s) ['where_is_my_parcel']",
        ),
        ("bad_timezone.yaml", "quiet_hours.timezone", "Europe/Atlantis", "unknown time zone"),
        ("bad_quiet_time.yaml", "quiet_hours.end", '"25:00"', "must be a time like"),
    ],
)
def test_error_names_file_line_and_key(fixture: str, key: str, needle: str, message: str) -> None:
    path = FIXTURES / fixture
    match = load_error(path)
    assert match["key"] == key
    assert int(match["line"]) == line_of(path, needle)
    assert message in match["message"]


def test_duplicate_key_points_at_its_second_occurrence() -> None:
    path = FIXTURES / "bad_duplicate_key.yaml"
    first = line_of(path, "exchange_first_offer:")
    match = load_error(path)
    assert match["key"] == "actions.exchange_first_offer"
    assert int(match["line"]) == line_of(path, "exchange_first_offer:  # again")
    assert match["message"] == f"duplicate key (first at line {first})"


def test_missing_version_points_at_the_top_of_the_document() -> None:
    path = FIXTURES / "bad_missing_version.yaml"
    match = load_error(path)
    assert match["key"] == "version"
    assert match["message"] == "is required"
    assert int(match["line"]) == line_of(path, "actions:")  # the document's first line


def test_empty_file_is_an_error_at_line_one() -> None:
    path = FIXTURES / "bad_empty.yaml"
    with pytest.raises(PolicyError, match=rf"^{re.escape(str(path))}:1: the policy file is empty$"):
        RecoveryPolicy.load(path)


def test_invalid_yaml_names_the_line_the_parser_stopped_at() -> None:
    path = FIXTURES / "bad_yaml.yaml"
    with pytest.raises(PolicyError) as info:
        RecoveryPolicy.load(path)
    # The flow sequence opened on the `eligible:` line is still open at the next key.
    expected = line_of(path, "product_guidance:")
    assert str(info.value).startswith(f"{path}:{expected}: not valid YAML: ")


def test_unreadable_file_is_a_policy_error_naming_the_path(tmp_path: Path) -> None:
    missing = tmp_path / "nope.yaml"
    with pytest.raises(PolicyError, match=re.escape(f"{missing}: cannot read the policy file")):
        RecoveryPolicy.load(missing)


@pytest.mark.parametrize(
    ("snippet", "key", "message"),
    [
        (
            "actions: {proactive_reassurance: {cost: -1}}",
            "actions.proactive_reassurance.cost",
            ">= 0",
        ),
        (
            "actions: {proactive_reassurance: {cost: true}}",
            "actions.proactive_reassurance.cost",
            ">= 0",
        ),
        (
            "actions: {proactive_reassurance: {cost: .nan}}",
            "actions.proactive_reassurance.cost",
            ">= 0",
        ),
        (
            "actions: {proactive_reassurance: {}}",
            "actions.proactive_reassurance.cost",
            "is required",
        ),
        ("holdout: {share: 0.95}\nactions: {human_review: {cost: 1}}", "holdout.share", "[0, 0.9]"),
        (
            "limits: {max_contacts_per_order: 1.5}\nactions: {human_review: {cost: 1}}",
            "limits.max_contacts_per_order",
            "whole number",
        ),
        (
            "actions: {product_guidance: {cost: 1, eligible: {name: x}}}",
            "actions.product_guidance.eligible",
            "list of clauses",
        ),
        (
            "actions: {product_guidance: {cost: 1, eligible: [{min_contacts: 1}]}}",
            "actions.product_guidance.eligible[0].name",
            "is required",
        ),
        (
            "actions: {product_guidance: {cost: 1, eligible: [{name: x, max_sentiment: -2}]}}",
            "actions.product_guidance.eligible[0].max_sentiment",
            "[-1, 1]",
        ),
        (
            "automation: {review_conflicting_signals: maybe}\nactions: {human_review: {cost: 1}}",
            "automation.review_conflicting_signals",
            "true or false",
        ),
        ("actions: []", "actions", "at least one action"),
    ],
)
def test_bad_values_in_text_name_line_and_key(snippet: str, key: str, message: str) -> None:
    text = 'version: "t"\n' + snippet + "\n"
    with pytest.raises(PolicyError) as info:
        RecoveryPolicy.from_text(text, "inline.yaml")
    match = ERROR.match(str(info.value))
    assert match is not None, str(info.value)
    assert (match["file"], match["key"]) == ("inline.yaml", key)
    assert int(match["line"]) == 2  # the snippet's first line holds every offending key
    assert message in match["message"]


def test_quiet_hours_may_be_written_without_quotes() -> None:
    # YAML 1.1 reads an unquoted 21:00 as the base-60 number 1260; the policy means 21:00.
    policy = RecoveryPolicy.from_text(
        'version: "t"\nquiet_hours: {start: 21:00, end: 07:30, timezone: UTC}\n'
        "actions: {human_review: {cost: 1}}\n"
    )
    assert policy.quiet_hours is not None
    assert (policy.quiet_hours.start_minute, policy.quiet_hours.end_minute) == (1260, 450)


def test_every_contract_intent_is_accepted_in_a_clause() -> None:
    intents = ", ".join(sorted(INTENTS))
    policy = RecoveryPolicy.from_text(
        f'version: "t"\nactions: {{product_guidance: {{cost: 1, eligible: '
        f"[{{name: any, intents: [{intents}]}}]}}}}\n"
    )
    assert policy.actions["product_guidance"].eligible[0].intents == INTENTS


def test_policy_check_command_exits_2_with_the_located_error(capsys) -> None:
    path = FIXTURES / "bad_number.yaml"
    assert main(["policy", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert f"{path}:{line_of(path, 'cost: low')}: actions.exchange_first_offer.cost:" in err
    assert main(["policy", "check", str(SHIPPED / "conservative.yaml")]) == 0
    assert "is valid" in capsys.readouterr().out


# --- eligibility: AND within a clause, OR across clauses -------------------------------------


def _case(**fields: object) -> OrderCase:
    case = OrderCase("o-1", placed=True, order_value=80.0, promised_at=0.0)
    for name, value in fields.items():
        setattr(case, name, value)
    return case


def test_a_clause_holds_only_when_all_its_conditions_hold() -> None:
    clause = Eligibility(
        "late_and_asked", min_slip_hours=24.0, delivered=False, intents=frozenset({"size_fit"})
    )
    hour = 3600.0
    assert clause.holds(_case(last_intent="size_fit"), 30 * hour)
    assert not clause.holds(_case(last_intent="size_fit"), 20 * hour)  # not late enough
    assert not clause.holds(_case(last_intent="other"), 30 * hour)  # wrong intent
    assert not clause.holds(_case(last_intent="size_fit", delivered_at=hour), 30 * hour)


def test_an_action_is_eligible_when_any_clause_holds() -> None:
    policy = RecoveryPolicy.default()
    spec = policy.actions["exchange_first_offer"]
    by_contact = _case(last_intent="size_fit")
    by_request = _case(request_type="return_requested", request_reason="size_fit")
    withdrawn = _case(
        request_type="return_requested", request_reason="size_fit", request_withdrawn=True
    )
    held = {
        name: [c.name for c in spec.eligible if c.holds(case, 0.0)]
        for name, case in (("contact", by_contact), ("request", by_request), ("off", withdrawn))
    }
    assert held == {"contact": ["size_fit_contact"], "request": ["size_fit_request"], "off": []}


# --- hostile documents ---------------------------------------------------------------------


def _laughs(levels: int) -> str:
    """A small file whose nested aliases stand for 9**levels values."""
    lines = [
        "version: 1",
        'x0: &x0 ["lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol", "lol"]',
    ]
    for i in range(1, levels + 1):
        refs = ", ".join([f"*x{i - 1}"] * 9)
        lines.append(f"x{i}: &x{i} [{refs}]")
    return "\n".join(lines) + "\n"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (_laughs(9), "expands to more than"),  # 4 KB standing for 387 million strings
        ("version: 1\nx: &a [*a]\n", "refers to itself"),
        ("version: 1\nx: " + "[" * 5000 + "]" * 5000 + "\n", "nested too deeply"),
        ("version: 1\nx: !!python/object:os.system ls\n", "not valid YAML"),
    ],
    ids=["billion-laughs", "self-alias", "deep", "python-tag"],
)
def test_hostile_documents_are_refused_with_a_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], text: str, message: str
) -> None:
    path = tmp_path / "hostile.yaml"
    path.write_text(text)
    assert len(text) < 50_000
    with pytest.raises(PolicyError, match=message) as info:
        RecoveryPolicy.load(path)
    assert str(info.value).startswith(f"{path}:")
    assert main(["policy", "check", str(path)]) == 2
    assert message in capsys.readouterr().err
