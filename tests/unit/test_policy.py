"""The negotiation policy file: loading, validation, the check command, and its effect."""

from __future__ import annotations

import copy
import subprocess
import sys
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml

from bot.domain.negotiation import AccountPosition, Assessment, Circumstances, assess
from bot.domain.policy import (
    DEFAULT_POLICY_PATH,
    PLANS,
    PolicyError,
    current_policy,
    load_policy,
    main,
    parse_policy,
)

D = Decimal
BUNDLED_TEXT = DEFAULT_POLICY_PATH.read_text(encoding="utf-8")
#: The bundled file parsed once; tests change copies of it.
BUNDLED_DATA: dict[str, Any] = yaml.safe_load(BUNDLED_TEXT)
TODAY = date(2026, 11, 28)
#: 张伟's credit card (bot/store/seed.py): 20000.00 + 2860.00 interest + 700.00 fees, 45 days late.
ZHANG_WEI = AccountPosition(1, "credit_card", D("20000.00"), D("2860.00"), D("700.00"), 45)
#: 李娜's arrears (6400.00 + 192.00 fees, 62 days late) on a mortgage instead of her loan.
MORTGAGE = AccountPosition(
    2, "mortgage", D("6400.00"), D("0.00"), D("192.00"), 62, installment_amount=D("3200.00")
)


