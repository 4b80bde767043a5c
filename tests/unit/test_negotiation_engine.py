"""The negotiation engine: invariants over generated accounts, and the demo debtors' figures."""

from __future__ import annotations

import calendar
import functools
import json
import os
from dataclasses import dataclass
from datetime import date, timedelta
from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

import pytest
from hypothesis import assume, example, given, settings
from hypothesis import strategies as st

from bot.domain.negotiation import (
    LOANS,
    AccountPosition,
    Assessment,
    Circumstances,
    Ineligible,
    Installment,
    Offer,
    add_months,
    affordable_monthly,
    assess,
    check_promise,
    check_promise_in_parts,
    counter_offer,
    split_evenly,
)
from bot.domain.policy import DEFAULT_POLICY_PATH, LEGAL_MAX_MONTHS, PRODUCTS, Policy, load_policy
from bot.store.seed import DEMO_DEBTORS

D = Decimal
CENT = D("0.01")
ZERO = D("0.00")
POLICY: Policy = load_policy(DEFAULT_POLICY_PATH)
TODAY = date(2026, 11, 28)
PROPERTY = settings(max_examples=int(os.environ.get("ENGINE_EXAMPLES", 200)), deadline=None)
#: For the simpler properties, or those only a part of the cases exercise.
QUICK = settings(max_examples=int(os.environ.get("ENGINE_EXAMPLES", 200)) // 2, deadline=None)
INCOME_CAP = D("200000.00")

# --- strategies ---------------------------------------------------------------------------

# Every strategy is built once and shared by all draws: a strategy built inside a draw
# is validated again for each example, which costs more than the example itself. An
# amount that depends on one drawn before is drawn as a `Share` and resolved after.


@functools.cache
def money(max_yuan: int) -> st.SearchStrategy[Decimal]:
    """Whole cents from 0.00 to `max_yuan`.00, two decimals, as often large as small."""
    top = max_yuan * 100
    digits = st.sampled_from(range(1, len(str(top)) + 1))
    return digits.flatmap(
        lambda n: st.integers(10 ** (n - 1) if n > 1 else 0, min(10**n - 1, top))
    ).map(lambda n: D(n) * CENT)


def share_of(amount: Decimal, percent: int) -> Decimal:
    return (amount * percent / 100).quantize(CENT, ROUND_DOWN)


@dataclass(frozen=True)
class Share:
    """`percent` % of an amount drawn before, made money by `resolve`."""

    percent: int


@functools.cache
def shares(low: int, high: int) -> st.SearchStrategy[Share]:
    """From `low` to `high` percent of an amount drawn before."""
    return st.integers(low, high).map(Share)


def resolve(drawn: Decimal | Share, amount: Decimal) -> Decimal:
    """`drawn` itself, or the share of `amount` it stands for."""
    return share_of(amount, drawn.percent) if isinstance(drawn, Share) else drawn


#: A loan's installment: any amount, or a share of the overdue principal (missed months).
INSTALLMENTS = money(50_000) | shares(5, 100)
#: Recent, a few months, or long overdue: each plan's threshold gets crossed.
DAYS_PAST_DUE = st.integers(0, 40) | st.integers(0, 200) | st.integers(0, 1000)
BROKEN_PLANS = st.integers(0, 1) | st.integers(0, 4)


@functools.cache
def products_of(products: tuple[str, ...]) -> st.SearchStrategy[str]:
    return st.sampled_from(products)


@st.composite
def accounts(
    draw: st.DrawFn,
    broken_plans: st.SearchStrategy[int] | None = None,
    products: tuple[str, ...] = PRODUCTS,
) -> AccountPosition:
    """Any product, any overdue amounts; loans have a regular installment."""
    product = draw(products_of(products))
    principal = draw(money(2_000_000))
    return AccountPosition(
        account_id=draw(st.integers(1, 10**6)),
        product=product,
        overdue_principal=principal,
        interest=draw(money(500_000)),
        penalty_fees=draw(money(100_000)),
        days_past_due=draw(DAYS_PAST_DUE),
        outstanding_principal=principal + draw(money(2_000_000)),
        installment_amount=(
            None if product == "credit_card" else resolve(draw(INSTALLMENTS), principal)
        ),
        missed_installments=draw(st.integers(0, 24)),
        broken_plans=draw(broken_plans if broken_plans is not None else BROKEN_PLANS),
    )


#: An income unrelated to the debt; or, in proportion to it, 1 % to 200 % of it a month.
INCOMES = money(200_000)
INCOMES_IN_PROPORTION = INCOMES | shares(1, 200)
#: Expenses and other repayments either unrelated to the income or a share of it.
EXPENSES = shares(0, 120) | money(200_000)
OTHER_REPAYMENTS = st.just(ZERO) | shares(0, 50) | money(50_000)
#: What the debtor offers a month, often nothing: a share of the room left, or any amount.
PROPOSED = st.none() | st.none() | (shares(0, 150) | money(200_000))
#: Funds at hand: none, any, or in proportion to the debt (50 % to 150 % of it).
FUNDS = st.just(ZERO) | money(2_000_000)
FUNDS_IN_PROPORTION = FUNDS | shares(50, 150)
HARDSHIP_REASONS = st.sampled_from(["unemployment", "illness", "business", "other"])
TEMPORARY_MONTHS = st.integers(1, 12)
HARDSHIP_MONTHS = st.none() | st.integers(1, 120)


@st.composite
def circumstances(
    draw: st.DrawFn, owed: Decimal | None = None, temporary: bool = False
) -> Circumstances:
    """Monthly finances as a debtor might state them, hardship length and offers included.

    With `owed`, the income and the funds at hand are often in proportion to it, so that
    every plan gets tried; `temporary` hardships last 1 to 12 months.
    """
    drawn_income = draw(INCOMES if owed is None else INCOMES_IN_PROPORTION)
    if isinstance(drawn_income, Share):
        # Up to 200000.00 whatever the debt.
        income = min(share_of(owed or ZERO, drawn_income.percent), INCOME_CAP)
    else:
        income = drawn_income
    expenses = resolve(draw(EXPENSES), income)
    others = resolve(draw(OTHER_REPAYMENTS), income)
    room = max(income - expenses - others, ZERO)
    reason = draw(HARDSHIP_REASONS)
    months = draw(TEMPORARY_MONTHS if temporary else HARDSHIP_MONTHS)
    proposed = draw(PROPOSED)
    funds = draw(FUNDS if owed is None else FUNDS_IN_PROPORTION)
    return Circumstances(
        monthly_income=income,
        monthly_expenses=expenses,
        other_repayments=others,
        hardship_reason=reason,
        hardship_months=months,
        proposed_monthly=None if proposed is None else resolve(proposed, room),
        available_funds=resolve(funds, owed or ZERO),
    )


@st.composite
def cases(
    draw: st.DrawFn,
    broken_plans: st.SearchStrategy[int] | None = None,
    products: tuple[str, ...] = PRODUCTS,
    temporary: bool = False,
) -> tuple[AccountPosition, Circumstances]:
    """An account and the finances of its debtor."""
    account = draw(accounts(broken_plans, products))
    return account, draw(circumstances(account.overdue_total, temporary))


#: Loans whose debtors expect their hardship to end within a year: loan extensions.
loan_cases = cases(broken_plans=st.integers(0, 1), products=LOANS, temporary=True)
#: Credit cards of debtors who have kept their plans: installment plans and settlements.
card_cases = cases(broken_plans=st.integers(0, 1), products=("credit_card",))
#: Anything, with every plan's cases well represented.
any_case = cases() | card_cases | loan_cases


days = st.dates(date(2020, 1, 1), date(2035, 12, 31))

# --- helpers ------------------------------------------------------------------------------


def cents_up(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_CEILING)


def has_two_decimals(amount: Decimal) -> bool:
    return amount.as_tuple().exponent == -2


def plans(assessment: Assessment) -> list[str]:
    return [offer.plan for offer in assessment.offers]


def reasons(assessment: Assessment) -> dict[str, str]:
    return {item.plan: item.reason for item in assessment.ineligible}


def position(index: int) -> AccountPosition:
    """The first account of demo debtor `index` (0 张伟 … 4 陈静) as the engine sees it."""
    record = DEMO_DEBTORS[index].accounts[0]
    return AccountPosition(
        account_id=index + 1,
        product=record.product,
        overdue_principal=record.overdue_principal,
        interest=record.interest,
        penalty_fees=record.penalty_fees,
        days_past_due=record.days_past_due,
        currency=record.currency,
        outstanding_principal=record.outstanding_principal,
        installment_amount=record.installment_amount,
        missed_installments=record.missed_installments,
        broken_plans=record.broken_plans,
    )


def check_schedule(offer: Offer) -> None:
    """Everything every offer's schedule must satisfy, whatever the plan."""
    assert 1 <= offer.months <= LEGAL_MAX_MONTHS
    assert len(offer.schedule) == offer.months
    assert [item.number for item in offer.schedule] == list(range(1, offer.months + 1))
    assert [item.due_date for item in offer.schedule] == [
        add_months(offer.first_due, i) for i in range(offer.months)
    ]
    dues = [item.due_date for item in offer.schedule]
    assert all(earlier < later for earlier, later in zip(dues, dues[1:], strict=False))
    assert (offer.schedule[0].due_date, offer.schedule[-1].due_date) == (
        offer.first_due,
        offer.last_due,
    )
    amounts = [item.amount for item in offer.schedule]
    assert all(has_two_decimals(amount) for amount in amounts)
    assert has_two_decimals(offer.total_payable)
    assert has_two_decimals(offer.amount_waived)
    assert sum(amounts, ZERO) == offer.total_payable
    assert offer.monthly_amount == max(amounts)
    assert max(amounts) - min(amounts) <= CENT
    # The larger installments come first.
    assert amounts == sorted(amounts, reverse=True)
    assert offer.one_off == (offer.plan in ("fee_waiver", "lump_sum_settlement", "promise_to_pay"))
    if offer.one_off:
        assert offer.months == 1


def max_months(plan: str, policy: Policy) -> int:
    """The longest term `policy` allows for `plan`."""
    if plan == "personalized_installment":
        return min(
            policy.personalized_installment.max_months,
            policy.authority.max_term_months,
            LEGAL_MAX_MONTHS,
        )
    if plan == "loan_extension":
        return policy.loan_extension.max_repayment_months
    return 1


def check_assessment(
    assessment: Assessment,
    account: AccountPosition,
    situation: Circumstances,
    today: date,
    policy: Policy,
) -> None:
    """The invariants of every assessment (affordability, schedules, principal, ranking)."""
    limit = affordable_monthly(situation, policy)
    ceiling = max(situation.disposable_income, ZERO) * policy.affordability.ratio
    assert assessment.affordable_monthly == limit
    assert ZERO <= limit <= ceiling
    if situation.proposed_monthly is not None:
        assert limit <= situation.proposed_monthly
    assert assessment.account == account
    for offer in assessment.offers:
        check_schedule(offer)
        assert offer.months <= max_months(offer.plan, policy)
        # A pause counts towards the term: the whole plan stays within the authority.
        assert offer.deferral_months + offer.months <= policy.authority.max_term_months
        assert (offer.account_id, offer.currency) == (account.account_id, account.currency)
        assert offer.first_due > today
        if offer.one_off:
            assert offer.total_payable <= limit + situation.available_funds
        else:
            assert offer.monthly_amount + offer.concurrent_monthly <= limit
        # Only interest and fees are ever waived, never principal.
        assert offer.total_payable + offer.amount_waived == account.overdue_total
        assert offer.total_payable >= account.overdue_principal
        assert ZERO <= offer.amount_waived <= account.interest + account.penalty_fees
    ranks = [policy.rank(offer.plan) for offer in assessment.offers]
    assert ranks == sorted(set(ranks))
    assert len(assessment.offers) <= policy.max_offers
    if account.overdue_total <= ZERO:
        assert assessment.offers == () and assessment.proposal is None
        assert {i.reason for i in assessment.ineligible} == {"nothing_overdue"}
    elif not assessment.offers:
        assert assessment.proposal is not None
    else:
        assert assessment.proposal is None
    if account.overdue_total > ZERO and account.broken_plans > policy.authority.max_broken_plans:
        assert assessment.offers == ()
        assert assessment.proposal is not None
        assert assessment.proposal.reason == "broken_plans"


def check_terms(
    offer: Offer, account: AccountPosition, situation: Circumstances, today: date
) -> None:
    """Each plan's own terms, straight from the bundled policy's figures."""
    first_due = today + timedelta(days=POLICY.schedule.first_due_days)
    if offer.plan == "personalized_installment":
        assert account.product == "credit_card"
        assert offer.first_due == first_due
        assert offer.interest_stops is True
        assert (offer.deferral_months, offer.concurrent_monthly) == (0, ZERO)
        assert offer.amount_waived == ZERO  # fee_waiver_share "0"
        assert offer.months >= POLICY.personalized_installment.min_months
    elif offer.plan == "loan_extension":
        assert account.product in ("consumer_loan", "car_loan", "mortgage")
        assert situation.hardship_months is not None and situation.hardship_months <= 12
        deferral = min(situation.hardship_months, 6)
        assert offer.deferral_months == deferral
        assert offer.first_due == add_months(first_due, deferral)
        assert offer.concurrent_monthly == (account.installment_amount or ZERO)
        assert offer.amount_waived == ZERO
        assert offer.interest_stops is False
    elif offer.plan == "fee_waiver":
        assert account.penalty_fees >= D("1.00")
        assert offer.amount_waived == (account.penalty_fees / 2).quantize(CENT, ROUND_DOWN)
        assert offer.first_due == today + timedelta(days=30)
    elif offer.plan == "lump_sum_settlement":
        assert account.product in ("credit_card", "consumer_loan")
        assert account.days_past_due >= 90
        half_interest = (account.interest / 2).quantize(CENT, ROUND_DOWN)
        assert offer.amount_waived == half_interest + account.penalty_fees
        assert offer.first_due == today + timedelta(days=30)
    else:
        assert offer.plan == "promise_to_pay"
        assert account.days_past_due <= 30
        assert account.overdue_total <= D("5000.00")
        assert offer.amount_waived == ZERO
        assert offer.first_due == today + timedelta(days=30)


# --- properties of assess -----------------------------------------------------------------


Case = tuple[AccountPosition, Circumstances]


@PROPERTY
@given(any_case, days)
def test_every_assessment_keeps_the_invariants(case: Case, today: date) -> None:
    """Affordability, exact schedules, principal kept, ranking, proposals: for any case."""
    account, situation = case
    check_assessment(assess(account, situation, today, POLICY), account, situation, today, POLICY)


@QUICK
@given(loan_cases, days)
def test_every_loan_assessment_keeps_the_invariants(case: Case, today: date) -> None:
    """The same for loans in a temporary hardship, where loan extensions are offered."""
    account, situation = case
    check_assessment(assess(account, situation, today, POLICY), account, situation, today, POLICY)


@PROPERTY
@given(any_case, days)
def test_each_plan_follows_its_policy_terms(case: Case, today: date) -> None:
    """Products, thresholds, waivers, due dates and deferrals are the policy's own."""
    account, situation = case
    for offer in assess(account, situation, today, POLICY).offers:
        check_terms(offer, account, situation, today)


@PROPERTY
@given(any_case, days)
@example(
    # Nothing overdue: a promise to pay 0.00 is offered.
    case=(
        AccountPosition(1, "credit_card", ZERO, ZERO, ZERO, 0),
        Circumstances(D("0.00"), D("0.00")),
    ),
    today=TODAY,
)
@example(
    # Nothing overdue on a loan: an extension of one installment of 0.00 after the pause.
    case=(
        AccountPosition(1, "consumer_loan", ZERO, ZERO, ZERO, 40, installment_amount=ZERO),
        Circumstances(D("1000.00"), D("0.00"), hardship_months=2),
    ),
    today=TODAY,
)
@example(
    # 0.02 owed at 0.01 a month: the minimum 3 months are 0.01, 0.01 and 0.00.
    case=(
        AccountPosition(1, "credit_card", D("0.02"), ZERO, ZERO, 45),
        Circumstances(D("100.00"), D("0.00"), proposed_monthly=D("0.01")),
    ),
    today=TODAY,
)
def test_every_installment_is_a_positive_amount(case: Case, today: date) -> None:
    """No offer asks the debtor to pay 0.00 on any due date.

    The explicit examples once failed: an account with nothing overdue was offered
    plans of 0.00, and a total of fewer cents than the minimum term got 0.00
    installments.
    """
    account, situation = case
    for offer in assess(account, situation, today, POLICY).offers:
        assert offer.total_payable > ZERO, offer
        assert all(item.amount > ZERO for item in offer.schedule), offer


@QUICK
@given(any_case, days)
def test_assessing_twice_gives_the_same_result(case: Case, today: date) -> None:
    """The engine is a pure function of its inputs; offers keep the policy's order."""
    account, situation = case
    first = assess(account, situation, today, POLICY)
    assert assess(account, situation, today, POLICY) == first
    assert plans(first) == sorted(plans(first), key=POLICY.ranking.index)


@QUICK
@given(cases(broken_plans=st.integers(POLICY.authority.max_broken_plans + 1, 4)))
def test_too_many_broken_plans_means_no_offer(case: Case) -> None:
    """Beyond the allowed broken plans only a human negotiator may agree a plan."""
    account, situation = case
    assume(account.overdue_total > ZERO)
    assessment = assess(account, situation, TODAY, POLICY)
    assert assessment.offers == ()
    assert assessment.proposal is not None
    assert assessment.proposal.reason == "broken_plans"
    if assessment.proposal.draft is not None:
        check_schedule(assessment.proposal.draft)
        assert assessment.proposal.draft.plan in reasons(assessment)


@QUICK
@given(card_cases)
def test_personalized_installment_takes_the_shortest_affordable_term(case: Case) -> None:
    """One month less would need an installment above what the debtor can afford."""
    account, situation = case
    assessment = assess(account, situation, TODAY, POLICY)
    offer = next((o for o in assessment.offers if o.plan == "personalized_installment"), None)
    if offer is None:
        return
    limit = assessment.affordable_monthly
    assert offer.monthly_amount <= limit
    shorter = offer.months - 1
    if shorter >= POLICY.personalized_installment.min_months:
        assert max(split_evenly(offer.total_payable, shorter)) > limit
        assert cents_up(offer.total_payable / shorter) > limit


@QUICK
@given(card_cases)
def test_a_card_that_fits_sixty_months_gets_an_installment_plan(case: Case) -> None:
    """Whenever 60 months would be affordable (and one would not do), the plan is offered."""
    account, situation = case
    assessment = assess(account, situation, TODAY, POLICY)
    limit = assessment.affordable_monthly
    total = account.overdue_total
    if total <= limit or cents_up(total / 60) > limit:
        assert "personalized_installment" not in plans(assessment)
    else:
        assert "personalized_installment" in plans(assessment)


@QUICK
@given(loan_cases)
def test_a_loan_that_fits_twelve_months_gets_an_extension(case: Case) -> None:
    """A temporary hardship and room for the arrears over 12 months: an extension is offered."""
    account, situation = case
    assessment = assess(account, situation, TODAY, POLICY)
    regular = account.installment_amount or ZERO
    limit = assessment.affordable_monthly
    if limit - regular <= ZERO or cents_up(account.overdue_total / 12) + regular > limit:
        assert "loan_extension" not in plans(assessment)
    else:
        assert "loan_extension" in plans(assessment)


@QUICK
@given(any_case)
def test_no_disposable_income_means_no_recurring_offer(case: Case) -> None:
    """With income at or below expenses and repayments only a one-off payment may fit."""
    account, situation = case
    broke = Circumstances(
        monthly_income=situation.monthly_income,
        monthly_expenses=situation.monthly_income + situation.monthly_expenses,
        other_repayments=situation.other_repayments,
        hardship_months=situation.hardship_months,
        proposed_monthly=situation.proposed_monthly,
        available_funds=situation.available_funds,
    )
    assessment = assess(account, broke, TODAY, POLICY)
    assert assessment.affordable_monthly == ZERO
    assert all(offer.one_off for offer in assessment.offers)
    for offer in assessment.offers:
        assert offer.total_payable <= broke.available_funds
    if not assessment.offers and account.overdue_total > ZERO:
        assert assessment.proposal is not None
        broken = account.broken_plans > POLICY.authority.max_broken_plans
        assert assessment.proposal.reason == ("broken_plans" if broken else "no_affordable_plan")


@PROPERTY
@given(any_case, money(200_000), days)
def test_counter_offers_keep_the_invariants(case: Case, monthly: Decimal, today: date) -> None:
    """A debtor's own monthly figure caps every recurring offer, and nothing else changes."""
    account, situation = case
    assessment = counter_offer(account, situation, monthly, today, POLICY)
    proposed = Circumstances(
        monthly_income=situation.monthly_income,
        monthly_expenses=situation.monthly_expenses,
        other_repayments=situation.other_repayments,
        hardship_reason=situation.hardship_reason,
        hardship_months=situation.hardship_months,
        proposed_monthly=monthly,
        available_funds=situation.available_funds,
    )
    check_assessment(assessment, account, proposed, today, POLICY)
    assert assessment.affordable_monthly <= monthly
    for offer in assessment.offers:
        if not offer.one_off:
            assert offer.monthly_amount + offer.concurrent_monthly <= monthly
    assert assessment == assess(account, proposed, today, POLICY)


@QUICK
@given(any_case, days)
def test_offers_survive_a_round_trip_through_a_dict(case: Case, today: date) -> None:
    """`Offer.from_dict(offer.to_dict())` is the same offer, even through JSON."""
    account, situation = case
    assessment = assess(account, situation, today, POLICY)
    proposal = assessment.proposal
    drafts = [proposal.draft] if proposal is not None and proposal.draft is not None else []
    for offer in [*assessment.offers, *drafts]:
        data = offer.to_dict()
        assert Offer.from_dict(data) == offer
        again = Offer.from_dict(json.loads(json.dumps(data)))
        assert again == offer
        assert again.to_dict() == data


# --- schedule arithmetic ------------------------------------------------------------------


@PROPERTY
@given(money(10_000_000), st.integers(1, 120))
def test_split_evenly_sums_exactly(total: Decimal, count: int) -> None:
    """`count` amounts, a cent apart at most, larger first, summing to `total` exactly."""
    amounts = split_evenly(total, count)
    assert len(amounts) == count
    assert sum(amounts, ZERO) == total
    assert max(amounts) - min(amounts) <= CENT
    assert amounts == sorted(amounts, reverse=True)
    assert all(has_two_decimals(amount) and amount >= ZERO for amount in amounts)
    assert max(amounts) == cents_up(total / count)


def test_split_evenly_examples() -> None:
    """The remainder cents go to the first amounts; a count below one is refused."""
    assert split_evenly(D("100.00"), 3) == [D("33.34"), D("33.33"), D("33.33")]
    assert split_evenly(D("23560.00"), 23) == [D("1024.35")] * 18 + [D("1024.34")] * 5
    assert split_evenly(D("0.02"), 3) == [D("0.01"), D("0.01"), D("0.00")]
    assert split_evenly(D("7.00"), 1) == [D("7.00")]
    with pytest.raises(ValueError, match="count must be at least 1"):
        split_evenly(D("1.00"), 0)


@PROPERTY
@given(days, st.integers(0, 240))
def test_add_months_keeps_the_day_or_clamps_to_the_month_end(day: date, months: int) -> None:
    """Same day `months` later, or the last day of a shorter month."""
    result = add_months(day, months)
    assert (result.year * 12 + result.month) - (day.year * 12 + day.month) == months
    last_day = calendar.monthrange(result.year, result.month)[1]
    assert result.day == min(day.day, last_day)
    assert add_months(day, 0) == day


def test_add_months_examples() -> None:
    """January 31 plus one month is the end of February, leap year or not."""
    assert add_months(date(2026, 1, 31), 1) == date(2026, 2, 28)
    assert add_months(date(2028, 1, 31), 1) == date(2028, 2, 29)
    assert add_months(date(2026, 1, 31), 2) == date(2026, 3, 31)
    assert add_months(date(2026, 8, 31), 1) == date(2026, 9, 30)
    assert add_months(date(2026, 12, 13), 13) == date(2028, 1, 13)
    assert add_months(date(2026, 11, 30), 3) == date(2027, 2, 28)


# --- check_promise ------------------------------------------------------------------------

PROMISE = POLICY.promise_to_pay


@st.composite
def small_accounts(draw: st.DrawFn) -> AccountPosition:
    """An account the promise rule accepts: at most 30 days late, 0.01 to 5000.00 overdue."""
    principal = draw(st.integers(1, 300_000))
    interest = draw(st.integers(0, 100_000))
    fees = draw(st.integers(0, 100_000))
    return AccountPosition(
        account_id=draw(st.integers(1, 10**6)),
        product=draw(st.sampled_from(PRODUCTS)),
        overdue_principal=D(principal) * CENT,
        interest=D(interest) * CENT,
        penalty_fees=D(fees) * CENT,
        days_past_due=draw(st.integers(0, PROMISE.max_days_past_due)),
        broken_plans=draw(st.integers(0, POLICY.authority.max_broken_plans)),
    )


@PROPERTY
@given(small_accounts(), st.data(), days)
def test_a_promise_within_the_window_and_share_is_accepted(
    account: AccountPosition, data: st.DataObject, today: date
) -> None:
    """Any date from today to the window's end, any amount from min_share of the total."""
    due = today + timedelta(days=data.draw(st.integers(0, PROMISE.max_days_ahead), label="days"))
    total = account.overdue_total
    minimum = cents_up(total * PROMISE.min_share)
    amount = D(data.draw(st.integers(int(minimum * 100), int(total * 100)), label="cents")) * CENT
    offer = check_promise(account, amount, due, today, POLICY)
    assert isinstance(offer, Offer)
    assert (offer.plan, offer.one_off, offer.months) == ("promise_to_pay", True, 1)
    assert (offer.total_payable, offer.monthly_amount, offer.amount_waived) == (
        amount,
        amount,
        ZERO,
    )
    assert offer.schedule == (Installment(1, due, amount),)
    assert (offer.first_due, offer.last_due) == (due, due)
    check_schedule(offer)
    whole = check_promise(account, None, due, today, POLICY)
    assert isinstance(whole, Offer)
    assert whole.total_payable == total
    assert Offer.from_dict(offer.to_dict()) == offer


@PROPERTY
@given(small_accounts(), st.integers(1, 3650), days)
def test_a_promise_for_a_past_day_is_refused(
    account: AccountPosition, days_ago: int, today: date
) -> None:
    """A day before today is `date_past`, with the last allowed day."""
    last = (today + timedelta(days=PROMISE.max_days_ahead)).isoformat()
    result = check_promise(account, None, today - timedelta(days=days_ago), today, POLICY)
    assert result == Ineligible("promise_to_pay", "date_past", {"date": last})


@PROPERTY
@given(small_accounts(), st.integers(1, 3650), days)
def test_a_promise_beyond_the_window_is_refused(
    account: AccountPosition, extra: int, today: date
) -> None:
    """A day after the window is `date_too_far`, with the last allowed day."""
    last = today + timedelta(days=PROMISE.max_days_ahead)
    result = check_promise(account, None, last + timedelta(days=extra), today, POLICY)
    assert result == Ineligible("promise_to_pay", "date_too_far", {"date": last.isoformat()})


@PROPERTY
@given(small_accounts(), st.integers(1, 10**8), days)
def test_a_promise_above_the_total_is_refused(
    account: AccountPosition, excess: int, today: date
) -> None:
    """More than the overdue total is `amount_above_total`, with the total."""
    amount = account.overdue_total + D(excess) * CENT
    result = check_promise(account, amount, today, today, POLICY)
    assert result == Ineligible(
        "promise_to_pay", "amount_above_total", {"amount": str(account.overdue_total)}
    )


@PROPERTY
@given(small_accounts(), st.data(), days)
def test_a_promise_below_the_minimum_share_is_refused(
    account: AccountPosition, data: st.DataObject, today: date
) -> None:
    """Less than min_share of the total (or nothing) is `amount_too_small`, with the minimum."""
    minimum = cents_up(account.overdue_total * PROMISE.min_share)
    amount = D(data.draw(st.integers(0, int(minimum * 100) - 1), label="cents")) * CENT
    result = check_promise(account, amount, today, today, POLICY)
    assert result == Ineligible("promise_to_pay", "amount_too_small", {"amount": str(minimum)})


@PROPERTY
@given(accounts(broken_plans=st.integers(0, 1)), days)
def test_a_promise_on_an_account_beyond_the_limits_is_refused(
    account: AccountPosition, today: date
) -> None:
    """Too late or too much: refused with the limit; otherwise the whole total is accepted."""
    result = check_promise(account, None, today, today, POLICY)
    if account.days_past_due > PROMISE.max_days_past_due:
        assert result == Ineligible("promise_to_pay", "overdue_too_long", {"days": "30"})
    elif account.overdue_total > PROMISE.max_overdue_total:
        assert result == Ineligible("promise_to_pay", "amount_too_large", {"amount": "5000.00"})
    elif account.overdue_total == ZERO:
        assert result == Ineligible("promise_to_pay", "amount_too_small", {"amount": "0.00"})
    else:
        assert isinstance(result, Offer)
        assert result.total_payable == account.overdue_total


@PROPERTY
@given(small_accounts(), st.integers(2, 4), days)
def test_a_promise_after_broken_plans_is_refused(
    account: AccountPosition, broken: int, today: date
) -> None:
    """Beyond the allowed broken plans no promise is taken."""
    account = AccountPosition(
        account.account_id,
        account.product,
        account.overdue_principal,
        account.interest,
        account.penalty_fees,
        account.days_past_due,
        broken_plans=broken,
    )
    result = check_promise(account, None, today, today, POLICY)
    assert result == Ineligible("promise_to_pay", "broken_plans", {"broken_plans": str(broken)})


def test_a_promise_in_parts_is_one_promise() -> None:
    """刘洋 (3045.00): "先还两千，剩下的月底前还清" is two payments checked together."""
    liu = position(3)
    first, rest = date(2026, 12, 4), date(2026, 12, 25)
    offer = check_promise_in_parts(liu, [(D("2000"), first), (None, rest)], TODAY, POLICY)
    assert isinstance(offer, Offer)
    assert offer.schedule == (
        Installment(1, first, D("2000.00")),
        Installment(2, rest, D("1045.00")),
    )
    assert (offer.total_payable, offer.monthly_amount, offer.months) == (
        D("3045.00"),
        D("2000.00"),
        2,
    )
    assert (offer.first_due, offer.last_due, offer.one_off) == (first, rest, False)
    # The rest alone would be below half of the total; together the promise is whole.
    assert check_promise(liu, D("1045.00"), rest, TODAY, POLICY) == Ineligible(
        "promise_to_pay", "amount_too_small", {"amount": "1522.50"}
    )
    # Two given amounts below the minimum together are refused together.
    assert check_promise_in_parts(
        liu, [(D("500"), first), (D("500"), rest)], TODAY, POLICY
    ) == Ineligible("promise_to_pay", "amount_too_small", {"amount": "1522.50"})
    assert check_promise_in_parts(
        liu, [(D("2000"), rest), (None, first)], TODAY, POLICY
    ) == Ineligible("promise_to_pay", "dates_out_of_order")
    assert check_promise_in_parts(liu, [(None, first), (D("1000"), rest)], TODAY, POLICY) == (
        Ineligible("promise_to_pay", "amount_missing")
    )
    assert check_promise_in_parts(
        liu, [(D("3045"), first), (None, rest)], TODAY, POLICY
    ) == Ineligible("promise_to_pay", "amount_above_total", {"amount": "3045.00"})
    too_late = date(2026, 12, 29)
    assert check_promise_in_parts(
        liu, [(D("2000"), first), (None, too_late)], TODAY, POLICY
    ) == Ineligible("promise_to_pay", "date_too_far", {"date": "2026-12-28"})
    four = [(D("100"), first + timedelta(days=n)) for n in range(PROMISE.max_parts + 1)]
    assert check_promise_in_parts(liu, four, TODAY, POLICY) == Ineligible(
        "promise_to_pay", "too_many_parts", {"parts": str(PROMISE.max_parts)}
    )


@PROPERTY
@given(small_accounts(), st.data(), days)
def test_parts_of_a_promise_add_up_to_what_is_recorded(
    account: AccountPosition, data: st.DataObject, today: date
) -> None:
    """Accepted parts keep their dates and amounts; an open last part is exactly the rest."""
    count = data.draw(st.integers(2, PROMISE.max_parts), label="parts")
    offsets = sorted(
        data.draw(
            st.lists(
                st.integers(0, PROMISE.max_days_ahead), min_size=count, max_size=count, unique=True
            ),
            label="days",
        )
    )
    dates = [today + timedelta(days=n) for n in offsets]
    total = account.overdue_total
    amounts = [
        D(data.draw(st.integers(1, max(1, int(total * 100) // count)), label="cents")) * CENT
        for _ in dates[:-1]
    ]
    assume(sum(amounts) < total)
    parts = [*zip(amounts, dates[:-1], strict=True), (None, dates[-1])]
    offer = check_promise_in_parts(account, parts, today, POLICY)
    assert isinstance(offer, Offer)
    assert [i.due_date for i in offer.schedule] == dates
    assert [i.amount for i in offer.schedule[:-1]] == amounts
    assert offer.total_payable == total == sum(i.amount for i in offer.schedule)
    assert offer.monthly_amount == max(i.amount for i in offer.schedule)
    assert Offer.from_dict(offer.to_dict()) == offer


def test_check_promise_examples() -> None:
    """刘洋 (3045.00, 5 days late) may promise half or all of it within 30 days."""
    liu = position(3)
    due = date(2026, 12, 20)
    assert check_promise(liu, D("1522.50"), due, TODAY, POLICY) == Offer(
        plan="promise_to_pay",
        account_id=4,
        currency="CNY",
        monthly_amount=D("1522.50"),
        months=1,
        first_due=due,
        last_due=due,
        total_payable=D("1522.50"),
        amount_waived=ZERO,
        schedule=(Installment(1, due, D("1522.50")),),
        one_off=True,
    )
    assert check_promise(liu, D("1522.49"), due, TODAY, POLICY) == Ineligible(
        "promise_to_pay", "amount_too_small", {"amount": "1522.50"}
    )
    # Fractions of a cent are dropped, in the debtor's favour.
    accepted = check_promise(liu, D("2000.009"), due, TODAY, POLICY)
    assert isinstance(accepted, Offer)
    assert accepted.total_payable == D("2000.00")
    last_day = check_promise(liu, None, date(2026, 12, 28), TODAY, POLICY)
    assert isinstance(last_day, Offer)
    assert (last_day.first_due, last_day.total_payable) == (date(2026, 12, 28), D("3045.00"))
    assert check_promise(liu, None, date(2026, 12, 29), TODAY, POLICY) == Ineligible(
        "promise_to_pay", "date_too_far", {"date": "2026-12-28"}
    )
    assert check_promise(liu, None, date(2026, 11, 27), TODAY, POLICY) == Ineligible(
        "promise_to_pay", "date_past", {"date": "2026-12-28"}
    )
    assert check_promise(position(0), None, due, TODAY, POLICY) == Ineligible(
        "promise_to_pay", "overdue_too_long", {"days": "30"}
    )


# --- the demo debtors ---------------------------------------------------------------------


def test_zhang_wei_gets_a_23_month_installment_plan() -> None:
    """张伟: 23560.00 at 1050.00 a month (0.70 x 1500.00) is 23 months, 18 x 1024.35 first."""
    account = position(0)
    situation = Circumstances(D("4000"), D("2500"))
    assessment = assess(account, situation, TODAY, POLICY)
    assert assessment.affordable_monthly == D("1050.00")
    [offer] = assessment.offers
    assert offer.plan == "personalized_installment"
    assert (offer.months, offer.monthly_amount, offer.total_payable, offer.amount_waived) == (
        23,
        D("1024.35"),
        D("23560.00"),
        ZERO,
    )
    assert (offer.first_due, offer.last_due) == (date(2026, 12, 13), date(2028, 10, 13))
    assert offer.schedule == tuple(
        Installment(
            n, add_months(date(2026, 12, 13), n - 1), D("1024.35" if n <= 18 else "1024.34")
        )
        for n in range(1, 24)
    )
    assert offer.schedule[1].due_date == date(2027, 1, 13)
    assert offer.interest_stops is True
    assert reasons(assessment) == {
        "promise_to_pay": "overdue_too_long",
        "fee_waiver": "unaffordable",
        "lump_sum_settlement": "not_overdue_long_enough",
        "loan_extension": "product",
    }
    assert assessment.ineligible[1].needs == {"funds": "22160.00"}  # 23210.00 - 1050.00
    assert assessment.proposal is None


def test_zhang_wei_with_savings_is_also_offered_the_fee_waiver() -> None:
    """With 30000.00 at hand half the 700.00 fees go if 23210.00 is paid within 30 days."""
    situation = Circumstances(D("4000"), D("2500"), available_funds=D("30000.00"))
    assessment = assess(position(0), situation, TODAY, POLICY)
    assert plans(assessment) == ["fee_waiver", "personalized_installment"]
    waiver = assessment.offers[0]
    assert (waiver.total_payable, waiver.amount_waived, waiver.first_due) == (
        D("23210.00"),
        D("350.00"),
        date(2026, 12, 28),
    )
    assert waiver.schedule == (Installment(1, date(2026, 12, 28), D("23210.00")),)
    assert assessment.offers[1].months == 23


def test_wang_fang_with_two_broken_plans_goes_to_a_negotiator() -> None:
    """王芳 broke two plans: no offer, a proposal with a 60-month draft of 3095.00."""
    account = position(2)
    assert account.broken_plans == 2
    assessment = assess(account, Circumstances(D("4000"), D("2500")), TODAY, POLICY)
    assert assessment.offers == ()
    assert assessment.proposal is not None
    assert assessment.proposal.reason == "broken_plans"
    draft = assessment.proposal.draft
    assert draft is not None
    assert (draft.plan, draft.months, draft.monthly_amount, draft.total_payable) == (
        "personalized_installment",
        60,
        D("3095.00"),
        D("185700.00"),
    )
    # Even when a plan would be affordable, the broken plans rule it out.
    rich = assess(account, Circumstances(D("8000"), D("3000")), TODAY, POLICY)
    assert rich.offers == ()
    assert reasons(rich)["personalized_installment"] == "broken_plans"
    assert rich.proposal is not None and rich.proposal.draft is not None
    assert (rich.proposal.reason, rich.proposal.draft.months) == ("broken_plans", 54)


def test_li_na_with_a_three_month_hardship_gets_a_loan_extension() -> None:
    """李娜: payments pause 3 months, then 6592.00 over 7 months beside the 3200.00 installment."""
    situation = Circumstances(D("10000"), D("4000"), hardship_months=3)
    assessment = assess(position(1), situation, TODAY, POLICY)
    assert assessment.affordable_monthly == D("4200.00")
    [offer] = assessment.offers
    assert (offer.plan, offer.deferral_months, offer.months) == ("loan_extension", 3, 7)
    assert (offer.monthly_amount, offer.concurrent_monthly, offer.total_payable) == (
        D("941.72"),
        D("3200.00"),
        D("6592.00"),
    )
    assert [item.amount for item in offer.schedule] == [D("941.72")] * 3 + [D("941.71")] * 4
    assert (offer.first_due, offer.last_due) == (date(2027, 3, 13), date(2027, 9, 13))
    # Without a known end to the hardship it is not temporary; 3749.34 is 549.34 + 3200.00.
    unknown = assess(position(1), Circumstances(D("10000"), D("4000")), TODAY, POLICY)
    assert unknown.offers == ()
    assert reasons(unknown)["loan_extension"] == "not_temporary"
    tight = assess(
        position(1), Circumstances(D("8000"), D("3000"), hardship_months=3), TODAY, POLICY
    )
    assert [(i.reason, i.needs) for i in tight.ineligible if i.plan == "loan_extension"] == [
        ("unaffordable", {"monthly": "3749.34"})
    ]


def test_liu_yang_who_can_pay_soon_is_offered_a_promise() -> None:
    """刘洋 owes 3045.00 and can afford 3500.00 a month: a promise, not an installment plan."""
    assessment = assess(position(3), Circumstances(D("8000"), D("3000")), TODAY, POLICY)
    [offer] = assessment.offers
    assert (offer.plan, offer.total_payable, offer.first_due) == (
        "promise_to_pay",
        D("3045.00"),
        date(2026, 12, 28),
    )
    assert reasons(assessment)["personalized_installment"] == "can_pay_soon"
    assert reasons(assessment)["fee_waiver"] == "no_fees"
    smaller = assess(position(3), Circumstances(D("4000"), D("2500")), TODAY, POLICY)
    [plan] = smaller.offers
    assert (plan.plan, plan.months, plan.monthly_amount) == (
        "personalized_installment",
        3,
        D("1015.00"),
    )


def test_chen_jing_with_savings_gets_three_offers_in_policy_order() -> None:
    """陈静 (95 days late) with 60000.00 at hand: fee waiver, settlement, then 53 months."""
    situation = Circumstances(D("4000"), D("2500"), available_funds=D("60000.00"))
    assessment = assess(position(4), situation, TODAY, POLICY)
    assert plans(assessment) == ["fee_waiver", "lump_sum_settlement", "personalized_installment"]
    waiver, settlement, installments = assessment.offers
    assert (waiver.total_payable, waiver.amount_waived) == (D("54850.00"), D("750.00"))
    # Half the interest (3050.00) and all the fees (1500.00); the 48000.00 principal stays.
    assert (settlement.total_payable, settlement.amount_waived) == (D("51050.00"), D("4550.00"))
    assert (installments.months, installments.monthly_amount) == (53, D("1049.06"))
    assert [item.amount for item in installments.schedule] == [D("1049.06")] * 35 + [
        D("1049.05")
    ] * 18
    assert installments.last_due == date(2031, 4, 13)


def test_no_disposable_income_means_no_recurring_offer_for_zhang_wei() -> None:
    """Nothing left each month: no offer, a no-affordable-plan proposal, a 60-month draft."""
    for income, expenses in (("3000", "3500"), ("2500", "2500")):
        situation = Circumstances(D(income), D(expenses))
        assessment = assess(position(0), situation, TODAY, POLICY)
        assert assessment.affordable_monthly == ZERO
        assert assessment.offers == ()
        assert reasons(assessment)["personalized_installment"] == "unaffordable"
        assert assessment.proposal is not None
        assert assessment.proposal.reason == "no_affordable_plan"
        draft = assessment.proposal.draft
        assert draft is not None
        # 23560.00 / 60 = 392.666...: 40 installments of 392.67, then 20 of 392.66.
        assert (draft.plan, draft.months, draft.monthly_amount) == (
            "personalized_installment",
            60,
            D("392.67"),
        )
        assert [item.amount for item in draft.schedule] == [D("392.67")] * 40 + [D("392.66")] * 20


def test_a_counter_offer_lengthens_the_term() -> None:
    """张伟 says he can pay 800.00: the plan runs 30 months instead of 23."""
    assessment = counter_offer(
        position(0), Circumstances(D("4000"), D("2500")), D("800.00"), TODAY, POLICY
    )
    assert assessment.affordable_monthly == D("800.00")
    [offer] = assessment.offers
    assert (offer.months, offer.monthly_amount) == (30, D("785.34"))
    # A figure above what the policy allows does not raise the limit.
    generous = counter_offer(
        position(0), Circumstances(D("4000"), D("2500")), D("5000.00"), TODAY, POLICY
    )
    assert generous.affordable_monthly == D("1050.00")
    assert generous.offers[0].months == 23
