"""Who a request comes from, as far as the server can tell: the address the Live tabs and the
upload guard count per client.

A Space (or any reverse proxy) connects from a private or loopback address and forwards the
visitor's in `X-Forwarded-For`; the entry it added is the last one (earlier ones are whatever the
client wrote). A peer on a public address is the client itself, whatever it claims."""

from __future__ import annotations

import ipaddress


def client_address(peer: str | None, forwarded_for: str | None) -> str | None:
    """The client's address: the peer's, or behind a private/loopback proxy the address it
    forwarded last. None where neither is an address."""
    try:
        address = ipaddress.ip_address(peer or "")
    except ValueError:
        return None
    if address.is_private or address.is_loopback:
        forwarded = [part.strip() for part in (forwarded_for or "").split(",") if part.strip()]
        if forwarded:
            try:
                address = ipaddress.ip_address(forwarded[-1])
            except ValueError:
                return None
    return str(address)


def is_loopback(address: str | None) -> bool:
    return address is not None and ipaddress.ip_address(address).is_loopback
