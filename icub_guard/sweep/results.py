"""The one results table of a sweep: a SQLite file, one row per cell keyed by its configuration hash.

SQLite (the standard library's) rather than Parquet: rows are appended one at a time as cells finish, by one
writer (the driver), and must survive a Ctrl-C between two of them — a transaction per row does that, and any
SQLite client, pandas (`read_sql`) or DuckDB reads the file. WAL mode lets `sweep status` read while a run writes.

`cells`: the latest state of each cell (pending, running, done, failed) with its configuration, curves and
checks, timings, machine and code version; `attempts`: every attempt, failed ones with their error, so
nothing is silently dropped.
"""

from __future__ import annotations

import json
import sqlite3
import time
from pathlib import Path

from .grid import Cell
from .spec import SweepError

STATES = ("done", "running", "failed", "pending")
SCHEMA = """
CREATE TABLE IF NOT EXISTS cells (
    hash TEXT PRIMARY KEY, evaluation TEXT NOT NULL, axes TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, error TEXT, summary TEXT,
    seconds REAL, machine TEXT, code_version TEXT, shared TEXT, updated REAL);
CREATE TABLE IF NOT EXISTS attempts (
    hash TEXT NOT NULL, attempt INTEGER NOT NULL, status TEXT NOT NULL, error TEXT, seconds REAL,
    machine TEXT, code_version TEXT, at REAL);
"""


def _json(value) -> str:
    return json.dumps(value, default=lambda o: o.tolist() if hasattr(o, "tolist") else str(o))


class ResultsTable:
    """Open (creating) the table; a file that is not a results table is refused, never overwritten."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            self.db = sqlite3.connect(self.path, timeout=30.0, isolation_level=None)
            self.db.execute("PRAGMA journal_mode=WAL")
            self.db.executescript(SCHEMA)
            self.db.execute("SELECT hash, status, summary FROM cells LIMIT 1").fetchall()
        except sqlite3.DatabaseError as exc:
            raise SweepError(f"{self.path} is not a sweep results table ({exc}); move it away or name another "
                             "`results:` file") from exc
        self.db.row_factory = sqlite3.Row

    def close(self) -> None:
        self.db.close()

    def _write(self, sql: str, *args) -> None:
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.execute(sql, args)

    def register(self, evaluation: str, cells: list[Cell]) -> None:
        """Rows for cells not seen before (pending); existing rows keep their state."""
        from dataclasses import asdict

        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            self.db.executemany(
                "INSERT OR IGNORE INTO cells (hash, evaluation, axes, config, status, updated) "
                "VALUES (?, ?, ?, ?, 'pending', ?)",
                [(c.hash, evaluation, _json(c.axes), _json(asdict(c.config)), time.time()) for c in cells])

    def status(self, hashes: list[str]) -> dict[str, str]:
        """Each hash's state; a hash with no row is pending."""
        rows = {r["hash"]: r["status"] for r in self.db.execute("SELECT hash, status FROM cells")}
        return {h: rows.get(h, "pending") for h in hashes}

    def counts(self, hashes: list[str]) -> dict[str, int]:
        states = self.status(hashes).values()
        return {s: sum(v == s for v in states) for s in STATES}

    def release_running(self) -> int:
        """Cells left `running` by a run that ended without finishing them (Ctrl-C, a lost driver): pending."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            return self.db.execute("UPDATE cells SET status='pending' WHERE status='running'").rowcount

    def mark_running(self, hash_: str) -> None:
        self._write("UPDATE cells SET status='running', updated=? WHERE hash=?", time.time(), hash_)

    def record_done(self, hash_: str, out: dict) -> None:
        """A finished cell: its summary (curves, checks, timing, the evaluation's JSON), cost, machine, code."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            n = self._attempt(hash_, "done", None, out)
            self.db.execute(
                "UPDATE cells SET status='done', attempts=?, error=NULL, summary=?, seconds=?, machine=?, "
                "code_version=?, shared=?, updated=? WHERE hash=?",
                (n, _json(out["summary"]), out["seconds"], _json(out["machine"]), out["code_version"],
                 _json(out.get("shared")), time.time(), hash_))

    def record_failure(self, hash_: str, error: str, final: bool, out: dict | None = None) -> int:
        """One failed attempt (kept in `attempts`); `final`: no retry left, the cell is `failed`. Returns the
        number of attempts so far."""
        with self.db:
            self.db.execute("BEGIN IMMEDIATE")
            n = self._attempt(hash_, "failed", error, out or {})
            self.db.execute("UPDATE cells SET status=?, attempts=?, error=?, updated=? WHERE hash=?",
                            ("failed" if final else "running", n, error, time.time(), hash_))
        return n

    def _attempt(self, hash_: str, status: str, error: str | None, out: dict) -> int:
        n = self.db.execute("SELECT COUNT(*) FROM attempts WHERE hash=?", (hash_,)).fetchone()[0] + 1
        self.db.execute("INSERT INTO attempts VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                        (hash_, n, status, error, out.get("seconds"), _json(out.get("machine")),
                         out.get("code_version"), time.time()))
        return n

    def rows(self, hashes: list[str] | None = None) -> list[dict]:
        """The cells' rows as dicts, JSON columns decoded; in `hashes`' order when given."""
        out = {}
        for r in self.db.execute("SELECT * FROM cells"):
            d = dict(r)
            for k in ("axes", "config", "summary", "machine", "shared"):
                d[k] = json.loads(d[k]) if d[k] is not None else None
            out[d["hash"]] = d
        return [out[h] for h in hashes if h in out] if hashes is not None else list(out.values())

    def attempts(self, hash_: str) -> list[dict]:
        return [dict(r) for r in self.db.execute("SELECT * FROM attempts WHERE hash=? ORDER BY attempt", (hash_,))]
