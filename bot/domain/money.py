"""Money in the negotiation engine: `Decimal` yuan, rounded to the cent."""

from __future__ import annotations

from decimal import ROUND_CEILING, ROUND_DOWN, Decimal

CENT = Decimal("0.01")
ZERO = Decimal("0.00")


def cents(amount: Decimal) -> Decimal:
    """`amount` rounded down to the cent (in the debtor's favour for waivers, limits)."""
    return amount.quantize(CENT, rounding=ROUND_DOWN)


def cents_up(amount: Decimal) -> Decimal:
    return amount.quantize(CENT, rounding=ROUND_CEILING)
