"""SQLite's schema, as versioned migrations (the version is ``PRAGMA user_version``).

Migration *n* (1-based) takes the file from version *n-1* to *n*; :func:`.db.migrate`
applies each in one transaction with the version bump. Append, never edit: a file written
by an older server is brought up to date by the migrations it has not seen.
PostgreSQL's schema (``postgres/schema.py``) keeps the same tables and columns.
"""

from __future__ import annotations

__all__ = ["MEMORY_COLUMNS", "MIGRATIONS", "SCHEMA_VERSION"]

_V1 = """
CREATE TABLE accounts (
    id              INTEGER PRIMARY KEY,
    plan            TEXT NOT NULL,
    memory_limit    INTEGER,
    request_limit   INTEGER,
    suspended       INTEGER NOT NULL DEFAULT 0,
    memory_count    INTEGER NOT NULL DEFAULT 0,
    created_at      TEXT NOT NULL
);

-- Keys are stored as a salted SHA-256 only. `lookup` is a short digest of the key used to
-- find the row; the salted hash is then compared in constant time.
CREATE TABLE api_keys (
    id          TEXT PRIMARY KEY,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    name        TEXT,
    lookup      TEXT NOT NULL,
    salt        BLOB NOT NULL,
    hash        BLOB NOT NULL,
    hint        TEXT NOT NULL,
    created_at  TEXT NOT NULL,
    revoked_at  TEXT
);
CREATE INDEX api_keys_lookup ON api_keys(lookup);

-- AUTOINCREMENT: rowids only grow, so "rowid > cursor" pages in creation order even after
-- the newest memory was deleted.
CREATE TABLE memories (
    rowid       INTEGER PRIMARY KEY AUTOINCREMENT,
    id          TEXT NOT NULL UNIQUE,
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    user_id     TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    session_id  TEXT,
    key         TEXT,
    content     TEXT NOT NULL,
    metadata    TEXT NOT NULL DEFAULT '{}',
    created_at  TEXT NOT NULL,
    updated_at  TEXT NOT NULL
);
CREATE INDEX memories_scope ON memories(account_id, user_id, agent_id);
CREATE UNIQUE INDEX memories_key ON memories(account_id, user_id, agent_id, key) WHERE key IS NOT NULL;

-- Full-text index over content, kept in step by triggers (external content: the text is
-- stored once, in `memories`).
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, content) VALUES (new.rowid, new.content);
    UPDATE accounts SET memory_count = memory_count + 1 WHERE id = new.account_id;
END;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    UPDATE accounts SET memory_count = memory_count - 1 WHERE id = old.account_id;
END;
CREATE TRIGGER memories_au AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content) VALUES ('delete', old.rowid, old.content);
    INSERT INTO memories_fts(rowid, content) VALUES (new.rowid, new.content);
END;

CREATE TABLE request_counts (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    day         TEXT NOT NULL,
    requests    INTEGER NOT NULL,
    PRIMARY KEY (account_id, day)
) WITHOUT ROWID;

CREATE TABLE idempotency (
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   REAL NOT NULL,
    PRIMARY KEY (account_id, key)
);
CREATE INDEX idempotency_created ON idempotency(created_at);
"""

