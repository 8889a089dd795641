"""The resource + status store of the local platform: one SQLite file, documents as JSON.

Documents are plain dicts keyed by (kind, namespace, name); the store owns `metadata.uid`,
`resourceVersion` (one store-wide counter, a string as in Kubernetes), `generation` (bumped only
when `spec` changes), `creationTimestamp` and `status`. Every write that changes something takes
the next version and appends a row to the changes feed in the same transaction, so a reader that
remembers a version misses nothing, across restarts too. A write that changes nothing takes no
version, so a reconciler writing the status it already wrote does not wake itself up.
Bearer tokens (`ksrv token`) live in a table of their own, as hashes only; they are no
resources, so they take no version and wake no reconciler.
"""

from __future__ import annotations

import asyncio
import copy
import json
import sqlite3
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from ksrv import errors

ChangeType = Literal["ADDED", "MODIFIED", "DELETED"]
Document = dict[str, Any]
# `Store.list` shadows the builtin inside the class body.
Documents = list[Document]
Tokens = list["StoredToken"]
Changes = list["Change"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS resources (
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL, doc TEXT NOT NULL,
    PRIMARY KEY (kind, namespace, name));
CREATE TABLE IF NOT EXISTS changes (
    version INTEGER PRIMARY KEY, type TEXT NOT NULL,
    kind TEXT NOT NULL, namespace TEXT NOT NULL, name TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS tokens (
    name TEXT PRIMARY KEY, sha256 TEXT NOT NULL UNIQUE,
    namespace TEXT NOT NULL, role TEXT NOT NULL, created TEXT NOT NULL);
"""

# Fields a caller may not set: the store assigns them.
_OWNED_METADATA = ("uid", "resourceVersion", "generation", "creationTimestamp")


@dataclass(frozen=True, slots=True)
class Change:
    """One entry of the changes feed: which resource changed, and how, at which version."""

    version: int
    type: ChangeType
    kind: str
    namespace: str
    name: str


@dataclass(frozen=True, slots=True)
class StoredToken:
    """A bearer token as kept: its name, the SHA-256 of its secret, and what it grants."""

    name: str
    sha256: str
    namespace: str
    """"" for every namespace."""
    role: str
    created: str


class Store:
    """Namespaced documents in SQLite (WAL), with a changes feed and an asyncio wakeup.

    `path` may be `":memory:"` for tests. `clock` gives seconds since the epoch for
    `creationTimestamp`. Methods are synchronous (SQLite on local disk is fast); only
    `wait_for_change` awaits.
    """

    def __init__(self, path: str | Path, clock: Callable[[], float] = time.time) -> None:
        self._clock = clock
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), isolation_level=None, check_same_thread=False)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=NORMAL")
        self._db.executescript(_SCHEMA)
        row = self._db.execute("SELECT COALESCE(MAX(version), 0) FROM changes").fetchone()
        self._version: int = row[0]
        self._waiters: list[tuple[asyncio.AbstractEventLoop, asyncio.Future[None]]] = []

    def close(self) -> None:
        with self._lock:
            self._db.close()

    @property
    def latest_version(self) -> int:
        """The version of the newest change (0 for an empty store)."""
        return self._version

    # -- reads -------------------------------------------------------------------------------
    def get(self, kind: str, namespace: str, name: str) -> Document:
        """The stored document; `ResourceNotFound` when there is none."""
        with self._lock:
            doc = self._read(kind, namespace, name)
        if doc is None:
            raise _not_found(kind, namespace, name)
        return doc

    def list(self, kind: str, namespace: str | None = None) -> Documents:
        """Every document of `kind`, in one namespace or all of them, by namespace and name."""
        query = "SELECT doc FROM resources WHERE kind = ?"
        params: tuple[str, ...] = (kind,)
        if namespace is not None:
            query += " AND namespace = ?"
            params = (kind, namespace)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY namespace, name", params).fetchall()
        return [json.loads(row[0]) for row in rows]

    def changes_since(self, version: int) -> tuple[Changes, int]:
        """Changes newer than `version`, oldest first, and the latest version."""
        with self._lock:
            rows = self._db.execute(
                "SELECT version, type, kind, namespace, name FROM changes"
                " WHERE version > ? ORDER BY version",
                (version,),
            ).fetchall()
            latest = self._version
        return [Change(*row) for row in rows], latest

    async def wait_for_change(self, after: int, timeout_s: float) -> bool:
        """Wait until the store holds a change newer than `after`; False on timeout."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while self._version <= after:
            remaining = deadline - loop.time()
            if remaining <= 0:
                return False
            waiter: asyncio.Future[None] = loop.create_future()
            entry = (loop, waiter)
            self._waiters.append(entry)
            try:
                await asyncio.wait_for(waiter, remaining)
            except TimeoutError:
                return self._version > after
            finally:
                if entry in self._waiters:
                    self._waiters.remove(entry)
        return True

    # -- writes ------------------------------------------------------------------------------
    def create(self, doc: Document) -> Document:
        """Store a new document; `Conflict` when one with this kind and name exists."""
        kind, namespace, name = _key(doc)
        with self._transaction():
            if self._read(kind, namespace, name) is not None:
                raise errors.Conflict(f'{kind} "{name}" already exists{_in(namespace)}')
            return self._insert(doc, kind, namespace, name)

    def apply(self, doc: Document) -> tuple[Document, bool]:
        """Create, or replace what the user owns (spec, labels, annotations, ...) keeping status.

        Returns the stored document and whether anything changed.
        """
        kind, namespace, name = _key(doc)
        with self._transaction():
            current = self._read(kind, namespace, name)
            if current is None:
                return self._insert(doc, kind, namespace, name), True
            merged = _replace_user_fields(current, doc)
            if merged == current:
                return current, False
            return self._write_modified(current, merged), True

    def update(self, doc: Document) -> Document:
        """Replace a document that carries the current `metadata.resourceVersion`.

        Raises:
            Conflict: the version is missing or stale (someone wrote in between).
            ResourceNotFound: nothing to update.
        """
        kind, namespace, name = _key(doc)
        given = str(doc.get("metadata", {}).get("resourceVersion") or "")
        with self._transaction():
            current = self._read(kind, namespace, name)
            if current is None:
                raise _not_found(kind, namespace, name)
            if given != current["metadata"]["resourceVersion"]:
                raise errors.Conflict(
                    f'Operation cannot be fulfilled on {kind} "{name}": the object has been '
                    "modified; please apply your changes to the latest version and try again"
                )
            merged = _replace_user_fields(current, doc)
            if merged == current:
                return current
            return self._write_modified(current, merged)

    def update_status(
        self, kind: str, namespace: str, name: str, status: dict[str, Any]
    ) -> Document:
        """Replace `status` without touching `generation`; a status equal to the stored one
        is not a change (no new version)."""
        with self._transaction():
            current = self._read(kind, namespace, name)
            if current is None:
                raise _not_found(kind, namespace, name)
            if current.get("status") == status:
                return current
            merged = copy.deepcopy(current)
            merged["status"] = copy.deepcopy(status)
            return self._write_modified(current, merged)

    def delete(self, kind: str, namespace: str, name: str) -> Document:
        """Remove a document and return it as it was; the feed records a DELETED change."""
        with self._transaction():
            current = self._read(kind, namespace, name)
            if current is None:
                raise _not_found(kind, namespace, name)
            self._db.execute(
                "DELETE FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
                (kind, namespace, name),
            )
            self._record("DELETED", kind, namespace, name)
            return current

    # -- tokens ------------------------------------------------------------------------------
    def add_token(self, token: StoredToken) -> StoredToken:
        """Keep a token's hash; `Conflict` when its name is taken."""
        with self._lock:
            try:
                self._db.execute(
                    "INSERT INTO tokens (name, sha256, namespace, role, created)"
                    " VALUES (?, ?, ?, ?, ?)",
                    (token.name, token.sha256, token.namespace, token.role, token.created),
                )
            except sqlite3.IntegrityError:
                raise errors.Conflict(f'token "{token.name}" already exists') from None
        return token

    def tokens(self) -> Tokens:
        """Every token, by name."""
        with self._lock:
            rows = self._db.execute(
                "SELECT name, sha256, namespace, role, created FROM tokens ORDER BY name"
            ).fetchall()
        return [StoredToken(*row) for row in rows]

    def revoke_token(self, name: str) -> StoredToken:
        """Forget a token; `ResourceNotFound` when there is none by that name."""
        with self._lock:
            row = self._db.execute(
                "SELECT name, sha256, namespace, role, created FROM tokens WHERE name = ?", (name,)
            ).fetchone()
            if row is None:
                raise errors.ResourceNotFound(f'token "{name}" not found')
            self._db.execute("DELETE FROM tokens WHERE name = ?", (name,))
        return StoredToken(*row)

    # -- internals ---------------------------------------------------------------------------
    @contextmanager
    def _transaction(self) -> Iterator[None]:
        """One write: BEGIN IMMEDIATE ... COMMIT, then wake the waiters if a version was taken."""
        with self._lock:
            before = self._version
            self._db.execute("BEGIN IMMEDIATE")
            try:
                yield
            except BaseException:
                self._db.execute("ROLLBACK")
                self._version = before
                raise
            self._db.execute("COMMIT")
            changed = self._version != before
        if changed:
            self._wake()

    def _read(self, kind: str, namespace: str, name: str) -> Document | None:
        row = self._db.execute(
            "SELECT doc FROM resources WHERE kind = ? AND namespace = ? AND name = ?",
            (kind, namespace, name),
        ).fetchone()
        return None if row is None else json.loads(row[0])

    def _insert(self, doc: Document, kind: str, namespace: str, name: str) -> Document:
        stored = copy.deepcopy(doc)
        metadata = stored.setdefault("metadata", {})
        for field in _OWNED_METADATA:
            metadata.pop(field, None)
        metadata["uid"] = str(uuid.uuid4())
        metadata["generation"] = 1
        metadata["creationTimestamp"] = _rfc3339(self._clock())
        stored["status"] = {}
        version = self._record("ADDED", kind, namespace, name)
        metadata["resourceVersion"] = str(version)
        self._db.execute(
            "INSERT INTO resources (kind, namespace, name, doc) VALUES (?, ?, ?, ?)",
            (kind, namespace, name, json.dumps(stored)),
        )
        return stored

    def _write_modified(self, current: Document, merged: Document) -> Document:
        kind, namespace, name = _key(current)
        if merged.get("spec") != current.get("spec"):
            merged["metadata"]["generation"] = current["metadata"]["generation"] + 1
        version = self._record("MODIFIED", kind, namespace, name)
        merged["metadata"]["resourceVersion"] = str(version)
        self._db.execute(
            "UPDATE resources SET doc = ? WHERE kind = ? AND namespace = ? AND name = ?",
            (json.dumps(merged), kind, namespace, name),
        )
        return merged

    def _record(self, change: ChangeType, kind: str, namespace: str, name: str) -> int:
        self._version += 1
        self._db.execute(
            "INSERT INTO changes (version, type, kind, namespace, name) VALUES (?, ?, ?, ?, ?)",
            (self._version, change, kind, namespace, name),
        )
        return self._version

    def _wake(self) -> None:
        # Writes may come from another thread than the waiting loop's; call_soon_threadsafe
        # is correct from both.
        for loop, waiter in list(self._waiters):
            if not loop.is_closed():
                loop.call_soon_threadsafe(_resolve, waiter)


def _resolve(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_result(None)


def _key(doc: Document) -> tuple[str, str, str]:
    metadata = doc.get("metadata")
    kind = doc.get("kind")
    if not isinstance(kind, str) or not kind or not isinstance(metadata, dict):
        raise errors.InvalidInput("a stored document needs a kind and metadata")
    name = metadata.get("name")
    if not isinstance(name, str) or not name:
        raise errors.InvalidInput(f"a stored {kind} needs metadata.name")
    return kind, str(metadata.get("namespace") or ""), name


def _replace_user_fields(current: Document, doc: Document) -> Document:
    """`doc`'s fields over `current`, keeping the store-owned metadata and the status."""
    merged = {key: copy.deepcopy(value) for key, value in doc.items() if key != "status"}
    metadata = dict(merged.get("metadata") or {})
    for field in _OWNED_METADATA:
        metadata[field] = current["metadata"][field]
    merged["metadata"] = metadata
    merged["status"] = copy.deepcopy(current.get("status", {}))
    return merged


def _rfc3339(seconds: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def _in(namespace: str) -> str:
    return f' in namespace "{namespace}"' if namespace else ""


def _not_found(kind: str, namespace: str, name: str) -> errors.ResourceNotFound:
    return errors.ResourceNotFound(f'{kind} "{name}" not found{_in(namespace)}')
