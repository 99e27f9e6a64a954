"""The ``memlayer`` command: run the local server and manage its API keys.

::

    memlayer serve [--db PATH] [--host 127.0.0.1] [--port 8377] [--console/--no-console]
    memlayer keys create [--plan free|unlimited] [--name NAME]   # prints only the key
    memlayer keys list | revoke KEY | suspend KEY | unsuspend KEY
    memlayer openapi [--output docs/openapi.json]
    memlayer mcp --user-id U --agent-id A [--http [--host H] [--port N]] [--embedded [--db PATH]]
    memlayer demo [--help]

Server modules are imported inside the commands, so ``memlayer --help`` stays fast and
works without the ``server`` extra.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import logging
import os
import socket
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

__all__ = ["main"]

_DB_HELP = "SQLite database file (default: $MEMLAYER_DB, else ~/.memlayer/memlayer.db)"


def _db_path(args: argparse.Namespace) -> Path:
    if args.db:
        return Path(args.db).expanduser()
    env = os.environ.get("MEMLAYER_DB")
    return Path(env).expanduser() if env else Path.home() / ".memlayer" / "memlayer.db"


def _database(args: argparse.Namespace) -> Any:
    from .server.db import Database

    db = Database(_db_path(args))
    db.open()
    return db


class _RedactArgs(logging.Filter):
    """Masks key-shaped text in uvicorn's log records, arguments included (the access log
    formats its arguments itself, so they must stay a tuple)."""

    def filter(self, record: logging.LogRecord) -> bool:
        from ._logging import redact

        if isinstance(record.msg, str):
            record.msg = redact(record.msg)
        if isinstance(record.args, tuple):
            record.args = tuple(redact(a) if isinstance(a, str) else a for a in record.args)
        return True


_UNSET: Any = object()


def _limit(text: str) -> int | None:
    if text == "none":
        return None
    if not text.isdigit():
        raise argparse.ArgumentTypeError("a whole number, or 'none' for no limit")
    return int(text)


def _is_loopback(host: str) -> bool:
    """Whether ``host`` only accepts connections from this machine (the console's default)."""
    import ipaddress

    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def _console_wanted(args: argparse.Namespace) -> bool:
    """``--console`` / ``--no-console`` if given, else on only when listening on loopback."""
    return _is_loopback(args.host) if args.console is None else bool(args.console)


def _serve(args: argparse.Namespace) -> int:
    import uvicorn

    from .server import ServerSettings, create_app
    from .server.protocol import guarded_protocol

    db_path = _db_path(args)
    console = _console_wanted(args)
    app = create_app(ServerSettings(db_path=db_path, synchronous=args.synchronous, console=console))
    app.state.db.open()  # a bad path or a too-new schema fails here, with a clear message
    family = socket.AF_INET6 if ":" in args.host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that say they are TCP.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((args.host, args.port))
    except OSError as exc:
        print(
            f"memlayer serve: cannot listen on {args.host}:{args.port}: {exc.strerror}",
            file=sys.stderr,
        )
        return 1
    port = sock.getsockname()[1]
    host = f"[{args.host}]" if family == socket.AF_INET6 else args.host
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        http=guarded_protocol(app.state.settings),  # header/body timeouts, header limits
    )
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        logging.getLogger(name).addFilter(_RedactArgs())
    print(
        f"MemLayer server listening on http://{host}:{port} (database: {db_path})",
        file=sys.stderr,
        flush=True,
    )
    if console:
        print(f"console: http://{host}:{port}/console", file=sys.stderr, flush=True)
        if not _is_loopback(args.host):
            print(
                "warning: the console is reachable from other machines, and a key typed into "
                "it travels as plain HTTP; serve it behind TLS or use --no-console",
                file=sys.stderr,
                flush=True,
            )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after a clean shutdown
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from .server import keys
    from .server.settings import DEFAULT_PLANS, Plan
    from .server.store import iso

    base = DEFAULT_PLANS.get(args.plan)
    if base is None and (args.memory_limit is _UNSET or args.request_limit is _UNSET):
        print(
            f"memlayer keys create: unknown plan {args.plan!r} (built in: {', '.join(DEFAULT_PLANS)}); "
            "a new plan needs --memory-limit and --request-limit",
            file=sys.stderr,
        )
        return 2
    base = base or Plan()

    plan = Plan(
        memories=base.memories if args.memory_limit is _UNSET else args.memory_limit,
        requests_per_day=base.requests_per_day
        if args.request_limit is _UNSET
        else args.request_limit,
    )
    db = _database(args)
    try:
        with db.write() as conn:
            key, key_id = keys.create_key(
                conn,
                plan_name=args.plan,
                plan=plan,
                name=args.name,
                now=iso(datetime.now(timezone.utc)),
            )
    finally:
        db.close()
    print(key)
    print(f"created {key_id} on plan {args.plan}; the key is shown only this once", file=sys.stderr)
    return 0