@pytest.fixture(autouse=True)
def no_policy_override(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    """Each test starts from the bundled policy, and leaves no cached policy of its own."""
    monkeypatch.delenv("NEGOTIATION_POLICY", raising=False)
    current_policy.cache_clear()
    yield
    current_policy.cache_clear()


def bundled() -> dict[str, Any]:
    """The bundled policy as parsed YAML, a fresh copy to change."""
    return copy.deepcopy(BUNDLED_DATA)


def write(path: Path, content: str | dict[str, Any] | list[Any]) -> Path:
    """`content` (YAML text, or data to dump as YAML) written to `path`."""
    text = content if isinstance(content, str) else yaml.safe_dump(content, sort_keys=False)
    path.write_text(text, encoding="utf-8")
    return path


def replace_once(text: str, old: str, new: str) -> str:
    assert text.count(old) == 1, old
    return text.replace(old, new)


def expect_error(path: Path) -> str:
    """The message of the `PolicyError` loading `path` raises; it always names the file."""
    with pytest.raises(PolicyError) as caught:
        load_policy(path)
    message = str(caught.value)
    assert message.startswith(f"{path}: ")
    return message


# --- the bundled file ---------------------------------------------------------------------


def test_the_bundled_policy_loads_with_its_figures() -> None:
    """Every value of bot/policies/negotiation.yml, as exact decimals where they are money."""
    policy = load_policy()
    assert policy == load_policy(DEFAULT_POLICY_PATH)
    assert policy.version == 1
    assert (policy.affordability.ratio, policy.affordability.pay_soon_months) == (D("0.70"), 1)
    assert str(policy.affordability.ratio) == "0.70"
    assert policy.schedule.first_due_days == 15
    assert (
        policy.plausibility.max_monthly_income,
        policy.plausibility.max_expenses_to_income,
        policy.plausibility.max_hardship_months,
    ) == (D("10000000"), 100, 120)
    installment = policy.personalized_installment
    assert (installment.enabled, installment.products) == (True, ("credit_card",))
    assert (installment.min_months, installment.max_months) == (3, 60)
    assert installment.fee_waiver_share == D("0")
    extension = policy.loan_extension
    assert extension.products == ("consumer_loan", "car_loan", "mortgage")
    assert (
        extension.max_hardship_months,
        extension.max_deferral_months,
        extension.max_repayment_months,
    ) == (12, 6, 12)
    waiver = policy.fee_waiver
    assert waiver.products == ("credit_card", "consumer_loan", "car_loan", "mortgage")
    assert (waiver.share, waiver.pay_within_days, waiver.min_penalty_fees) == (
        D("0.50"),
        30,
        D("1.00"),
    )
    settlement = policy.lump_sum_settlement
    assert settlement.products == ("credit_card",)
    assert (
        settlement.min_days_past_due,
        settlement.interest_waiver_share,
        settlement.fee_waiver_share,
        settlement.pay_within_days,
    ) == (90, D("0.50"), D("1.00"), 30)
    promise = policy.promise_to_pay
    assert (
        promise.max_days_past_due,
        promise.max_overdue_total,
        promise.max_days_ahead,
        promise.min_share,
    ) == (30, D("5000.00"), 30, D("0.50"))
    assert (
        policy.authority.max_term_months,
        policy.authority.max_waiver,
        policy.authority.max_broken_plans,
    ) == (60, D("20000.00"), 1)
    assert policy.ranking == (
        "promise_to_pay",
        "fee_waiver",
        "lump_sum_settlement",
        "loan_extension",
        "personalized_installment",
    )
    assert policy.max_offers == 3
    assert [policy.rank(plan) for plan in policy.ranking] == [0, 1, 2, 3, 4]
    assert sorted(policy.ranking) == sorted(PLANS)


def test_money_and_shares_are_decimals_not_floats() -> None:
    """Quoted figures are read as `Decimal`, so the engine's arithmetic stays exact."""
    policy = load_policy()
    for value in (
        policy.affordability.ratio,
        policy.fee_waiver.share,
        policy.fee_waiver.min_penalty_fees,
        policy.promise_to_pay.max_overdue_total,
        policy.authority.max_waiver,
    ):
        assert type(value) is Decimal


def test_the_policy_cannot_be_changed_in_memory() -> None:
    """A loaded policy is frozen: only the file changes what is offered."""
    policy = load_policy()
    with pytest.raises(TypeError):
        policy.max_offers = 5
    with pytest.raises(TypeError):
        policy.affordability.ratio = D("1")
    assert (policy.max_offers, policy.affordability.ratio) == (3, D("0.70"))


def test_a_copy_of_the_bundled_file_loads_the_same(tmp_path: Path) -> None:
    """Dumping the parsed file and reading it again loses nothing (quoted decimals included)."""
    path = write(tmp_path / "copy.yml", bundled())
    assert load_policy(path) == load_policy()
    assert parse_policy(bundled()) == load_policy()


# --- bad values ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("old", "new", "setting"),
    [
        ('ratio: "0.70"', "ratio: 0.70", "affordability.ratio"),
        ('share: "0.50"\n  pay_within_days', "share: 0.5\n  pay_within_days", "fee_waiver.share"),
        (
            'max_overdue_total: "5000.00"',
            "max_overdue_total: 5000.00",
            "promise_to_pay.max_overdue_total",
        ),
        ('max_waiver: "20000.00"', "max_waiver: 20000.50", "authority.max_waiver"),
    ],
)
def test_an_unquoted_decimal_is_refused(tmp_path: Path, old: str, new: str, setting: str) -> None:
    """YAML reads 0.70 as a float; the message says to write it in quotes."""
    path = write(tmp_path / "float.yml", replace_once(BUNDLED_TEXT, old, new))
    message = expect_error(path)
    assert f"  {setting}: write decimals in quotes" in message
    assert '"0.70"' in message


