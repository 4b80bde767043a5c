"""The action server finds exactly the actions the domain declares."""

from pathlib import Path

import yaml
from rasa_sdk.executor import ActionExecutor

ROOT = Path(__file__).resolve().parents[2]


def test_every_domain_action_is_served_and_nothing_else() -> None:
    executor = ActionExecutor()
    executor.register_package("actions")
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    # An entry is a name, or {name: {send_domain: true}} for those that read the domain.
    declared = {next(iter(a)) if isinstance(a, dict) else a for a in domain["actions"]}
    assert set(executor.actions) == declared


def test_only_the_form_validations_are_sent_the_domain() -> None:
    """They read their forms' required slots; no other action reads the domain."""
    domain = yaml.safe_load((ROOT / "domain.yml").read_text(encoding="utf-8"))
    with_domain = {
        name
        for a in domain["actions"]
        if isinstance(a, dict)
        for name, o in a.items()
        if o.get("send_domain")
    }
    assert with_domain == {
        "validate_verification_form",
        "validate_circumstances_form",
        "validate_promise_form",
    }
    for name in ("endpoints.yml", "endpoints.scale.yml"):
        endpoints = yaml.safe_load((ROOT / name).read_text(encoding="utf-8"))
        assert endpoints["action_endpoint"]["enable_selective_domain"] is True
