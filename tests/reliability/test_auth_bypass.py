"""Authentication cannot be bypassed.

Every route of the app but health and the docs needs a valid key: the route table is walked,
so a route added later is covered without touching this file. The key is read from the
``X-API-Key`` header only (not the query string, a cookie, ``Authorization`` or the body),
exactly as sent (no case folding, no inner white space, no second header), and a revoked or
suspended key is refused. Checking a key takes the same steps however much of it a guess got
right: that is pinned structurally (what is compared, and how), never by a stopwatch.
"""

from __future__ import annotations

import hmac
from collections.abc import Iterator
from types import SimpleNamespace

import httpx
import pytest
from fastapi.testclient import TestClient
from starlette.routing import Mount, Route

from memlayer_integrations.server import ServerSettings, create_app
from memlayer_integrations.server import keys as keys_module
from memlayer_integrations.server.errors import ApiError
from memlayer_integrations.server.service import Service
from memlayer_integrations.server.settings import Plan
from memlayer_integrations.server.store import iso
from tests._support import send_raw
from tests.server._helpers import assert_error


def test_missing_and_empty_key(anon):
    assert (
        assert_error(anon.get("/usage"), 401, "invalid_api_key")["error"]["message"]
        == "invalid or missing API key"
    )
    assert_error(anon.get("/usage", headers={"X-API-Key": ""}), 401, "invalid_api_key")


@pytest.mark.parametrize(
    "key",
    ["sk_live_abc", "ml_test_abc", "ml_live_", "ml_live_abc-def", "ml_live_äbc", "ML_LIVE_abc"],
)
def test_wrong_format(anon, key):
    response = anon.get("/usage", headers={"X-API-Key": key.encode("utf-8")})
    assert assert_error(response, 401, "wrong_key_format")["error"]["message"] == "wrong key format"


def test_unknown_key_of_the_right_format(anon):
    assert_error(
        anon.get("/usage", headers={"X-API-Key": "ml_live_" + "a" * 40}), 401, "invalid_api_key"
    )


def test_auth_comes_before_validation(anon):
    assert_error(anon.post("/memories", content=b"{not json"), 401, "invalid_api_key")


@pytest.mark.parametrize("header", ["x-api-key", "X-API-KEY", "X-Api-Key"])
def test_header_name_is_case_insensitive(anon, api_key, header):
    assert anon.get("/usage", headers={header: api_key}).status_code == 200


def test_key_in_query_string_is_not_read(anon, api_key):
    for name in ("api_key", "X-API-Key", "key"):
        assert_error(anon.get("/usage", params={name: api_key}), 401, "invalid_api_key")


def test_two_key_headers_are_refused(anon, api_key):
    response = anon.get("/usage", headers=[("X-API-Key", api_key), ("X-API-Key", api_key)])
    assert_error(response, 401, "invalid_api_key")


def test_revoked_key(local_server, anon):
    key = local_server.create_key()
    assert anon.get("/usage", headers={"X-API-Key": key}).status_code == 200
    local_server.revoke_key(key)
    assert_error(anon.get("/usage", headers={"X-API-Key": key}), 401, "invalid_api_key")


def test_suspended_then_unsuspended(local_server, anon):
    key = local_server.create_key()
    local_server.suspend_key(key)
    body = assert_error(anon.get("/usage", headers={"X-API-Key": key}), 403, "account_suspended")
    assert body["error"]["message"] == "account suspended"
    local_server.unsuspend_key(key)
    assert anon.get("/usage", headers={"X-API-Key": key}).status_code == 200


def test_docs_and_openapi_need_no_key(base_url):
    assert httpx.get(base_url + "/openapi.json").json()["info"]["title"] == "MemLayer"
    docs = httpx.get(base_url + "/docs")
    assert docs.status_code == 200 and "swagger" in docs.text.lower()
    assert docs.headers["x-request-id"].startswith("req_")


# -- every route of the app ------------------------------------------------------------------

#: The routes that answer without a key, and only these: health, the API documentation and
#: the console's page and files (which hold no data: the console signs in with a key).
OPEN = {
    ("GET", "/v1/health"),
    *((m, "/openapi.json") for m in ("GET", "HEAD")),
    *(("GET", p) for p in ("/docs", "/docs/static/{name}", "/console", "/console/static/{name}")),
}
MEMORY_ID = "mem_" + "0" * 32
#: A file each static route serves, for the ``{name}`` in its path.
STATIC_FILES = {"/docs/static/": "swagger-ui.css", "/console/static/": "console.js"}