def setting_changes() -> list[tuple[str, Callable[[dict[str, Any]], None], str, str]]:
    """(case, change to the bundled data, setting named in the message, what is wrong)."""

    def set_value(section: str, key: str, value: Any) -> Callable[[dict[str, Any]], None]:
        def change(data: dict[str, Any]) -> None:
            data[section][key] = value

        return change

    def set_ranking(ranking: list[str]) -> Callable[[dict[str, Any]], None]:
        def change(data: dict[str, Any]) -> None:
            data["ranking"] = ranking

        return change

    def swap_months(data: dict[str, Any]) -> None:
        data["personalized_installment"].update(min_months=24, max_months=12)

    def drop(section: str) -> Callable[[dict[str, Any]], None]:
        def change(data: dict[str, Any]) -> None:
            del data[section]

        return change

    def add_top_level(data: dict[str, Any]) -> None:
        data["bonus_plan"] = True

    known = list(PLANS)
    return [
        (
            "ratio above 1",
            set_value("affordability", "ratio", "1.10"),
            "affordability.ratio",
            "less than or equal to 1",
        ),
        (
            "share below 0",
            set_value("lump_sum_settlement", "interest_waiver_share", "-0.10"),
            "lump_sum_settlement.interest_waiver_share",
            "greater than or equal to 0",
        ),
        (
            "max_months above the legal 60",
            set_value("personalized_installment", "max_months", 61),
            "personalized_installment.max_months",
            "less than or equal to 60",
        ),
        (
            "authority beyond 60 months",
            set_value("authority", "max_term_months", 72),
            "authority.max_term_months",
            "less than or equal to 60",
        ),
        (
            "min_months above max_months",
            swap_months,
            "personalized_installment",
            "min_months is larger than max_months",
        ),
        (
            "unknown product",
            set_value("fee_waiver", "products", ["credit_card", "gold_card"]),
            "fee_waiver.products.1",
            "unknown product 'gold_card'",
        ),
        (
            "unknown plan in ranking",
            set_ranking([*known, "debt_forgiveness"]),
            "ranking",
            "unknown plans ['debt_forgiveness']",
        ),
        (
            "plan missing from ranking",
            set_ranking(known[:-1]),
            "ranking",
            "exactly once",
        ),
        (
            "plan twice in ranking",
            set_ranking([*known, known[0]]),
            "ranking",
            "exactly once",
        ),
        (
            "unknown key in a section",
            set_value("affordability", "bonus", "0.10"),
            "affordability.bonus",
            "extra fields not permitted",
        ),
        ("unknown top-level key", add_top_level, "bonus_plan", "extra fields not permitted"),
        ("missing section", drop("authority"), "authority", "field required"),
        ("missing ranking", drop("ranking"), "ranking", "field required"),
        (
            "negative amount",
            set_value("authority", "max_waiver", "-1.00"),
            "authority.max_waiver",
            "greater than or equal to 0",
        ),
        (
            "fraction of a cent",
            set_value("promise_to_pay", "max_overdue_total", "5000.001"),
            "promise_to_pay.max_overdue_total",
            "no more than 2 decimal places",
        ),
        (
            "no days to pay",
            set_value("schedule", "first_due_days", 0),
            "schedule.first_due_days",
            "greater than or equal to 1",
        ),
        (
            "no offers at all",
            set_value("authority", "max_broken_plans", -1),
            "authority.max_broken_plans",
            "greater than or equal to 0",
        ),
        (
            "not a number",
            set_value("fee_waiver", "pay_within_days", "soon"),
            "fee_waiver.pay_within_days",
            "value is not a valid integer",
        ),
    ]


@pytest.mark.parametrize(
    ("change", "setting", "problem"),
    [case[1:] for case in setting_changes()],
    ids=[case[0] for case in setting_changes()],
)
def test_a_bad_value_names_the_file_and_the_setting(
    tmp_path: Path, change: Callable[[dict[str, Any]], None], setting: str, problem: str
) -> None:
    """The message is `<file>: invalid negotiation policy`, then `  <setting>: <problem>`."""
    data = bundled()
    change(data)
    path = write(tmp_path / "negotiation.yml", data)
    message = expect_error(path)
    first, *details = message.splitlines()
    assert first == f"{path}: invalid negotiation policy"
    assert any(line.startswith(f"  {setting}: ") and problem in line for line in details), message
    with pytest.raises(PolicyError) as caught:
        parse_policy(data, "policy.yml")
    assert str(caught.value) == message.replace(str(path), "policy.yml")


def test_several_bad_values_are_all_reported(tmp_path: Path) -> None:
    """One run shows every mistake, one line each."""
    data = bundled()
    data["affordability"]["ratio"] = "2"
    data["max_offers"] = 9
    path = write(tmp_path / "two.yml", data)
    assert expect_error(path).splitlines() == [
        f"{path}: invalid negotiation policy",
        "  affordability.ratio: ensure this value is less than or equal to 1",
        "  max_offers: ensure this value is less than or equal to 3",
    ]


@pytest.mark.parametrize("text", ["- 1\n- 2\n", "just a sentence\n", "", "42\n"])
def test_a_top_level_that_is_not_a_mapping_is_refused(tmp_path: Path, text: str) -> None:
    """A list, a scalar or an empty file is not a policy."""
    path = write(tmp_path / "flat.yml", text)
    assert expect_error(path) == f"{path}: expected a mapping of settings at the top level"


def test_a_missing_file_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "nowhere" / "negotiation.yml"
    assert expect_error(path) == (
        f"{path}: cannot read the negotiation policy (No such file or directory)"
    )