# Version 2: recall is scoped inside the full-text index and can follow conversations.
# `scope_terms` (computed, never stored) holds two words naming the memory's scope: its
# (account, user) and its (account, user, agent), spelled from the hex of the ids so any
# id becomes one plain word. Indexed as a second FTS5 column, they let a recall and its
# word-count probes visit only that scope's postings instead of every account's. They only
# narrow the search: the SQL conditions on account_id/user_id/agent_id stay the authority.
# `memories_stream` finds the memory stored just before or after another in the same
# conversation (account, user, agent, session) for recall's neighbour smoothing.
_V2 = """
DROP TRIGGER memories_ai;
DROP TRIGGER memories_ad;
DROP TRIGGER memories_au;
DROP TABLE memories_fts;
ALTER TABLE memories ADD COLUMN scope_terms TEXT GENERATED ALWAYS AS (
    'u' || account_id || 'x' || hex(user_id) || ' '
    || 'a' || account_id || 'x' || hex(user_id) || 'y' || hex(agent_id)
) VIRTUAL;
CREATE VIRTUAL TABLE memories_fts USING fts5(
    content, scope_terms, content='memories', content_rowid='rowid',
    tokenize='porter unicode61 remove_diacritics 2'
);
INSERT INTO memories_fts(memories_fts) VALUES ('rebuild');
CREATE TRIGGER memories_ai AFTER INSERT ON memories BEGIN
    INSERT INTO memories_fts(rowid, content, scope_terms) VALUES (new.rowid, new.content, new.scope_terms);
    UPDATE accounts SET memory_count = memory_count + 1 WHERE id = new.account_id;
END;
CREATE TRIGGER memories_ad AFTER DELETE ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content, scope_terms)
        VALUES ('delete', old.rowid, old.content, old.scope_terms);
    UPDATE accounts SET memory_count = memory_count - 1 WHERE id = old.account_id;
END;
CREATE TRIGGER memories_au AFTER UPDATE OF content ON memories BEGIN
    INSERT INTO memories_fts(memories_fts, rowid, content, scope_terms)
        VALUES ('delete', old.rowid, old.content, old.scope_terms);
    INSERT INTO memories_fts(rowid, content, scope_terms) VALUES (new.rowid, new.content, new.scope_terms);
END;
CREATE INDEX memories_stream ON memories(account_id, user_id, agent_id, session_id) WHERE session_id IS NOT NULL;
"""

# Version 3: how many memories each (account, user, agent) holds, kept in step by triggers.
# Recall reads a scope's size before every search (to choose how to confine the full-text
# query) and ``GET /v1/scopes`` lists the sizes; both now read one row per agent instead of
# counting memories. A scope whose last memory is forgotten keeps a row with 0.
_V3 = """
CREATE TABLE scope_sizes (
    account_id  INTEGER NOT NULL REFERENCES accounts(id),
    user_id     TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    memories    INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_id, agent_id)
) WITHOUT ROWID;
INSERT INTO scope_sizes (account_id, user_id, agent_id, memories)
    SELECT account_id, user_id, agent_id, count(*) FROM memories GROUP BY account_id, user_id, agent_id;
CREATE TRIGGER memories_scope_ai AFTER INSERT ON memories BEGIN
    INSERT INTO scope_sizes (account_id, user_id, agent_id, memories)
        VALUES (new.account_id, new.user_id, new.agent_id, 1)
        ON CONFLICT (account_id, user_id, agent_id) DO UPDATE SET memories = memories + 1;
END;
CREATE TRIGGER memories_scope_ad AFTER DELETE ON memories BEGIN
    UPDATE scope_sizes SET memories = memories - 1
        WHERE account_id = old.account_id AND user_id = old.user_id AND agent_id = old.agent_id;
END;
"""

# Version 4: idempotency for writes only, and never a replay of forgotten content.
# `idempotency.kept` = 0 marks a request that was answered but whose answer is not kept
# (too large, or a memory in it was forgotten since): a replay runs nothing and gets 409.
# `idempotency_memories` lists the memories a kept answer shows; deleting a memory drops
# those answers (trigger). Answers kept before this version may show since-forgotten
# memories or be read-only answers, so they are all dropped to "answered, not kept".
# `server_secrets` holds the key that makes page cursors opaque (see cursors.py).
# `scope_sizes.chars`: the total length of a scope's memories, for recall's per-scope BM25
# (scoring.py), kept by the same triggers as the count.
_V4 = """
ALTER TABLE idempotency ADD COLUMN kept INTEGER NOT NULL DEFAULT 1;
UPDATE idempotency SET kept = 0, body = x'';
CREATE TABLE idempotency_memories (
    account_id  INTEGER NOT NULL,
    key         TEXT NOT NULL,
    memory_id   TEXT NOT NULL,
    PRIMARY KEY (account_id, key, memory_id),
    FOREIGN KEY (account_id, key) REFERENCES idempotency(account_id, key) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE INDEX idempotency_memories_memory ON idempotency_memories(memory_id);
CREATE TRIGGER memories_idempotency_ad AFTER DELETE ON memories BEGIN
    UPDATE idempotency SET kept = 0, body = x''
        WHERE account_id = old.account_id AND key IN (
            SELECT key FROM idempotency_memories WHERE memory_id = old.id AND account_id = old.account_id);
    DELETE FROM idempotency_memories WHERE memory_id = old.id;
END;
CREATE TABLE server_secrets (
    name   TEXT PRIMARY KEY,
    value  BLOB NOT NULL
);
INSERT INTO server_secrets (name, value) VALUES ('cursor', randomblob(32));
ALTER TABLE scope_sizes ADD COLUMN chars INTEGER NOT NULL DEFAULT 0;
UPDATE scope_sizes SET chars = (
    SELECT coalesce(sum(length(m.content)), 0) FROM memories AS m
    WHERE m.account_id = scope_sizes.account_id AND m.user_id = scope_sizes.user_id
      AND m.agent_id = scope_sizes.agent_id);
DROP TRIGGER memories_scope_ai;
DROP TRIGGER memories_scope_ad;
CREATE TRIGGER memories_scope_ai AFTER INSERT ON memories BEGIN
    INSERT INTO scope_sizes (account_id, user_id, agent_id, memories, chars)
        VALUES (new.account_id, new.user_id, new.agent_id, 1, length(new.content))
        ON CONFLICT (account_id, user_id, agent_id)
        DO UPDATE SET memories = memories + 1, chars = chars + length(new.content);
END;
CREATE TRIGGER memories_scope_ad AFTER DELETE ON memories BEGIN
    UPDATE scope_sizes SET memories = memories - 1, chars = chars - length(old.content)
        WHERE account_id = old.account_id AND user_id = old.user_id AND agent_id = old.agent_id;
END;
CREATE TRIGGER memories_chars_au AFTER UPDATE OF content ON memories BEGIN
    UPDATE scope_sizes SET chars = chars - length(old.content) + length(new.content)
        WHERE account_id = new.account_id AND user_id = new.user_id AND agent_id = new.agent_id;
END;
"""