def _keys_list(args: argparse.Namespace) -> int:
    from .server import keys

    db = _database(args)
    try:
        with db.read() as conn:
            rows = keys.list_keys(conn)
    finally:
        db.close()
    table = [("ID", "KEY", "NAME", "PLAN", "STATUS", "CREATED")]
    table += [(k.id, k.hint, k.name or "", k.plan, k.status, k.created_at[:19] + "Z") for k in rows]
    widths = [max(len(r[i]) for r in table) for i in range(len(table[0]))]
    for row in table:
        print("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def _keys_change(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    from .server import keys
    from .server.store import iso

    db = _database(args)
    try:
        with db.write() as conn:
            if args.action == "revoke":
                key_id = keys.revoke_key(conn, args.key, now=iso(datetime.now(timezone.utc)))
            else:
                key_id = keys.set_suspended(conn, args.key, args.action == "suspend")
    except keys.KeyNotFoundError as exc:
        print(f"memlayer keys {args.action}: {exc}", file=sys.stderr)
        return 1
    finally:
        db.close()
    done = {
        "revoke": "revoked",
        "suspend": "suspended the account of",
        "unsuspend": "reinstated the account of",
    }
    print(f"{done[args.action]} {key_id}", file=sys.stderr)
    return 0


def _openapi(args: argparse.Namespace) -> int:
    from .server import render_openapi

    text = render_openapi()
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _mcp(args: argparse.Namespace) -> int:
    if args.db and not args.embedded:
        print("memlayer mcp: --db needs --embedded", file=sys.stderr)
        return 2
    from .mcp.command import McpOptions, run

    return run(
        McpOptions(
            user_id=args.user_id,
            agent_id=args.agent_id,
            http=args.http,
            host=args.host,
            port=args.port,
            embedded_db=_db_path(args) if args.embedded else None,
            call_timeout=args.timeout,
            log_level=args.log_level,
        )
    )


def _run_demo(argv: list[str]) -> int:
    try:
        demo = importlib.import_module("memlayer_integrations.demo")
    except ModuleNotFoundError as exc:
        if exc.name != "memlayer_integrations.demo":
            raise
        print(
            "memlayer demo: the demo is not part of this installation (memlayer_integrations.demo is missing)",
            file=sys.stderr,
        )
        return 1
    result = demo.main(argv)
    return result if isinstance(result, int) else 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="memlayer",
        description="Run the local MemLayer server and manage its API keys.",
        epilog="The database defaults to $MEMLAYER_DB, else ~/.memlayer/memlayer.db.",
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    db = argparse.ArgumentParser(add_help=False)
    db.add_argument("--db", metavar="PATH", help=_DB_HELP)

    serve = sub.add_parser("serve", parents=[db], help="run the server (until Ctrl-C)")
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=int, default=8377, help="port (default: 8377; 0 picks a free one)"
    )
    serve.add_argument(
        "--log-level", default="info", choices=["critical", "error", "warning", "info", "debug"]
    )
    serve.add_argument(
        "--no-access-log", action="store_true", help="do not log one line per request"
    )
    serve.add_argument(
        "--synchronous",
        default="NORMAL",
        choices=["NORMAL", "FULL"],
        help="NORMAL keeps acknowledged writes through a server crash; FULL also through a power cut (slower)",
    )
    serve.add_argument(
        "--console",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="serve the web console at /console (default: only when listening on loopback)",
    )
    serve.set_defaults(func=_serve)

    keys = sub.add_parser("keys", help="create, list, revoke, suspend API keys").add_subparsers(
        title="key commands", metavar="ACTION"
    )
    create = keys.add_parser(
        "create", parents=[db], help="create an account and print its key (only the key on stdout)"
    )
    create.add_argument(
        "--plan",
        default="free",
        help="free (500 memories, 100 requests a day) or unlimited; default: free",
    )
    create.add_argument("--name", help="a label shown by `keys list`")
    create.add_argument(
        "--memory-limit",
        type=_limit,
        default=_UNSET,
        metavar="N|none",
        help="override the plan's memory limit",
    )
    create.add_argument(
        "--request-limit",
        type=_limit,
        default=_UNSET,
        metavar="N|none",
        help="override the plan's requests per UTC day",
    )
    create.set_defaults(func=_keys_create)
    keys.add_parser(
        "list", parents=[db], help="list keys (ids and masked keys, never the keys)"
    ).set_defaults(func=_keys_list)
    for action, text in (
        ("revoke", "revoke a key for good"),
        ("suspend", "suspend the key's account (403)"),
        ("unsuspend", "reinstate a suspended account"),
    ):
        p = keys.add_parser(action, parents=[db], help=text)
        p.add_argument("key", help="the key id shown by `keys list` (key_...) or the key itself")
        p.set_defaults(func=_keys_change, action=action)

    openapi = sub.add_parser(
        "openapi", help="print the OpenAPI document (or write it with --output)"
    )
    openapi.add_argument(
        "--output", "-o", metavar="PATH", help="e.g. docs/openapi.json (default: stdout)"
    )
    openapi.set_defaults(func=_openapi)

    mcp = sub.add_parser(
        "mcp",
        parents=[db],
        help="an MCP server with memory tools (stdio, or streamable HTTP with --http)",
        description="Key from $MEMLAYER_API_KEY, URL from $MEMLAYER_BASE_URL.",
    )
    mcp.add_argument("--user-id", help="whose memories (default: $MEMLAYER_USER_ID)")
    mcp.add_argument("--agent-id", help="which agent's memories (default: $MEMLAYER_AGENT_ID)")
    mcp.add_argument("--http", action="store_true", help="serve streamable HTTP at /mcp")
    mcp.add_argument("--host", default="127.0.0.1", help="with --http (default: 127.0.0.1)")
    mcp.add_argument(
        "--port", type=int, default=8765, help="with --http (default: 8765; 0 picks a free one)"
    )
    mcp.add_argument(
        "--embedded",
        action="store_true",
        help="run a local MemLayer server in this process, on --db (no key or URL needed)",
    )
    mcp.add_argument(
        "--timeout", type=float, default=20.0, help="seconds a tool call may take (default: 20)"
    )
    mcp.add_argument(
        "--log-level", default="warning", choices=["critical", "error", "warning", "info", "debug"]
    )
    mcp.set_defaults(func=_mcp)

    # Listed for `memlayer --help` only: main() hands `memlayer demo ...` to the demo's own parser.
    sub.add_parser("demo", help="a guided demo on a temporary local server (memlayer demo --help)")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memlayer`` console script; returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        # The demo parses its own options (``memlayer demo --help`` shows them).
        return _run_demo(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    try:
        code: int = args.func(args)
        return code
    except ImportError as exc:
        print(f"memlayer: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