def test_a_directory_is_refused(tmp_path: Path) -> None:
    assert (
        expect_error(tmp_path) == f"{tmp_path}: cannot read the negotiation policy (Is a directory)"
    )


def test_invalid_yaml_is_refused(tmp_path: Path) -> None:
    """The YAML parser's own description of the problem follows the file name."""
    path = write(tmp_path / "broken.yml", "version: 1\naffordability: [\n")
    message = expect_error(path)
    assert message.startswith(f"{path}: not valid YAML (")
    assert "line 3" in message


def test_parse_policy_names_its_source() -> None:
    """Already-parsed data gets the same checks, and `<policy>` when no source is given."""
    with pytest.raises(PolicyError, match=r"^<policy>: expected a mapping"):
        parse_policy(["not", "a", "mapping"])
    with pytest.raises(PolicyError, match=r"^settings\.yml: invalid negotiation policy"):
        parse_policy({"version": 1}, "settings.yml")


# --- which file -----------------------------------------------------------------------------


def alternative_text(max_offers: int = 1) -> str:
    """The bundled file with other figures: a bank's policy change, no code change."""
    text = replace_once(BUNDLED_TEXT, 'ratio: "0.70"', 'ratio: "0.50"')
    text = replace_once(
        text, 'share: "0.50"\n  pay_within_days: 30', 'share: "1.00"\n  pay_within_days: 30'
    )
    text = replace_once(text, "min_days_past_due: 90", "min_days_past_due: 30")
    text = replace_once(
        text,
        "ranking: [promise_to_pay, fee_waiver, lump_sum_settlement, loan_extension, "
        "personalized_installment]",
        "ranking: [lump_sum_settlement, personalized_installment, fee_waiver, promise_to_pay, "
        "loan_extension]",
    )
    return replace_once(text, "max_offers: 3", f"max_offers: {max_offers}")


