"""Apply and roll back migrations with yoyo: the same code path as `yoyo apply --batch`."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

from yoyo import get_backend, read_migrations

from loader.db import yoyo_url

SENTINEL_ID = "9999.reapply_functions_and_views"


class NoMigrationsFound(RuntimeError):
    """The migrations folder is missing or empty: migrating would silently do nothing."""


def sql_dir() -> Path:
    """The SQL the package ships (loader/sql; override with TSFLEET_SQL_DIR).

    In the wheel loader/sql holds the files; in a checkout it is a symlink to the repository's
    sql/ folder, so both read the same migrations.
    """
    explicit = os.environ.get("TSFLEET_SQL_DIR")
    if explicit:
        return Path(explicit)
    return Path(__file__).resolve().parent / "sql"


def _backend_and_migrations(url: str):
    folder = sql_dir() / "migrations"
    migrations = read_migrations(str(folder)) if folder.is_dir() else []
    if not [m for m in migrations if m.id != SENTINEL_ID]:
        raise NoMigrationsFound(
            f"no migrations found in {folder}: the package is incomplete (reinstall tsfleet) "
            "or TSFLEET_SQL_DIR points at the wrong folder"
        )
    backend = get_backend(yoyo_url(url))
    return backend, migrations


def _show_notices(backend, log: Callable[[str], None]) -> None:
    """Edition-aware migrations explain themselves in NOTICEs: pass those on to the user.

    yoyo runs each migration on a copy of the backend (a new connection), so the handler is
    attached to every copy as it is made.
    """

    def handler(diag) -> None:
        message = diag.message_primary or ""
        if diag.severity_nonlocalized == "NOTICE" and message.startswith("tsfleet:"):
            log(message)

    make_copy = backend.copy

    def copy_with_notices():
        copied = make_copy()
        copied.connection.add_notice_handler(handler)
        return copied

    backend.copy = copy_with_notices


def apply(url: str, force_reapply: bool = False,
          log: Callable[[str], None] | None = None) -> list[str]:
    """Apply pending migrations, then re-apply functions and views. Returns applied ids."""
    backend, migrations = _backend_and_migrations(url)
    if log is not None:
        _show_notices(backend, log)
    previous = os.environ.get("TSFLEET_FORCE_REAPPLY")
    if force_reapply:
        os.environ["TSFLEET_FORCE_REAPPLY"] = "1"
    try:
        with backend.lock():
            pending = backend.to_apply(migrations)
            backend.apply_migrations(pending)
    finally:
        if force_reapply:
            if previous is None:
                os.environ.pop("TSFLEET_FORCE_REAPPLY", None)
            else:
                os.environ["TSFLEET_FORCE_REAPPLY"] = previous
    return [m.id for m in pending if m.id != SENTINEL_ID]


def rollback(url: str, count: int | None = None) -> list[str]:
    """Roll back the newest `count` migrations (all when None). Returns rolled-back ids."""
    backend, migrations = _backend_and_migrations(url)
    with backend.lock():
        todo = backend.to_rollback(migrations)
        if count is not None:
            newest = {m.id for m in list(todo)[:count]}
            todo = todo.filter(lambda m: m.id in newest)
        backend.rollback_migrations(todo)
    return [m.id for m in todo]


def pending(url: str) -> list[str]:
    backend, migrations = _backend_and_migrations(url)
    return [m.id for m in backend.to_apply(migrations) if m.id != SENTINEL_ID]


def listing(url: str) -> list[tuple[str, bool]]:
    """Every numbered migration with whether it is applied, in order (yoyo's `list`).

    The sentinel is left out: it is pending by design (see 9999.reapply_functions_and_views).
    """
    backend, migrations = _backend_and_migrations(url)
    applied = set(backend.get_applied_migration_hashes())
    return [(m.id, m.hash in applied) for m in migrations if m.id != SENTINEL_ID]
