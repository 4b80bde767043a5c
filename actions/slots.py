"""The names of the slots and stages the actions read and set (see domain.yml)."""

from __future__ import annotations

VERIFIED = "verified"
DEBTOR_ID = "debtor_id"
#: The request made before verification, answered after it.
PENDING_REQUEST = "pending_request"
#: Someone writes for the debtor: never verified here.
ACTING_FOR_ANOTHER = "acting_for_another"
IDENTITY_SLOTS = ("debtor_name", "id_last4", "phone")
REQUESTED_SLOT = "requested_slot"

FORM = "circumstances_form"
#: Where the negotiation stands: None, "offered", "terms" …
STAGE = "negotiation_stage"
OFFERS = "offers"
SELECTED = "selected_offer"
PROMISE_DATE = "promise_date"
PROMISE_AMOUNT = "promise_amount"
HANDOFF_REFERENCE = "handoff_reference"