def test_the_environment_variable_selects_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`NEGOTIATION_POLICY` names the file; an explicit path still wins."""
    path = write(tmp_path / "bank.yml", alternative_text())
    monkeypatch.setenv("NEGOTIATION_POLICY", str(path))
    policy = load_policy()
    assert (policy.affordability.ratio, policy.max_offers) == (D("0.50"), 1)
    assert policy == load_policy(path)
    assert load_policy(DEFAULT_POLICY_PATH).affordability.ratio == D("0.70")
    assert current_policy() == policy
    assert current_policy() is current_policy()


def test_a_bad_file_named_by_the_environment_is_refused(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = write(
        tmp_path / "bank.yml", replace_once(BUNDLED_TEXT, "max_offers: 3", "max_offers: 0")
    )
    monkeypatch.setenv("NEGOTIATION_POLICY", str(path))
    message = expect_error(path)
    with pytest.raises(PolicyError) as caught:
        load_policy()
    assert str(caught.value) == message
    assert "  max_offers: ensure this value is greater than or equal to 1" in message


def test_an_empty_environment_variable_means_the_bundled_file(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("NEGOTIATION_POLICY", "")
    assert load_policy() == load_policy(DEFAULT_POLICY_PATH)


# --- python -m bot.domain.policy check ------------------------------------------------


def test_check_accepts_the_bundled_file(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check"]) == 0
    assert capsys.readouterr() == ("ok: 5 plans, at most 3 offers\n", "")
    assert main(["check", str(DEFAULT_POLICY_PATH)]) == 0
    assert capsys.readouterr().out == "ok: 5 plans, at most 3 offers\n"


def test_check_accepts_another_good_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bank.yml", alternative_text())
    assert main(["check", str(path)]) == 0
    assert capsys.readouterr() == ("ok: 5 plans, at most 1 offers\n", "")


def test_check_reports_a_bad_file_and_fails(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bad.yml", replace_once(BUNDLED_TEXT, 'ratio: "0.70"', "ratio: 0.70"))
    assert main(["check", str(path)]) == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == (
        f"{path}: invalid negotiation policy\n"
        '  affordability.ratio: write decimals in quotes, e.g. "0.70", so they are exact\n'
    )


def test_check_fails_on_a_missing_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "missing.yml"
    assert main(["check", str(path)]) == 1
    assert capsys.readouterr().err == (
        f"{path}: cannot read the negotiation policy (No such file or directory)\n"
    )


def test_check_without_a_path_uses_the_environment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    path = write(tmp_path / "bank.yml", [1, 2])
    monkeypatch.setenv("NEGOTIATION_POLICY", str(path))
    assert main(["check"]) == 1
    assert capsys.readouterr().err == f"{path}: expected a mapping of settings at the top level\n"


def test_check_needs_a_command(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        main([])
    assert exited.value.code == 2
    assert "required: command" in capsys.readouterr().err


def test_the_module_runs_from_the_command_line(tmp_path: Path) -> None:
    """`python -m bot.domain.policy check <file>` exits 0 for a good file and 1 for a bad one."""
    root = Path(__file__).resolve().parents[2]
    good = subprocess.run(
        [sys.executable, "-m", "bot.domain.policy", "check", str(DEFAULT_POLICY_PATH)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert (good.returncode, good.stdout) == (0, "ok: 5 plans, at most 3 offers\n")
    bad_path = write(tmp_path / "bad.yml", {"version": 1})
    bad = subprocess.run(
        [sys.executable, "-m", "bot.domain.policy", "check", str(bad_path)],
        cwd=root,
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 1
    assert bad.stderr.startswith(f"{bad_path}: invalid negotiation policy\n")
    assert "  authority: field required\n" in bad.stderr


# --- the policy file alone changes what is offered -----------------------------------------


def offered(assessment: Assessment) -> list[tuple[str, int, Decimal, Decimal, Decimal]]:
    """(plan, months, monthly amount, total, waived) of each offer, in order."""
    return [
        (offer.plan, offer.months, offer.monthly_amount, offer.total_payable, offer.amount_waived)
        for offer in assessment.offers
    ]


def test_the_policy_file_alone_changes_what_is_offered(tmp_path: Path) -> None:
    """Same debtor, same figures, same day, same code: another file, other offers.

    The second file lowers the ratio to 0.50, waives all fees (not half) for prompt
    payment, settles from 30 days late (not 90), ranks the settlement first and offers
    one plan at most.
    """
    bank = load_policy()
    other = load_policy(write(tmp_path / "bank.yml", alternative_text()))
    assert bank != other

    # Nothing at hand: 1500.00 a month left, 23560.00 owed.
    situation = Circumstances(D("4000"), D("2500"))
    before, after = (assess(ZHANG_WEI, situation, TODAY, p) for p in (bank, other))
    assert (before.affordable_monthly, after.affordable_monthly) == (D("1050.00"), D("750.00"))
    # 23560.00 / 1050.00 -> 23 months; / 750.00 -> 32 months of exactly 736.25.
    assert offered(before) == [
        ("personalized_installment", 23, D("1024.35"), D("23560.00"), D("0.00"))
    ]
    assert offered(after) == [
        ("personalized_installment", 32, D("736.25"), D("23560.00"), D("0.00"))
    ]
    assert after.offers[0].last_due == date(2029, 7, 13)
    assert {i.plan: i.reason for i in after.ineligible}["lump_sum_settlement"] == "unaffordable"

    # 30000.00 at hand: the settlement opens at 45 days late, comes first, and is the only offer.
    savings = Circumstances(D("4000"), D("2500"), available_funds=D("30000.00"))
    before, after = (assess(ZHANG_WEI, savings, TODAY, p) for p in (bank, other))
    assert offered(before) == [
        ("fee_waiver", 1, D("23210.00"), D("23210.00"), D("350.00")),
        ("personalized_installment", 23, D("1024.35"), D("23560.00"), D("0.00")),
    ]
    assert {i.plan: i.reason for i in before.ineligible}["lump_sum_settlement"] == (
        "not_overdue_long_enough"
    )
    # Half the interest (1430.00) and all the fees (700.00) waived; principal kept.
    assert offered(after) == [
        ("lump_sum_settlement", 1, D("21430.00"), D("21430.00"), D("2130.00"))
    ]
    assert after.offers[0].first_due == date(2026, 12, 28)

    # The whole fee is waived for prompt payment, not half of it.
    funds = Circumstances(D("4000"), D("2500"), available_funds=D("10000.00"))
    before, after = (assess(MORTGAGE, funds, TODAY, p) for p in (bank, other))
    assert offered(before) == [("fee_waiver", 1, D("6496.00"), D("6496.00"), D("96.00"))]
    assert offered(after) == [("fee_waiver", 1, D("6400.00"), D("6400.00"), D("192.00"))]


def test_the_policy_ranking_orders_the_offers(tmp_path: Path) -> None:
    """With room for three offers the second file's ranking decides their order."""
    other = load_policy(write(tmp_path / "bank.yml", alternative_text(max_offers=3)))
    savings = Circumstances(D("4000"), D("2500"), available_funds=D("30000.00"))
    assert offered(assess(ZHANG_WEI, savings, TODAY, other)) == [
        ("lump_sum_settlement", 1, D("21430.00"), D("21430.00"), D("2130.00")),
        ("personalized_installment", 32, D("736.25"), D("23560.00"), D("0.00")),
        ("fee_waiver", 1, D("22860.00"), D("22860.00"), D("700.00")),
    ]


