"""Who a request comes from, as the per-address rules see it.

- `client_address`: the TCP peer, or, when the peer is a trusted proxy, the right-most
  ``X-Forwarded-For`` hop that is not itself one (the join limiter's and the answer share's
  address);
- `party_address`: the same, except that a loopback peer forwarding for someone is a reverse
  proxy on this host, whose last hop is taken (the evaluation quorum's distinct parties);
- `address_key`: what a per-address limit counts an address under. An IPv4 address counts as
  itself, an IPv6 address as its /64 network: one subscriber is usually given a whole /64, so a
  limit per IPv6 address is one a single host multiplies at will by changing its interface
  identifier. An IPv4-mapped IPv6 address (``::ffff:a.b.c.d``, what a dual-stack socket reports
  for an IPv4 peer) counts as its IPv4 address; anything unparsable (a Unix socket's
  ``"unknown"``) as given;
- `address_group`: `address_key`, or None for loopback (exempt) and unparsable addresses.
"""

from __future__ import annotations

import ipaddress

IPV6_PREFIX = 64
"""The IPv6 prefix length one client is assumed to control (RFC 6177's usual end-site /64)."""


def _forwarded_hops(forwarded_for: str) -> list[str]:
    """The hops of an X-Forwarded-For value, ports stripped (``1.2.3.4:80``, ``[::1]:80``)."""
    hops = []
    for raw in forwarded_for.split(","):
        hop = raw.strip()
        if hop.startswith("[") and "]" in hop:
            hop = hop[1:hop.index("]")]
        elif hop.count(":") == 1:
            hop = hop.split(":", 1)[0]
        if hop:
            hops.append(hop)
    return hops


def client_address(peer: str | None, forwarded_for: str | None,
                   trusted: frozenset[str]) -> str:
    """The address a request comes from: `peer`, or the right-most hop of `forwarded_for` not in
    `trusted` when `peer` is (the left-most when every hop is)."""
    address = peer or "unknown"
    if not forwarded_for or address not in trusted:
        return address
    hops = _forwarded_hops(forwarded_for)
    for hop in reversed(hops):
        if hop not in trusted:
            return hop
    return hops[0] if hops else address


def parse_address(address: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    """`address` (an IPv6 zone id dropped) as an IP address, an IPv4-mapped IPv6 address as its
    IPv4 address; None when it is not one."""
    try:
        ip = ipaddress.ip_address(address.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return ip.ipv4_mapped
    return ip


def party_address(peer: str | None, forwarded_for: str | None,
                  trusted: frozenset[str]) -> str:
    """The address a session counts under for the evaluation quorum's distinct parties:
    `client_address`, except that a loopback peer that forwards an X-Forwarded-For it is not
    trusted for is a reverse proxy on this host, so its last hop (the address that proxy saw)
    is taken. Only a process on this host can connect from loopback, so the last hop is the
    proxy's own word; without this every volunteer behind a local proxy would look like
    127.0.0.1, which the quorum exempts, and two tabs of one person could confirm each other."""
    address = client_address(peer, forwarded_for, trusted)
    if not forwarded_for or address != (peer or "unknown"):
        return address
    ip = parse_address(address)
    if ip is None or not ip.is_loopback:
        return address
    hops = _forwarded_hops(forwarded_for)
    return hops[-1] if hops else address


def ip_key(ip: ipaddress.IPv4Address | ipaddress.IPv6Address) -> str:
    """`address_key` of a parsed address (`parse_address`)."""
    if isinstance(ip, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network((ip, IPV6_PREFIX), strict=False))
    return str(ip)


def address_key(address: str) -> str:
    """What a per-address limit counts `address` under (module docstring): the IPv4 address,
    the IPv6 address's /64 network (``2001:db8:1:2::/64``), or `address` unchanged."""
    ip = parse_address(address)
    return address if ip is None else ip_key(ip)


def address_group(address: str | None) -> str | None:
    """`address_key` of `address`, or None for loopback addresses (exempt) and for no or an
    unparsable address (a Unix socket, "unknown")."""
    ip = parse_address(address) if address else None
    return None if ip is None or ip.is_loopback else ip_key(ip)
