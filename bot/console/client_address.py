"""The address a console request comes from, behind trusted reverse proxies or not.

Sign-in is rate-limited and audited per address (`bot.store.staff.authenticate`).
Behind nginx every request comes from nginx, so the client's address is taken
from `X-Forwarded-For`, but only when the request comes from a proxy listed in
`CONSOLE_TRUSTED_PROXIES` (comma-separated IP addresses or CIDR networks; unset
or empty: none, and the header is ignored). Anyone can send the header, so it
is read from the right: each trusted proxy appends the address it got the
request from, and the right-most address that is not a trusted proxy is the
client (what a client wrote itself lies further left and is ignored).
"""

from __future__ import annotations

import functools
import ipaddress
import os
from collections.abc import Iterable, Sequence

from aiohttp import web

TRUSTED_PROXIES_VARIABLE = "CONSOLE_TRUSTED_PROXIES"

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_trusted_proxies(text: str) -> tuple[Network, ...]:
    """The networks of a comma-separated list of IP addresses and CIDRs; ValueError if bad."""
    networks = []
    for entry in text.split(","):
        entry = entry.strip()
        if not entry:
            continue
        try:
            networks.append(ipaddress.ip_network(entry, strict=False))
        except ValueError:
            raise ValueError(
                f"{TRUSTED_PROXIES_VARIABLE}: {entry!r} is not an IP address or network"
            ) from None
    return tuple(networks)


def _address(text: str) -> Address | None:
    try:
        address = ipaddress.ip_address(text.strip())
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped  # what a dual-stack socket reports for IPv4 peers
    return address


def _trusted(address: Address, proxies: Iterable[Network]) -> bool:
    return any(address in network for network in proxies)


def client_address(
    remote: str | None, forwarded_for: Sequence[str], proxies: Sequence[Network]
) -> str | None:
    """The client's address: `remote` unless it is a trusted proxy, then from `forwarded_for`.

    `forwarded_for` holds the values of the request's `X-Forwarded-For` headers,
    in order. Read from the right, the first address that is not a trusted proxy
    is the client's. Where the list ends, or has something that is no address,
    the last trusted hop read is the answer: nothing left of it can be believed.
    """
    peer = _address(remote) if remote else None
    if peer is None or not _trusted(peer, proxies):
        return remote
    hops = [hop for value in forwarded_for for hop in value.split(",")]
    client = peer
    for hop in reversed(hops):
        address = _address(hop)
        if address is None:
            break
        client = address
        if not _trusted(address, proxies):
            break
    return str(client)


@functools.lru_cache(maxsize=4)
def _proxies_of(text: str) -> tuple[Network, ...]:
    return parse_trusted_proxies(text)


def trusted_proxies() -> tuple[Network, ...]:
    """The proxies `CONSOLE_TRUSTED_PROXIES` names (ValueError if it is malformed)."""
    return _proxies_of(os.environ.get(TRUSTED_PROXIES_VARIABLE, ""))


def client_address_of(request: web.Request) -> str | None:
    """The address the request comes from, through the trusted proxies."""
    return client_address(
        request.remote, request.headers.getall("X-Forwarded-For", []), trusted_proxies()
    )
