"""Offers negotiators build: the engine's figures, the policy's refusals, role limits,
approval, expiry, and the terms computed again at confirmation."""

from __future__ import annotations

import copy
from dataclasses import replace
from datetime import date, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from bot.domain.negotiation import AccountPosition, Circumstances
from bot.domain.policy import DEFAULT_POLICY_PATH, PolicyError, parse_policy
from bot.domain.staff_offers import (
    OfferTerms,
    Refusal,
    StaffOffer,
    approval_refusal,
    build_staff_offer,
    expires_at,
    is_expired,
    limits_exceeded,
    recompute,
)

D = Decimal
BUNDLED: dict[str, Any] = yaml.safe_load(DEFAULT_POLICY_PATH.read_text(encoding="utf-8"))
POLICY = parse_policy(BUNDLED)
TODAY = date(2026, 12, 3)
FIRST_DUE = date(2026, 12, 20)
#: 王芳's card (bot/store/seed.py): two broken plans, beyond the assistant's authority.
WANG_FANG = AccountPosition(
    3, "credit_card", D("150000.00"), D("31500.00"), D("4200.00"), 210, broken_plans=2
)
#: Enough to afford 4000.00 a month (0.70 of 6000 - 300 of other debts ... see below).
COMFORTABLE = Circumstances(D("9000.00"), D("3000.00"), D("0.00"))
NOTE = "收入下降，亲属每月资助"
NEGOTIATOR = POLICY.staff_authority.roles["negotiator"]
SUPERVISOR = POLICY.staff_authority.roles["supervisor"]


def build(
    role: str = "negotiator",
    account: AccountPosition = WANG_FANG,
    circumstances: Circumstances | None = COMFORTABLE,
    **terms: Any,
) -> StaffOffer | Refusal:
    values: dict[str, Any] = {"plan": "personalized_installment", "first_due": FIRST_DUE}
    values.update(terms)
    return build_staff_offer(OfferTerms(**values), account, circumstances, role, TODAY, POLICY)


def built(**values: Any) -> StaffOffer:
    result = build(**values)
    assert isinstance(result, StaffOffer), result
    return result


# --- the engine's figures -------------------------------------------------------------------


def test_an_installment_offer_has_exact_cents_and_art_70_terms() -> None:
    result = built(months=48, waiver=D("4200.00"))
    offer = result.offer
    assert offer.total_payable == D("181500.00")
    assert offer.amount_waived == D("4200.00")
    assert offer.months == 48 and offer.monthly_amount == D("3781.25")
    assert sum(item.amount for item in offer.schedule) == offer.total_payable
    assert offer.first_due == FIRST_DUE and offer.last_due == date(2030, 11, 20)
    assert offer.interest_stops and not offer.one_off
    # Fees are waived first: no interest waived, within a negotiator's limits except the term.
    assert result.interest_waived == D("0") and result.interest_waiver_share == D("0")
    assert result.beyond == ("months",)


def test_a_monthly_amount_gives_the_shortest_term_that_fits() -> None:
    offer = built(monthly_amount=D("3900.00")).offer
    assert offer.months == 48 and offer.monthly_amount <= D("3900.00")
    assert built(months=48, monthly_amount=offer.monthly_amount).offer == offer


def test_a_lump_sum_settlement_is_one_payment_by_the_date() -> None:
    rich = replace(COMFORTABLE, available_funds=D("200000.00"))
    offer = built(plan="lump_sum_settlement", waiver=D("10000.00"), circumstances=rich).offer
    assert offer.one_off and offer.months == 1 and offer.total_payable == D("175700.00")
    assert [(i.due_date, i.amount) for i in offer.schedule] == [(FIRST_DUE, D("175700.00"))]


@given(
    months=st.integers(min_value=3, max_value=36),
    waiver_cents=st.integers(min_value=0, max_value=420000),
)
def test_every_schedule_sums_to_its_total_and_never_exceeds_its_monthly(
    months: int, waiver_cents: int
) -> None:
    result = build(months=months, waiver=D(waiver_cents) / 100, note=NOTE)
    assert isinstance(result, StaffOffer)
    offer = result.offer
    assert sum(i.amount for i in offer.schedule) == offer.total_payable
    assert offer.total_payable + offer.amount_waived == WANG_FANG.overdue_total
    assert max(i.amount for i in offer.schedule) == offer.monthly_amount
    assert min(i.amount for i in offer.schedule) >= offer.monthly_amount - D("0.01")
    assert all(i.amount == i.amount.quantize(D("0.01")) for i in offer.schedule)


