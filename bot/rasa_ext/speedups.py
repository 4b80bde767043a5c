"""Work Rasa 3.6 repeats on every message, done once instead.

Rasa checks every answer of the action server against a JSON schema with
`jsonschema.validate(result, schema)`. That function first validates the
*schema itself* against the JSON Schema metaschema, and builds a new
validator, on every call. Profiled under `make bench`, this took about a
third of the Rasa server's CPU time: more than the neural networks.

`apply()` replaces `RemoteAction._validate_action_result` with the same
check by a validator built once for Rasa's own schema (the same validator
class `jsonschema.validate` would choose), raising the same `ValidationError`
with Rasa's message. The Rasa server imports it through the tracker store
(`bot.rasa_ext.tracker_store`), which every profile configures.
"""

from __future__ import annotations

import functools
from typing import Any

from jsonschema import ValidationError
from jsonschema.protocols import Validator
from jsonschema.validators import validator_for
from rasa.core.actions.action import RemoteAction
from rasa.shared.constants import DOCS_BASE_URL


@functools.lru_cache(maxsize=1)
def action_result_validator() -> Validator:
    """A validator of action server answers, for Rasa's schema, checked once."""
    schema = RemoteAction.action_response_format_spec()
    cls = validator_for(schema)
    cls.check_schema(schema)
    return cls(schema)


def _validate_action_result(self: RemoteAction, result: dict[str, Any]) -> bool:
    try:
        action_result_validator().validate(result)
    except ValidationError as error:
        error.message += (
            ". Failed to validate Action server response from API, "
            "make sure your response from the Action endpoint is valid. "
            f"For more information about the format visit {DOCS_BASE_URL}/custom-actions"
        )
        raise
    return True


def apply() -> None:
    """Install the faster checks (idempotent)."""
    RemoteAction._validate_action_result = _validate_action_result  # type: ignore[method-assign]