def routes(entries: list, prefix: str = "") -> Iterator[tuple[str, str]]:
    """Every (method, path) the app routes, through included routers and mounts."""
    for route in entries:
        if isinstance(route, Route):
            for method in sorted(route.methods or ()):
                yield method, prefix + route.path
        elif isinstance(route, Mount):
            yield from routes(route.routes, prefix + route.path)
        elif hasattr(route, "original_router"):  # FastAPI's included router
            yield from routes(route.original_router.routes, prefix + route.include_context.prefix)
        else:
            raise AssertionError(
                f"a route of an unknown kind: {route!r}; teach routes() to walk it"
            )


@pytest.fixture(scope="module")
def app_client(tmp_path_factory) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """An app on its own database, and keys in every state: live, revoked, suspended."""
    app = create_app(ServerSettings(db_path=tmp_path_factory.mktemp("auth") / "auth.db"))
    made = {}
    with TestClient(app) as client:
        with app.state.db.write() as conn:
            for state in ("live", "revoked", "suspended"):
                made[state], _ = keys_module.create_key(
                    conn,
                    plan_name="unlimited",
                    plan=Plan(),
                    name=None,
                    now=iso(app.state.settings.clock()),
                )
            keys_module.revoke_key(conn, made["revoked"], now=iso(app.state.settings.clock()))
            keys_module.set_suspended(conn, made["suspended"], True)
        yield client, made


APP_ROUTES = sorted(set(routes(create_app(ServerSettings(db_path="unused.db")).routes)))


def send(client: TestClient, method: str, path: str, key: str | None) -> httpx.Response:
    headers = {"X-API-Key": key} if key is not None else {}
    body = (
        b'{"content": "x", "user_id": "u", "agent_id": "a"}'
        if method in ("POST", "PATCH")
        else None
    )
    for folder, name in STATIC_FILES.items():
        if path.startswith(folder):
            path = path.replace("{name}", name)
    return client.request(
        method,
        path.replace("{memory_id}", MEMORY_ID),
        headers=headers,
        content=body,
        params={"user_id": "u"},
    )


def test_the_open_routes_are_exactly_health_and_the_docs(app_client):
    client, _ = app_client
    assert len(APP_ROUTES) >= 15  # the walk found the API, not only the docs
    open_routes = {(m, p) for m, p in APP_ROUTES if send(client, m, p, None).status_code != 401}
    assert open_routes == OPEN
    for method, path in OPEN:
        assert send(client, method, path, None).status_code == 200


@pytest.mark.parametrize(
    ("method", "path"),
    [r for r in APP_ROUTES if r not in OPEN],
    ids=[f"{m} {p}" for m, p in APP_ROUTES if (m, p) not in OPEN],
)
def test_every_other_route_needs_a_live_key(app_client, method, path):
    client, made = app_client
    assert_error(send(client, method, path, None), 401, "invalid_api_key")
    assert_error(send(client, method, path, "ml_live_" + "0" * 40), 401, "invalid_api_key")
    assert_error(send(client, method, path, "sk-" + made["live"]), 401, "wrong_key_format")
    assert_error(send(client, method, path, made["revoked"]), 401, "invalid_api_key")
    assert_error(send(client, method, path, made["suspended"]), 403, "account_suspended")
    assert send(client, method, path, made["live"]).status_code not in (
        401,
        403,
    )  # the key does open it


# -- what counts as the key ------------------------------------------------------------------


def raw_request(url: str, header_lines: list[bytes], body: bytes = b"") -> int:
    """Send header lines byte for byte (httpx would refuse or normalize some); the status."""
    head = b"\r\n".join(
        [
            b"POST /v1/memories/search HTTP/1.1",
            b"Host: x",
            *header_lines,
            b"Content-Type: application/json",
        ]
    )
    return int(send_raw(url, head, body).split(b" ", 2)[1])


def tricks(key: str) -> dict[str, list[bytes]]:
    k = key.encode()
    return {
        "underscore-name": [
            b"X_API_KEY: " + k
        ],  # CGI would map it to the same variable; we must not
        "authorization-bearer": [b"Authorization: Bearer " + k],
        "cookie": [b"Cookie: X-API-Key=" + k],
        "inner-space": [b"X-API-Key: " + k[:12] + b" " + k[12:]],
        "value-upper-case": [b"X-API-Key: " + k.upper()],
        "value-swapped-case": [b"X-API-Key: " + k.swapcase()],
        "prefix-upper-case": [b"X-API-Key: ML_LIVE_" + k[8:]],
        "truncated": [b"X-API-Key: " + k[:-1]],
        "extended": [b"X-API-Key: " + k + b"0"],
        "comma-joined-twice": [b"X-API-Key: " + k + b", " + k],
        "two-headers": [b"X-API-Key: " + k, b"x-api-key: " + k],
        "empty-then-key": [b"X-API-Key: ", b"X-API-Key: " + k],
        "folded-mid-key": [b"X-API-Key: " + k[:12], b" " + k[12:]],  # obs-fold cannot splice a key
        "space-before-colon": [b"X-API-Key : " + k],
        "nul-after-key": [b"X-API-Key: " + k + b"\x00"],
        "key-in-body-only": [],
    }