# --- the policy's refusals ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("terms", "reason"),
    [
        ({"months": 61}, "term_too_long"),
        ({"months": 2}, "term_too_short"),
        ({"months": 36, "waiver": D("35700.01")}, "waiver_of_principal"),
        ({"months": 36, "waiver": D("1.001")}, "not_cents"),
        ({"months": 36, "waiver": D("-1.00")}, "not_cents"),
        ({"months": 36, "monthly_amount": D("1.00")}, "monthly_mismatch"),
        ({}, "months_or_monthly"),
        ({"months": 36, "first_due": TODAY - timedelta(days=1)}, "first_due_past"),
        ({"months": 36, "first_due": TODAY + timedelta(days=61)}, "first_due_too_far"),
        ({"plan": "loan_extension", "months": 12}, "plan_not_allowed"),
        ({"plan": "fee_waiver", "waiver": D("4200.01")}, "waiver_beyond_fees"),
        ({"plan": "promise_to_pay", "waiver": D("1.00")}, "waiver_not_allowed"),
        ({"plan": "lump_sum_settlement", "months": 3}, "one_off_single_payment"),
    ],
)
def test_terms_that_break_the_policy_are_refused_with_the_reason(
    terms: dict[str, Any], reason: str
) -> None:
    result = build(role="supervisor", **terms)
    assert isinstance(result, Refusal) and result.reason == reason


def test_beyond_every_roles_limits_an_offer_cannot_be_built() -> None:
    costly = replace(WANG_FANG, interest=D("150000.00"))
    assert build(
        role="supervisor", account=costly, months=60, waiver=D("100000.01"), note=NOTE
    ) == (Refusal("beyond_all_authority"))


def test_a_card_plan_is_not_offered_on_a_loan() -> None:
    loan = replace(WANG_FANG, product="mortgage")
    assert build(months=36, account=loan) == Refusal("product")


def test_more_than_the_circumstances_allow_needs_a_note() -> None:
    tight = Circumstances(D("6000.00"), D("3000.00"))  # 2100.00 a month at 0.70
    refused = build(months=36, circumstances=tight)
    assert refused == Refusal("unaffordable_without_note", {"monthly": "2100.00"})
    assert isinstance(build(months=36, circumstances=tight, note=NOTE), StaffOffer)
    # Circumstances not complete: the negotiator says why the amount is right.
    assert build(months=36, circumstances=None) == Refusal("unaffordable_without_note")
    assert built(months=36, circumstances=None, note=NOTE).affordable_monthly is None


# --- role limits ----------------------------------------------------------------------------


#: 王芳's card without fees: a waiver is all interest.
NO_FEES = replace(WANG_FANG, penalty_fees=D("0.00"))


def _interest_waiver(share: Decimal) -> dict[str, Any]:
    """Terms waiving `share` of the interest of a card without fees."""
    return {"waiver": (NO_FEES.interest * share).quantize(D("0.01")), "account": NO_FEES}


@pytest.mark.parametrize(
    ("role", "terms", "beyond"),
    [
        ("negotiator", {"months": 36}, ()),
        ("negotiator", {"months": 37}, ("months",)),
        ("negotiator", {"months": 36, "waiver": D("10000.00")}, ()),
        ("negotiator", {"months": 36, "waiver": D("10000.01")}, ("waiver",)),
        ("negotiator", {"months": 36, **_interest_waiver(D("0.30"))}, ()),
        ("negotiator", {"months": 36, **_interest_waiver(D("0.31"))}, ("interest_share",)),
        ("supervisor", {"months": 60, "waiver": D("35700.00")}, ()),
        ("supervisor", {"months": 37, "waiver": D("20000.01")}, ()),
    ],
)
def test_each_limit_of_each_role(role: str, terms: dict[str, Any], beyond: tuple[str, ...]) -> None:
    policy = POLICY
    if role == "supervisor":
        # The bundled supervisor may waive all interest: tighten it to test each limit.
        data = copy.deepcopy(BUNDLED)
        data["staff_authority"]["roles"]["supervisor"]["max_waiver"] = "40000.00"
        policy = parse_policy(data)
    account = terms.pop("account", WANG_FANG)
    result = build_staff_offer(
        OfferTerms("personalized_installment", FIRST_DUE, note=NOTE, **terms),
        account,
        COMFORTABLE,
        role,
        TODAY,
        policy,
    )
    assert isinstance(result, StaffOffer), result
    assert result.beyond == beyond
    assert result.needs_approval == bool(beyond)


def test_limits_exceeded_names_each_limit_once() -> None:
    assert limits_exceeded(D("10000.00"), 36, D("0.30"), NEGOTIATOR) == ()
    assert limits_exceeded(D("10000.01"), 37, D("0.3001"), NEGOTIATOR) == (
        "waiver",
        "months",
        "interest_share",
    )
    assert limits_exceeded(D("100000.01"), 60, D("1"), SUPERVISOR) == ("waiver",)


