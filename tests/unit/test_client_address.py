"""The console's client address: `X-Forwarded-For` only from trusted proxies."""

from __future__ import annotations

import ipaddress

import pytest

from bot.console.client_address import (
    client_address,
    parse_trusted_proxies,
    trusted_proxies,
)

NGINX = parse_trusted_proxies("10.0.0.2")
PROXIES = parse_trusted_proxies(" 10.0.0.0/24, 192.168.1.5 ,fd00::/8,")


def test_parsing_the_setting() -> None:
    assert parse_trusted_proxies("") == ()
    assert parse_trusted_proxies(" , ") == ()
    assert PROXIES == (
        ipaddress.ip_network("10.0.0.0/24"),
        ipaddress.ip_network("192.168.1.5/32"),
        ipaddress.ip_network("fd00::/8"),
    )
    assert parse_trusted_proxies("10.0.0.7/24") == (ipaddress.ip_network("10.0.0.0/24"),)
    for bad in ("nginx", "10.0.0.0/33", "10.0.0.1;10.0.0.2", "*"):
        with pytest.raises(ValueError, match="CONSOLE_TRUSTED_PROXIES"):
            parse_trusted_proxies(bad)


def test_without_trusted_proxies_the_header_is_ignored() -> None:
    assert client_address("10.0.0.2", ["203.0.113.7"], ()) == "10.0.0.2"
    assert client_address("10.0.0.2", [], ()) == "10.0.0.2"
    assert client_address(None, ["203.0.113.7"], NGINX) is None


def test_a_request_from_elsewhere_cannot_choose_its_address() -> None:
    # Straight to the console, past nginx: the header is the client's own.
    assert client_address("198.51.100.9", ["203.0.113.7"], NGINX) == "198.51.100.9"
    assert client_address("10.0.0.3", ["203.0.113.7"], NGINX) == "10.0.0.3"


@pytest.mark.parametrize(
    ("forwarded_for", "expected"),
    [
        (["203.0.113.7"], "203.0.113.7"),
        (["203.0.113.7 "], "203.0.113.7"),
        # What the client wrote itself is left of what nginx appended.
        (["1.1.1.1, 203.0.113.7"], "203.0.113.7"),
        (["1.1.1.1", "203.0.113.7"], "203.0.113.7"),
        (["10.0.0.2, 203.0.113.7"], "203.0.113.7"),
        # No header: the proxy itself.
        ([], "10.0.0.2"),
        # Garbage where nginx's entry should be: the proxy, nothing further left.
        (["203.0.113.7, not-an-address"], "10.0.0.2"),
        (["203.0.113.7,"], "10.0.0.2"),
        (["2001:db8::1"], "2001:db8::1"),
        (["::ffff:203.0.113.7"], "203.0.113.7"),
    ],
)
def test_behind_one_proxy_the_right_most_address_is_the_client(
    forwarded_for: list[str], expected: str
) -> None:
    assert client_address("10.0.0.2", forwarded_for, NGINX) == expected


def test_behind_a_chain_of_trusted_proxies() -> None:
    # client -> 192.168.1.5 (load balancer) -> 10.0.0.9 (nginx) -> console
    header = ["6.6.6.6, 203.0.113.7, 192.168.1.5"]
    assert client_address("10.0.0.9", header, PROXIES) == "203.0.113.7"
    assert client_address("10.0.0.9", ["10.0.0.4, 192.168.1.5"], PROXIES) == "10.0.0.4"
    assert client_address("::ffff:10.0.0.9", ["203.0.113.7"], PROXIES) == "203.0.113.7"
    assert client_address("fd00::9", ["2001:db8::1, fd00::1"], PROXIES) == "2001:db8::1"


def test_the_setting_is_read_from_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CONSOLE_TRUSTED_PROXIES", raising=False)
    assert trusted_proxies() == ()
    monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", "10.0.0.2")
    assert trusted_proxies() == NGINX
    monkeypatch.setenv("CONSOLE_TRUSTED_PROXIES", "nginx")
    with pytest.raises(ValueError):
        trusted_proxies()