def test_a_disabled_plan_is_never_offered(tmp_path: Path) -> None:
    """`enabled: false` takes a plan out without touching code."""
    data = bundled()
    data["personalized_installment"]["enabled"] = False
    policy = load_policy(write(tmp_path / "no_installments.yml", data))
    assessment = assess(ZHANG_WEI, Circumstances(D("4000"), D("2500")), TODAY, policy)
    assert assessment.offers == ()
    assert {i.plan: i.reason for i in assessment.ineligible}["personalized_installment"] == (
        "disabled"
    )
    assert assessment.proposal is not None
    # Nothing else fits and nothing is left as a draft for a negotiator; with money
    # to spare each month the reason is that no plan fits it, not "nothing to spare".
    assert assessment.proposal.reason == "unaffordable"
    assert assessment.proposal.draft is None
    assert load_policy() != policy


def test_term_limits_come_from_the_file(tmp_path: Path) -> None:
    """Installment plans of 6 to 24 months instead of 3 to 60, by editing the file only."""
    data = bundled()
    data["personalized_installment"].update(min_months=6, max_months=24)
    policy = load_policy(write(tmp_path / "short_terms.yml", data))
    bank = load_policy()
    # 23560.00 / 24 = 981.67 fits 1050.00; the shortest term, 23 months, is within 24.
    within = Circumstances(D("4000"), D("2500"))
    assert offered(assess(ZHANG_WEI, within, TODAY, policy)) == offered(
        assess(ZHANG_WEI, within, TODAY, bank)
    )
    # At 910.00 a month the bank's file allows 26 months; 24 months would need 981.67.
    tight = Circumstances(D("3000"), D("1700"))
    assert offered(assess(ZHANG_WEI, tight, TODAY, bank)) == [
        ("personalized_installment", 26, D("906.16"), D("23560.00"), D("0.00"))
    ]
    capped = assess(ZHANG_WEI, tight, TODAY, policy)
    assert capped.offers == ()
    assert [(i.reason, i.needs) for i in capped.ineligible if i.plan.startswith("personal")] == [
        ("unaffordable", {"monthly": "981.67"})
    ]
    # 刘洋's 3045.00 is spread over at least 6 months rather than 3.
    liu = AccountPosition(4, "credit_card", D("3000.00"), D("45.00"), D("0.00"), 5)
    assert offered(assess(liu, within, TODAY, bank)) == [
        ("personalized_installment", 3, D("1015.00"), D("3045.00"), D("0.00"))
    ]
    assert offered(assess(liu, within, TODAY, policy)) == [
        ("personalized_installment", 6, D("507.50"), D("3045.00"), D("0.00"))
    ]


def test_the_authority_must_allow_the_shortest_installment(tmp_path: Path) -> None:
    data = bundled()
    data["authority"]["max_term_months"] = 2
    message = expect_error(write(tmp_path / "negotiation.yml", data))
    assert (
        "authority.max_term_months is shorter than personalized_installment.min_months" in message
    )


