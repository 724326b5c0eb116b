"""HumanUser passwords: kept as salted PBKDF2 hashes in their own table, never in a field."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import sqlite3

_ROUNDS = 20_000  # a test site: enough to keep a leaked file from giving passwords away
_TABLE = (
    "CREATE TABLE IF NOT EXISTS passwords (user_type TEXT, user_id INTEGER, salt TEXT,"
    " hash TEXT, PRIMARY KEY (user_type, user_id)) WITHOUT ROWID"
)


def _derive(password: str, salt: str) -> str:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), bytes.fromhex(salt), _ROUNDS).hex()


def create_table(conn: sqlite3.Connection) -> None:
    """Make the table when the database is new."""
    conn.execute(_TABLE)


def keep(conn: sqlite3.Connection, user_type: str, user_id: int, password: str) -> None:
    """Set (or replace) a user's password; an empty one removes it (no login possible)."""
    if not password:
        conn.execute(
            "DELETE FROM passwords WHERE user_type = ? AND user_id = ?", (user_type, user_id)
        )
        return
    salt = secrets.token_hex(16)
    conn.execute(
        "INSERT OR REPLACE INTO passwords VALUES (?, ?, ?, ?)",
        (user_type, user_id, salt, _derive(password, salt)),
    )


class Checker:
    """Checks passwords, remembering the attempts that matched a stored hash.

    A client sends the login and password with every call; deriving the hash each
    time would cost more than the call. A changed password has a new salt and hash,
    so an old match is never reused.
    """

    def __init__(self) -> None:
        """Start with nothing remembered."""
        self._matched: set[tuple[str, str]] = set()

    def check(self, conn: sqlite3.Connection, user_type: str, user_id: int, password: str) -> bool:
        """Whether ``password`` is the user's (False when the user has none)."""
        row = conn.execute(
            "SELECT salt, hash FROM passwords WHERE user_type = ? AND user_id = ?",
            (user_type, user_id),
        ).fetchone()
        if row is None or not password:
            return False
        salt, stored = row
        attempt = hashlib.sha256(f"{salt}:{password}".encode()).hexdigest()
        if (stored, attempt) in self._matched:
            return True
        if not hmac.compare_digest(_derive(password, salt), stored):
            return False
        if len(self._matched) > 1000:
            self._matched.clear()
        self._matched.add((stored, attempt))
        return True