# Version 5: expiry and same-text lookup. ``expires_at`` (the format of ``created_at``, so
# text order is time order) is when a memory stops existing; ``ttl`` (seconds) is kept so a
# read that refreshes the memory can restart its clock. ``memories_expiry`` finds an
# account's expired memories for the sweep that starts every request. ``memories_text``
# finds a memory of the same scope with the same content (remembering a text again refreshes
# that memory instead of adding one); its first 64 characters narrow the search to a few
# rows without indexing whole contents.
_V5 = """
ALTER TABLE memories ADD COLUMN expires_at TEXT;
ALTER TABLE memories ADD COLUMN ttl REAL;
CREATE INDEX memories_expiry ON memories(account_id, expires_at) WHERE expires_at IS NOT NULL;
CREATE INDEX memories_text ON memories(account_id, user_id, agent_id, substr(content, 1, 64));
"""

# Version 6: vectors for semantic recall (``vectors.py``), written only when the server has an
# embedder. One row per embedded memory; `seq` only grows, so a scope cached in memory loads
# just the rows newer than the ones it holds. `model` names the vector space (the embedder's
# name): vectors of another model are never compared with a question. `vector_scopes` counts
# each scope's vectors added and removed, so a recall learns from one row whether its cached
# matrix is current. A memory's vector goes when the memory does or its content changes
# (a server without an embedder may change it; `memlayer reindex` embeds it again).
_V6 = """
CREATE TABLE memory_vectors (
    seq           INTEGER PRIMARY KEY AUTOINCREMENT,
    memory_rowid  INTEGER NOT NULL UNIQUE,
    account_id    INTEGER NOT NULL,
    user_id       TEXT NOT NULL,
    agent_id      TEXT NOT NULL,
    model         TEXT NOT NULL,
    vector        BLOB NOT NULL
);
CREATE INDEX memory_vectors_scope ON memory_vectors(account_id, user_id, agent_id, seq);
CREATE TABLE vector_scopes (
    account_id  INTEGER NOT NULL,
    user_id     TEXT NOT NULL,
    agent_id    TEXT NOT NULL,
    added       INTEGER NOT NULL,
    removed     INTEGER NOT NULL,
    PRIMARY KEY (account_id, user_id, agent_id)
) WITHOUT ROWID;
CREATE TRIGGER memory_vectors_ai AFTER INSERT ON memory_vectors BEGIN
    INSERT INTO vector_scopes (account_id, user_id, agent_id, added, removed)
        VALUES (new.account_id, new.user_id, new.agent_id, 1, 0)
        ON CONFLICT (account_id, user_id, agent_id) DO UPDATE SET added = added + 1;
END;
CREATE TRIGGER memory_vectors_ad AFTER DELETE ON memory_vectors BEGIN
    UPDATE vector_scopes SET removed = removed + 1
        WHERE account_id = old.account_id AND user_id = old.user_id AND agent_id = old.agent_id;
END;
CREATE TRIGGER memories_vector_ad AFTER DELETE ON memories BEGIN
    DELETE FROM memory_vectors WHERE memory_rowid = old.rowid;
END;
CREATE TRIGGER memories_vector_au AFTER UPDATE OF content ON memories
    WHEN old.content IS NOT new.content BEGIN
    DELETE FROM memory_vectors WHERE memory_rowid = old.rowid;
END;
"""

