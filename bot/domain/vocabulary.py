"""The codes every layer shares: what is stored in the database, named in the
policy file and read by the console. The database's CHECK constraints and the
policy's validation are built from these tuples, so a code exists once."""

from __future__ import annotations

#: Products an account can be, as stored in `accounts.product`.
PRODUCTS = ("credit_card", "consumer_loan", "mortgage", "car_loan")

#: Plans an agreement can record, as stored in `agreements.plan`.
PLANS = (
    "personalized_installment",
    "loan_extension",
    "fee_waiver",
    "lump_sum_settlement",
    "promise_to_pay",
)

#: Why a conversation went to a person, as stored in `handoff_cases.reason`.
HANDOFF_REASONS = (
    "distress",
    "request_human",
    "repeated_fallback",
    "dispute",
    "complaint",
    "beyond_authority",
    "offers_declined",
    "verification_failed",
)
#: How staff closed a case, as stored in `handoff_cases.outcome`.
HANDOFF_OUTCOMES = (
    "plan_agreed",
    "promise_to_pay",
    "referred_to_collections",
    "dispute_logged",
    "no_contact",
    "other",
)
HANDOFF_STATUSES = ("waiting", "claimed", "closed")
STAFF_ROLES = ("negotiator", "supervisor")
#: Why a debtor's account went to the collections department.
REFERRAL_REASONS = ("refused_payment", "declined_negotiator", "staff_referral")