def test_an_installment_on_a_loan_leaves_room_for_the_regular_installment(tmp_path: Path) -> None:
    """A policy that allows personalised installments on loans counts the loan's own
    installment against what the debtor can afford."""
    data = bundled()
    data["personalized_installment"]["products"] = ["credit_card", "mortgage"]
    policy = load_policy(write(tmp_path / "negotiation.yml", data))
    mortgage = AccountPosition(
        1,
        "mortgage",
        Decimal("6400.00"),
        Decimal("0.00"),
        Decimal("192.00"),
        62,
        installment_amount=Decimal("700.00"),
    )
    # 1500 disposable x 0.70 = 1050 a month, of which 700 is the regular installment.
    situation = Circumstances(Decimal("3500.00"), Decimal("2000.00"))
    (offer,) = [
        o
        for o in assess(mortgage, situation, date(2026, 11, 28), policy).offers
        if o.plan == "personalized_installment"
    ]
    assert offer.concurrent_monthly == Decimal("700.00")
    assert offer.monthly_amount + offer.concurrent_monthly <= Decimal("1050.00")
    assert (offer.months, offer.monthly_amount) == (19, Decimal("346.95"))


def test_a_loan_extension_may_not_run_past_five_years(tmp_path: Path) -> None:
    data = bundled()
    data["loan_extension"].update(max_deferral_months=24, max_repayment_months=60)
    message = expect_error(write(tmp_path / "negotiation.yml", data))
    assert "max_deferral_months + max_repayment_months exceeds 60 months" in message


def test_the_authority_limits_a_loan_extension_with_its_pause(tmp_path: Path) -> None:
    """With a 3-month authority a 2-month pause leaves one month to repay in."""
    data = bundled()
    data["authority"]["max_term_months"] = 3
    data["personalized_installment"]["min_months"] = 3
    policy = load_policy(write(tmp_path / "negotiation.yml", data))
    loan = AccountPosition(
        2,
        "consumer_loan",
        Decimal("600.00"),
        Decimal("0.00"),
        Decimal("0.00"),
        40,
        installment_amount=Decimal("100.00"),
    )
    situation = Circumstances(Decimal("5000.00"), Decimal("1000.00"), hardship_months=2)
    (offer,) = [
        o
        for o in assess(loan, situation, date(2026, 11, 28), policy).offers
        if o.plan == "loan_extension"
    ]
    assert (offer.deferral_months, offer.months) == (2, 1)


# --- retention ----------------------------------------------------------------------------


def test_the_bundled_retention_keeps_conversations_three_years_and_their_audit_five() -> None:
    retention = load_policy().retention
    assert (retention.conversation_days, retention.audit_days) == (1095, 1825)


@pytest.mark.parametrize(
    ("key", "value", "problem"),
    [
        ("conversation_days", 0, "greater than or equal to 30"),
        ("conversation_days", 7, "greater than or equal to 30"),
        ("audit_days", 3661, "less than or equal to 3660"),
        ("conversation_days", -1095, "greater than or equal to 30"),
        ("conversation_days", "1095", "value is not a valid integer"),
        ("audit_days", True, "value is not a valid integer"),
        ("audit_days", None, "none is not an allowed value"),
        ("conversation_days", 1095.5, "write decimals in quotes"),
    ],
)
def test_a_bad_retention_is_refused_with_the_setting_named(
    tmp_path: Path, key: str, value: Any, problem: str
) -> None:
    data = bundled()
    data["retention"][key] = value
    message = expect_error(write(tmp_path / "negotiation.yml", data))
    assert f"  retention.{key}: " in message
    assert problem in message


def test_the_audit_trail_may_not_go_before_the_conversation(tmp_path: Path) -> None:
    data = bundled()
    data["retention"].update(conversation_days=1095, audit_days=365)
    message = expect_error(write(tmp_path / "negotiation.yml", data))
    assert "  retention: audit_days is shorter than conversation_days" in message
    data["retention"]["audit_days"] = 1095
    assert load_policy(write(tmp_path / "same.yml", data)).retention.audit_days == 1095


@pytest.mark.parametrize("change", ["missing", "unknown key"])
def test_the_retention_section_is_required_and_closed(tmp_path: Path, change: str) -> None:
    data = bundled()
    if change == "missing":
        del data["retention"]
        expected = "  retention: field required"
    else:
        data["retention"]["transcript_days"] = 30
        expected = "  retention.transcript_days: extra fields not permitted"
    assert expected in expect_error(write(tmp_path / "negotiation.yml", data))
