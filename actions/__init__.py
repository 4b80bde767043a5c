"""Custom actions served by the rasa-sdk action server, one module per flow.

`context` (database, policy, clock), `slots` (names), `access` (which debtor
this conversation may see) and `formatting` are shared; `verification`,
`routing` (the request made before verifying), `circumstances`, `offers`,
`agreement`, `promise`, `schedule`, `account`, `escalation` are the flows.
"""

from bot.domain.policy import current_policy

#: The policy is validated when the action server starts, not at the first offer.
current_policy()
