"""Which transport a client's own ``httpx`` client gets: decided here, and only here.

In order: an embedded server of this process is reached without a socket
(:mod:`._in_process`); a plain ``http://`` URL on a loopback host that no environment proxy
applies to gets the lean :mod:`._plain_http` transport (a local ``memlayer serve``); anything
else (``https://``, the hosted service, a proxy) gets httpx's own, as ``None`` tells
``httpx.Client`` to build it. A client given ``http_client=`` is never asked.
"""

from __future__ import annotations

import ipaddress

import httpx
from httpx._utils import URLPattern, get_environment_proxies

from . import _in_process
from ._plain_http import AsyncPlainHTTPTransport, PlainHTTPTransport

__all__ = ["async_transport", "plain_http_applies", "sync_transport"]


def sync_transport(base_url: str) -> httpx.BaseTransport | None:
    """The transport for a new ``httpx.Client`` of ``base_url`` (``None``: httpx's own)."""
    in_process = _in_process.sync_transport(base_url)
    if in_process is not None:
        return in_process
    return PlainHTTPTransport() if plain_http_applies(base_url) else None


def async_transport(base_url: str) -> httpx.AsyncBaseTransport | None:
    """The async twin of :func:`sync_transport`."""
    in_process = _in_process.async_transport(base_url)
    if in_process is not None:
        return in_process
    return AsyncPlainHTTPTransport() if plain_http_applies(base_url) else None


def plain_http_applies(base_url: str) -> bool:
    """Whether ``base_url`` is ``http://`` on a loopback host, with no proxy for it."""
    url = httpx.URL(base_url)
    if url.scheme != "http":
        return False
    host = url.host.lower().rstrip(".")
    if host != "localhost":
        try:
            if not ipaddress.ip_address(host).is_loopback:
                return False
        except ValueError:  # a name other than localhost
            return False
    return not _proxied(url)


def _proxied(url: httpx.URL) -> bool:
    """Whether a default ``httpx.Client`` (``trust_env=True``) would send ``url`` through a
    proxy of the environment (``HTTP_PROXY``, ``ALL_PROXY``, ``NO_PROXY``...): httpx's own
    reading of it, matched the way ``httpx.Client`` picks a mount (most specific first).

    Given a ``transport=``, httpx ignores those variables, so this must be asked first.
    """
    proxies = get_environment_proxies().items()
    mounts = sorted(((URLPattern(p), proxy) for p, proxy in proxies), key=lambda m: m[0])
    for pattern, proxy in mounts:
        if pattern.matches(url):
            return proxy is not None
    return False
