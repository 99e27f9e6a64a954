"""``memlayer export`` / ``memlayer import``: a server's data as JSON lines, and back.

The dump is the backup format and the way to move a server to another database. The format
is documented in ``docs/export-format.md``; in short: a header line (format name, version,
what the dump holds and how many records of each type), then one JSON object per line:
accounts, keys and daily request counts (only with ``with_keys``), then every memory not
expired, in the order it was stored. A dump never holds an API key, only its salted hash, so
the same keys work on the database it is imported into; vectors are left out (``memlayer
reindex`` makes them again from the text).

Import is **all or nothing**: the whole dump is checked and written in one transaction, and
a bad line (named by its number) or a conflict rolls everything back. It is **idempotent**:
a record already in the database as it is in the dump is skipped, so importing a dump twice
changes nothing the second time, and the report says so. A record that is in the database
*differently* (same memory id or account id, other content) is a conflict, never
overwritten.

Every statement is in :mod:`.transfer_store`; this module is the format and its rules.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import IO, Any

from .._progress import Progress, ProgressArg
from . import transfer_store as store
from .backend import Backend
from .schemas import parse_iso

__all__ = ["FORMAT", "VERSION", "DumpError", "ImportReport", "export", "import_dump"]

FORMAT = "memlayer-export"
#: The dump format's version; an importer refuses a newer one.
VERSION = 1
#: Records between two progress reports; a dump smaller than this reports no progress.
PROGRESS_STEP = 1000

#: Record types in the order a dump holds them, and the header's name for their count.
_TYPES = {"account": "accounts", "key": "keys", "usage": "usage", "memory": "memories"}


class DumpError(ValueError):
    """A dump that cannot be imported; ``line`` is the 1-based line at fault, if one is."""

    def __init__(self, message: str, line: int | None = None) -> None:
        super().__init__(f"line {line}: {message}" if line is not None else message)
        self.line = line


@dataclass
class ImportReport:
    """What an import did: records written and records found already there, per type."""

    added: dict[str, int] = field(default_factory=dict)
    unchanged: dict[str, int] = field(default_factory=dict)

    @property
    def changed_anything(self) -> bool:
        return any(self.added.values())

    def summary(self) -> str:
        """One line for a person: what was written and what was already there."""

        def listing(counts: dict[str, int]) -> str:
            return ", ".join(f"{name}: {n:,}" for name, n in counts.items() if n)

        seen = sum(self.unchanged.values())
        if not self.changed_anything:
            return f"nothing changed: all {seen:,} records of the dump are already in the database"
        already = f" ({seen:,} records were already there)" if seen else ""
        return f"imported {listing(self.added)}{already}"


def _progress(progress: ProgressArg, total: int, label: str) -> Progress:
    """Progress reported every :data:`PROGRESS_STEP` records, for dumps at least that large."""
    return Progress(progress if total >= PROGRESS_STEP else None, total, label, unit="record")


def _line(record: dict[str, Any]) -> bytes:
    return json.dumps(record, ensure_ascii=False, separators=(",", ":")).encode() + b"\n"


def export(
    db: Backend,
    out: IO[bytes],
    *,
    now: str,
    with_keys: bool = False,
    progress: ProgressArg = None,
) -> dict[str, int]:
    """Write the dump of ``db`` at ``now`` (ISO, the server's format) to ``out``.

    Everything is read in one snapshot, so a dump taken while servers write is consistent.
    Progress is reported as :func:`import_dump` does. Returns the header's counts.
    """
    with db.read() as conn:
        counts = store.counts(conn, now, with_keys)
        header = {"format": FORMAT, "version": VERSION, "with_keys": with_keys, "counts": counts}
        out.write(_line(header))
        sources: list[tuple[str, Iterable[dict[str, Any]]]] = []
        if with_keys:
            sources += [
                ("account", store.read_accounts(conn)),
                ("key", store.read_keys(conn)),
                ("usage", store.read_usage(conn)),
            ]
        sources.append(("memory", store.read_memories(conn, now)))
        with _progress(progress, sum(counts.values()), "export") as bar:
            pending = 0
            for kind, records in sources:
                for record in records:
                    out.write(_line({"type": kind, **record}))
                    pending += 1
                    if pending == PROGRESS_STEP:
                        bar.advance(pending)
                        pending = 0
            if pending:
                bar.advance(pending)
    return counts


# -- reading a dump ---------------------------------------------------------------------

_HEX = re.compile(r"[0-9a-f]+")
_DAY = re.compile(r"\d{4}-\d{2}-\d{2}")


def _text(nonempty: bool = True, nullable: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and nullable:
            return None
        if not isinstance(value, str) or (nonempty and not value):
            return "a non-empty string" + (" or null" if nullable else "")
        return None

    return check


def _moment(nullable: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and nullable:
            return None
        if isinstance(value, str):
            try:
                if parse_iso(value).tzinfo is not None:
                    return None
            except ValueError:
                pass
        return "an ISO 8601 time in UTC" + (" or null" if nullable else "")

    return check


def _int(nullable: bool = False) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if value is None and nullable:
            return None
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            return "a whole number >= 0" + (" or null" if nullable else "")
        return None

    return check


def _hex(length: int | None = None) -> Callable[[Any], str | None]:
    def check(value: Any) -> str | None:
        if (
            isinstance(value, str)
            and _HEX.fullmatch(value)
            and len(value) % 2 == 0
            and (length is None or len(value) == length)
        ):
            return None
        return "lowercase hex" + (f" of {length} digits" if length else "")

    return check


def _is(kind: type, name: str) -> Callable[[Any], str | None]:
    return lambda value: None if type(value) is kind else name


def _ttl(value: Any) -> str | None:
    if value is None or (isinstance(value, (int, float)) and not isinstance(value, bool)):
        return None
    return "a number of seconds or null"


def _day(value: Any) -> str | None:
    return None if isinstance(value, str) and _DAY.fullmatch(value) else "a day (YYYY-MM-DD)"


#: Each record type's fields, in the order a dump writes them, and what each must be.
_FIELDS: dict[str, dict[str, Callable[[Any], str | None]]] = {
    "account": {
        "id": _int(),
        "plan": _text(),
        "memory_limit": _int(nullable=True),
        "request_limit": _int(nullable=True),
        "suspended": _is(bool, "true or false"),
        "created_at": _moment(),
    },
    "key": {
        "id": _text(),
        "account": _int(),
        "name": _text(nonempty=False, nullable=True),
        "lookup": _hex(16),
        "salt": _hex(),
        "hash": _hex(64),
        "hint": _text(),
        "created_at": _moment(),
        "revoked_at": _moment(nullable=True),
    },
    "usage": {"account": _int(), "day": _day, "requests": _int()},
    "memory": {
        "id": _text(),
        "account": _int(),
        "user_id": _text(),
        "agent_id": _text(),
        "session_id": _text(nullable=True),
        "key": _text(nullable=True),
        "content": _text(),
        "metadata": _is(dict, "a JSON object"),
        "created_at": _moment(),
        "updated_at": _moment(),
        "expires_at": _moment(nullable=True),
        "ttl": _ttl,
    },
}


def _finite(text: str) -> float:
    """A JSON number as a float; ``NaN``, ``Infinity`` and overflowing ones are not JSON the
    server could ever send back."""
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"the number {text} is out of range")
    return value


def _parse(raw: bytes, number: int) -> dict[str, Any]:
    try:
        value = json.loads(raw.decode("utf-8"), parse_float=_finite, parse_constant=_finite)
    except UnicodeDecodeError:
        raise DumpError("not UTF-8 text", number) from None
    except json.JSONDecodeError as exc:
        raise DumpError(f"not a JSON object ({exc.msg} at column {exc.colno})", number) from None
    except ValueError as exc:  # from _finite
        raise DumpError(f"not a JSON object ({exc})", number) from None
    if not isinstance(value, dict):
        raise DumpError("not a JSON object", number)
    return value


def _header(raw: bytes | None) -> dict[str, int]:
    """The counts the header announces, or why the first line is no header of ours."""
    if raw is None or not raw.strip():
        raise DumpError("the dump is empty (a dump starts with its header line)", 1)
    header = _parse(raw, 1)
    if header.get("format") != FORMAT:
        raise DumpError(f'not a MemLayer dump (the header has no "format": "{FORMAT}")', 1)
    version = header.get("version")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise DumpError('the header\'s "version" must be a whole number', 1)
    if version > VERSION:
        raise DumpError(
            f"format version {version} is newer than this memlayer's ({VERSION}); "
            "upgrade memlayer-integrations to import it",
            1,
        )
    counts = header.get("counts")
    if not isinstance(counts, dict) or not all(
        name in _TYPES.values() and _int()(n) is None for name, n in counts.items()
    ):
        raise DumpError('the header\'s "counts" must map record types to whole numbers', 1)
    return {name: int(n) for name, n in counts.items()}


def _record(raw: bytes, number: int) -> tuple[str, dict[str, Any]]:
    value = _parse(raw, number)
    kind = value.pop("type", None)
    fields = _FIELDS.get(kind) if isinstance(kind, str) else None
    if fields is None:
        raise DumpError(f'"type" must be one of {", ".join(_FIELDS)}', number)
    missing = [name for name in fields if name not in value]
    extra = [name for name in value if name not in fields]
    if missing or extra:
        what = [f"missing {', '.join(missing)}"] if missing else []
        what += [f"unknown {', '.join(extra)}"] if extra else []
        raise DumpError(f"{kind}: {'; '.join(what)}", number)
    for name, check in fields.items():
        problem = check(value[name])
        if problem is not None:
            raise DumpError(f"{kind}: {name!r} must be {problem}", number)
    return kind, value


# -- writing a dump into a database -----------------------------------------------------


class _Importer:
    """Applies one record at a time inside the import's transaction.

    Memories, by far the most records of a dump, are checked and written in batches of
    :data:`~.transfer_store.BATCH` (one lookup and one pipelined insert each, instead of two
    round trips a memory); :meth:`flush` settles the batch, in dump order, so what is
    written and which error is raised first are as if each memory went alone."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn
        self.report = ImportReport(
            added=dict.fromkeys(_TYPES.values(), 0), unchanged=dict.fromkeys(_TYPES.values(), 0)
        )
        self._accounts: set[int] = set()
        #: Memories read but not yet checked against the database, with their line numbers.
        self._batch: list[tuple[dict[str, Any], int]] = []
        #: Their ids and their (scope, key)s: a repeat within the batch settles it first.
        self._batch_ids: set[str] = set()
        self._batch_keys: set[tuple[Any, ...]] = set()

    def _count(self, kind: str, added: bool) -> None:
        (self.report.added if added else self.report.unchanged)[_TYPES[kind]] += 1

    def _require_account(self, account_id: int, what: str, number: int) -> None:
        if account_id in self._accounts:
            return
        if store.find_account(self.conn, account_id) is None:
            raise DumpError(
                f"{what} belongs to account {account_id}, which this database does not have "
                "(a dump made with --with-keys carries accounts and keys along; without it, "
                "import into a database that has the accounts)",
                number,
            )
        self._accounts.add(account_id)

    def apply(self, kind: str, record: dict[str, Any], number: int) -> None:
        getattr(self, "_" + kind)(record, number)

    def _account(self, record: dict[str, Any], number: int) -> None:
        found = store.find_account(self.conn, record["id"])
        if found is not None and found != record:
            raise DumpError(
                f"account {record['id']} is already in this database with other settings "
                "(plan, limits, suspension or creation time)",
                number,
            )
        if found is None:
            store.insert_account(self.conn, record)
        self._accounts.add(record["id"])
        self._count("account", found is None)

    def _key(self, record: dict[str, Any], number: int) -> None:
        self._require_account(record["account"], f"key {record['id']}", number)
        found = store.find_key(self.conn, record["id"])
        if found is not None and found != record:
            raise DumpError(
                f"key {record['id']} is already in this database, different (another account, "
                "hash or revocation)",
                number,
            )
        if found is None:
            store.insert_key(self.conn, record)
        self._count("key", found is None)

    def _usage(self, record: dict[str, Any], number: int) -> None:
        self._require_account(record["account"], "a request count", number)
        found = store.find_usage(self.conn, record["account"], record["day"])
        # A day's count is only raised: requests this database already counted still count.
        raise_it = found is None or found < record["requests"]
        if raise_it:
            store.write_usage(self.conn, record["account"], record["day"], record["requests"])
        self._count("usage", raise_it)

    def _memory(self, record: dict[str, Any], number: int) -> None:
        self._require_account(record["account"], f"memory {record['id']}", number)
        keyed = record["key"] is not None
        scoped_key = (record["account"], record["user_id"], record["agent_id"], record["key"])
        if record["id"] in self._batch_ids or (keyed and scoped_key in self._batch_keys):
            self.flush()
        self._batch.append((record, number))
        self._batch_ids.add(record["id"])
        if keyed:
            self._batch_keys.add(scoped_key)
        if len(self._batch) >= store.BATCH:
            self.flush()

    def flush(self) -> None:
        """Check the pending memories against the database and write the new ones."""
        batch, self._batch = self._batch, []
        self._batch_ids.clear()
        self._batch_keys.clear()
        stored, holders = store.find_memories(self.conn, [record for record, _ in batch])
        new = []
        for record, number in batch:
            found = stored.get(record["id"])
            if found is not None and found != record:
                raise DumpError(
                    f"memory {record['id']} is already in this database with other content, "
                    "metadata, scope or times",
                    number,
                )
            if found is None and record["id"] in holders:
                raise DumpError(
                    f"memory {record['id']}: its key {record['key']!r} is already held by "
                    f"memory {holders[record['id']]} of the same user and agent",
                    number,
                )
            if found is None:
                new.append(record)
            self._count("memory", found is None)
        store.insert_memories(self.conn, new)


def import_dump(
    db: Backend, lines: Iterable[bytes], *, progress: ProgressArg = None
) -> ImportReport:
    """Import a dump (its lines, as bytes) into ``db``, all or nothing.

    Progress (``progress=``, as in ``_progress``) is reported for dumps of at least
    :data:`PROGRESS_STEP` records, every that many.

    Raises:
        DumpError: a malformed line, a conflict with what ``db`` holds, or a dump that ends
            before the records its header announces; nothing was written then.
    """
    numbered = enumerate(lines, 1)
    first = next(numbered, None)
    announced = _header(None if first is None else first[1])
    seen = dict.fromkeys(_TYPES.values(), 0)
    with db.write() as conn, _progress(progress, sum(announced.values()), "import") as bar:
        importer = _Importer(conn)
        pending = 0
        for number, raw in numbered:
            try:
                if not raw.strip():
                    raise DumpError("an empty line (each line holds one record)", number)
                kind, record = _record(raw, number)
                seen[_TYPES[kind]] += 1
                if seen[_TYPES[kind]] > announced.get(_TYPES[kind], 0):
                    raise DumpError(
                        f"more {_TYPES[kind]} than the header announces "
                        f"({announced.get(_TYPES[kind], 0)})",
                        number,
                    )
                if kind != "memory":
                    importer.flush()  # records are applied in the dump's order
                importer.apply(kind, record, number)
            except DumpError:
                importer.flush()  # a memory of an earlier line may be the first at fault
                raise
            pending += 1
            if pending == PROGRESS_STEP:
                bar.advance(pending)
                pending = 0
        importer.flush()
        short = {name: n for name, n in announced.items() if seen[name] < n}
        if short:
            said = ", ".join(f"{n:,} {name} ({seen[name]:,} read)" for name, n in short.items())
            raise DumpError(f"the dump ends early: its header announces {said}; is it cut short?")
        if pending:
            bar.advance(pending)
        db.ids_taken(conn)  # accounts came with their ids
    return importer.report