@pytest.mark.parametrize("trick", list(tricks("ml_live_x")))
def test_header_tricks_are_refused(local_server, api_key, trick):
    body = b'{"query": "x", "user_id": "u", "api_key": "%s"}' % api_key.encode()
    # 401 from the server, or 400 from the HTTP parser for a malformed header: never in.
    assert raw_request(local_server.url, tricks(api_key)[trick], body) in (400, 401)


def test_white_space_around_the_value_is_not_part_of_it(local_server, api_key):
    # HTTP drops optional white space around a field value (RFC 9110 5.5): the same key, not a trick.
    body = b'{"query": "x", "user_id": "u"}'
    assert (
        raw_request(local_server.url, [b"X-API-Key: \t " + api_key.encode() + b" \t"], body) == 200
    )
    assert (
        raw_request(local_server.url, [b"X-API-Key: " + api_key.encode()], body) == 200
    )  # the control


# -- how a key is checked ------------------------------------------------------------------


class NoCompare(str):
    """A key that fails the test if anything compares it as a string (``==`` stops at the
    first differing character, so its time says how much of a guess was right)."""

    def _compared(self, *args: object) -> bool:
        raise AssertionError("the API key was compared as a string")

    __eq__ = __ne__ = __lt__ = __le__ = __gt__ = __ge__ = __contains__ = _compared  # type: ignore[assignment]
    startswith = endswith = find = index = _compared  # type: ignore[assignment]
    __hash__ = str.__hash__


@pytest.fixture
def service(tmp_path) -> Iterator[tuple[Service, list[str]]]:
    app = create_app(ServerSettings(db_path=tmp_path / "keys.db"))
    with app.state.db.write() as conn:
        made = [
            keys_module.create_key(conn, plan_name="free", plan=Plan(), name=None, now="t")[0]
            for _ in range(3)
        ]
    yield app.state.service, made
    app.state.db.close()


@pytest.fixture
def digests_compared(monkeypatch) -> list[tuple[bytes, bytes]]:
    """Records every comparison the keys module makes (it makes them with hmac.compare_digest)."""
    compared: list[tuple[bytes, bytes]] = []

    def compare_digest(a: bytes, b: bytes) -> bool:
        compared.append((a, b))
        return hmac.compare_digest(a, b)

    monkeypatch.setattr(keys_module, "hmac", SimpleNamespace(compare_digest=compare_digest))
    return compared


def near_misses(key: str) -> list[str]:
    """Guesses that share ever more of the key: the prefix, half of it, all but the last char."""
    return [
        key[:n] + ("A" if key[n] != "A" else "B") + key[n + 1 :]
        for n in (8, len(key) // 2, len(key) - 1)
    ]


def refused(svc: Service, key: str) -> bool:
    try:
        svc.authenticate([key])
    except ApiError as exc:
        return exc.code == "invalid_api_key"
    return False


def test_only_salted_digests_are_compared_and_in_constant_time(service, digests_compared):
    svc, (key, *_) = service
    assert svc.authenticate([NoCompare(key)]).plan == "free"  # NoCompare: never with ==
    assert all(refused(svc, NoCompare(guess)) for guess in near_misses(key))
    assert digests_compared  # hmac.compare_digest, on two SHA-256 digests of equal length
    assert all(len(a) == len(b) == 32 for a, b in digests_compared)


def test_the_database_is_searched_by_a_digest_of_the_whole_key(service):
    svc, (key, *_) = service
    statements: list[str] = []
    with svc.db.read() as conn:
        conn.set_trace_callback(statements.append)
        try:
            for guess in [key, *near_misses(key)]:
                keys_module.authenticate(conn, guess)
        finally:
            conn.set_trace_callback(None)
    # SQLite's index compares a digest of the whole guess, which shares nothing with the key's
    # however much of the key the guess got right; the key itself never reaches SQL.
    assert len(statements) == 4
    for statement, guess in zip(statements, [key, *near_misses(key)], strict=True):
        assert keys_module._lookup(guess) in statement
        assert guess not in statement and guess[8:20] not in statement


def test_every_candidate_is_compared_whichever_matches(service, digests_compared, monkeypatch):
    # Give every key the same lookup value: the check must not stop at the first match.
    svc, made = service
    with svc.db.write() as conn:
        conn.execute("UPDATE api_keys SET lookup = 'same'")
    monkeypatch.setattr(keys_module, "_lookup", lambda key: "same")
    for key in made:
        digests_compared.clear()
        assert svc.authenticate([key]).plan == "free"
        assert len(digests_compared) == len(made)
    digests_compared.clear()
    assert refused(svc, near_misses(made[0])[-1])
    assert len(digests_compared) == len(made)