def _approval(approver_id: int, role: str, **figures: Any) -> str | None:
    values: dict[str, Any] = {"waiver": D("25000.00"), "months": 48, "interest_share": D("0.6")}
    values.update(figures)
    return approval_refusal(
        approver_id=approver_id, approver_role=role, builder_id=7, policy=POLICY, **values
    )


def test_a_supervisor_approves_a_colleagues_offer_within_their_limits() -> None:
    assert _approval(8, "supervisor") is None


def test_nobody_approves_their_own_offer_beyond_their_limits() -> None:
    assert _approval(7, "supervisor") == "own_offer"


def test_a_negotiator_approves_nothing() -> None:
    assert _approval(8, "negotiator") == "not_supervisor"


def test_a_supervisor_does_not_approve_beyond_their_own_limits() -> None:
    assert _approval(8, "supervisor", waiver=D("100000.01")) == "beyond_approver_limits"


# --- expiry and confirmation ----------------------------------------------------------------


def test_an_offer_expires_after_the_policy_days() -> None:
    sent = datetime(2026, 12, 3, 2, 0, tzinfo=timezone.utc)
    days = POLICY.staff_authority.offer_expiry_days
    assert expires_at(sent, POLICY) == sent + timedelta(days=days)
    assert not is_expired(sent, sent + timedelta(days=days) - timedelta(seconds=1), POLICY)
    assert is_expired(sent, sent + timedelta(days=days), POLICY)


def test_confirmation_recomputes_on_the_current_balances() -> None:
    shown = built(months=48, waiver=D("4200.00")).offer
    terms = OfferTerms("personalized_installment", FIRST_DUE, months=48, waiver=D("4200.00"))
    # Unchanged balances: the same terms, cent for cent.
    assert recompute(terms, WANG_FANG, COMFORTABLE, TODAY, POLICY) == shown
    # The debtor paid 1000.00 meanwhile: other figures, so what was shown is not recorded.
    paid = replace(WANG_FANG, overdue_principal=D("149000.00"))
    current = recompute(terms, paid, COMFORTABLE, TODAY, POLICY)
    assert current is not None and current.total_payable == D("180500.00")
    assert current.to_dict() != shown.to_dict()
    # The fees were waived by the bank meanwhile: the waiver now reaches principal.
    no_fees = replace(WANG_FANG, penalty_fees=D("0.00"), interest=D("4000.00"))
    assert recompute(terms, no_fees, COMFORTABLE, TODAY, POLICY) is None
    # The first due date has passed: no longer allowed.
    assert recompute(terms, WANG_FANG, COMFORTABLE, FIRST_DUE + timedelta(days=1), POLICY) is None


def test_terms_survive_their_stored_form() -> None:
    terms = OfferTerms("personalized_installment", FIRST_DUE, 48, D("3781.25"), D("4200.00"), NOTE)
    assert OfferTerms.from_dict(terms.to_dict()) == terms


# --- the policy settings --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda a: a["roles"]["negotiator"].update(max_months=61), "max_months"),
        (lambda a: a["roles"]["negotiator"].update(max_waiver=0.5), "max_waiver"),
        (lambda a: a["roles"]["negotiator"].update(max_interest_waiver_share="1.5"), "share"),
        (lambda a: a["roles"]["negotiator"].update(max_waiver="200000.00"), "at least"),
        (lambda a: a["roles"].pop("supervisor"), "exactly negotiator, supervisor"),
        (lambda a: a.update(plans=["loan_extension"]), "plans"),
        (lambda a: a.update(offer_expiry_days=0), "offer_expiry_days"),
        (lambda a: a.update(max_first_due_days="soon"), "max_first_due_days"),
        (lambda a: a["roles"]["supervisor"].update(extra=1), "extra"),
    ],
)
def test_a_bad_staff_authority_setting_is_refused(change: Any, message: str) -> None:
    data = copy.deepcopy(BUNDLED)
    change(data["staff_authority"])
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, "p.yml")
    assert "staff_authority" in str(caught.value) and message in str(caught.value)


def test_the_bundled_staff_authority() -> None:
    authority = POLICY.staff_authority
    assert authority.offer_expiry_days == 7 and authority.max_first_due_days == 60
    assert (NEGOTIATOR.max_waiver, NEGOTIATOR.max_months) == (D("10000.00"), 36)
    assert NEGOTIATOR.max_interest_waiver_share == D("0.30")
    assert (SUPERVISOR.max_waiver, SUPERVISOR.max_months) == (D("100000.00"), 60)
