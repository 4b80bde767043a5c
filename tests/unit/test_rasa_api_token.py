"""The console's credential for the Rasa HTTP API: a short-lived JWT in a header.

Checked as Rasa's `--jwt-secret` checks it (PyJWT, HS256, `exp`), and never in
the URL; the Rasa command line takes the secret.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import jwt
import pytest
from rasa.cli.arguments import run

from bot.console.rasa_api import TOKEN_LIFETIME, RasaClient, api_token
from bot.tools.stack import rasa_server_args

SECRET = "a-jwt-secret-of-at-least-thirty-two-bytes"


def test_the_token_is_what_rasas_requires_auth_accepts() -> None:
    payload = jwt.decode(api_token(SECRET), SECRET, algorithms=["HS256"])
    assert payload["user"] == {"username": "bank-console", "role": "admin"}
    assert 0 < payload["exp"] - time.time() <= TOKEN_LIFETIME <= 60


def test_an_old_token_has_expired() -> None:
    old = api_token(SECRET, now=time.time() - 3600)
    with pytest.raises(jwt.ExpiredSignatureError):
        jwt.decode(old, SECRET, algorithms=["HS256"])


def test_another_secret_does_not_verify_it() -> None:
    with pytest.raises(jwt.InvalidSignatureError):
        jwt.decode(api_token(SECRET), "another-secret-of-thirty-two-bytes!!", algorithms=["HS256"])


def test_no_token_without_a_secret() -> None:
    with pytest.raises(ValueError, match="RASA_JWT_SECRET"):
        api_token("")


def test_the_credential_goes_in_the_header_never_in_the_url() -> None:
    client = RasaClient("http://127.0.0.1:5005/", SECRET)
    url = client._url("wechat:o/1 ?", "tracker/events", output_channel="latest")
    assert str(url) == (
        "http://127.0.0.1:5005/conversations/wechat:o%2F1%20%3F/tracker/events"
        "?output_channel=latest"
    )
    scheme, token = client._headers()["Authorization"].split(" ")
    assert scheme == "Bearer" and jwt.decode(token, SECRET, algorithms=["HS256"])
    assert RasaClient("http://127.0.0.1:5005", "")._headers() == {}


def test_rasa_takes_the_jwt_secret_and_the_token_only_when_given() -> None:
    model = Path("models/current.tar.gz")
    jwt_only = rasa_server_args(model, 5005, "endpoints.yml", jwt_secret=SECRET)
    assert jwt_only[-4:] == ["--enable-api", f"--jwt-secret={SECRET}", "--jwt-method", "HS256"]
    assert not any(arg.startswith("--auth-token") for arg in jwt_only)
    both = rasa_server_args(model, 5005, "endpoints.yml", "token", SECRET)
    assert both.count("--enable-api") == 1 and "--auth-token=token" in both
    assert "--enable-api" not in rasa_server_args(model, 5005, "endpoints.yml")


def test_a_secret_that_begins_with_a_dash_reaches_rasa_as_its_value() -> None:
    """`secrets.token_urlsafe` begins with "-" once in 64: Rasa must still start."""
    args = rasa_server_args(Path("m.tar.gz"), 5005, "e.yml", "-token", "-Secret")
    parser = argparse.ArgumentParser()
    run.add_server_arguments(parser)
    parsed, _ = parser.parse_known_args(args[2:])
    assert (parsed.jwt_secret, parsed.auth_token) == ("-Secret", "-token")


def test_a_web_chat_conversation_id_is_sent_as_rasa_matches_it() -> None:
    """Rasa does not decode the path: "webchat%3A…" would be another conversation."""
    client = RasaClient("http://127.0.0.1:5005", SECRET)
    url = client._url("webchat:9bcded98", "tracker/events")
    assert url.raw_path == "/conversations/webchat:9bcded98/tracker/events"