# Version 7: a kept answer's memories linked by integers. Version 4 linked them by
# (account_id, key, memory_id) text, with an index on memory_id: the ids are random, so a
# batch of 100 puts wrote 100 entries at random places in that index, dirtying a page each,
# and the links cost more than the memories' own rows at COMMIT. `idempotency_links` holds
# (memory rowid, answer id) instead: both only grow, so a batch's links go at the end of
# both indexes. `idempotency.id` is an explicit INTEGER PRIMARY KEY (a table rebuild) so
# that a VACUUM cannot renumber the answers links point to. The rules are those of version
# 4: deleting a memory drops the answers showing it (`memories_idempotency_ad`); deleting an
# answer (its day is over) deletes its links (`idempotency_ad`), so an id used again never
# inherits an old answer's links.
# `memories_text` (version 5) now holds only memories without a key, the only ones the
# same-text lookup reads: a batch of keyed puts (every LangGraph store item) no longer
# writes an entry per memory into it.
_V7 = """
DROP TRIGGER memories_idempotency_ad;
CREATE TABLE idempotency_v7 (
    id           INTEGER PRIMARY KEY,
    account_id   INTEGER NOT NULL REFERENCES accounts(id),
    key          TEXT NOT NULL,
    fingerprint  TEXT NOT NULL,
    status       INTEGER NOT NULL,
    body         BLOB NOT NULL,
    created_at   REAL NOT NULL,
    kept         INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, key)
);
INSERT INTO idempotency_v7 (id, account_id, key, fingerprint, status, body, created_at, kept)
    SELECT rowid, account_id, key, fingerprint, status, body, created_at, kept FROM idempotency;
CREATE TABLE idempotency_links (
    memory_rowid  INTEGER NOT NULL,
    answer        INTEGER NOT NULL,
    PRIMARY KEY (memory_rowid, answer)
) WITHOUT ROWID;
INSERT INTO idempotency_links (memory_rowid, answer)
    SELECT m.rowid, i.id FROM idempotency_memories AS l
    JOIN idempotency_v7 AS i ON i.account_id = l.account_id AND i.key = l.key
    JOIN memories AS m ON m.id = l.memory_id AND m.account_id = l.account_id;
DROP TABLE idempotency_memories;
DROP TABLE idempotency;
ALTER TABLE idempotency_v7 RENAME TO idempotency;
CREATE INDEX idempotency_created ON idempotency(created_at);
CREATE INDEX idempotency_links_answer ON idempotency_links(answer);
CREATE TRIGGER memories_idempotency_ad AFTER DELETE ON memories BEGIN
    UPDATE idempotency SET kept = 0, body = x''
        WHERE id IN (SELECT answer FROM idempotency_links WHERE memory_rowid = old.rowid);
    DELETE FROM idempotency_links WHERE memory_rowid = old.rowid;
END;
CREATE TRIGGER idempotency_ad AFTER DELETE ON idempotency BEGIN
    DELETE FROM idempotency_links WHERE answer = old.id;
END;
DROP INDEX memories_text;
CREATE INDEX memories_text ON memories(account_id, user_id, agent_id, substr(content, 1, 64))
    WHERE key IS NULL;
"""

#: The stored columns of a memory row (not the computed ``scope_terms``).
MEMORY_COLUMNS = (
    "rowid, id, account_id, user_id, agent_id, session_id, key, content, metadata, created_at,"
    " updated_at, expires_at, ttl"
)

#: Migration n (1-based) takes the schema from version n-1 to n. Append, never edit.
MIGRATIONS: tuple[str, ...] = (_V1, _V2, _V3, _V4, _V5, _V6, _V7)
SCHEMA_VERSION = len(MIGRATIONS)
