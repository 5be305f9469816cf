"""Connections: one place that turns a URL into a psycopg connection."""

from __future__ import annotations

import os
from urllib.parse import urlsplit, urlunsplit

import click
import psycopg

YOYO_SCHEME = "postgresql+psycopg"


def plain_url(url: str) -> str:
    """psycopg wants postgresql://; yoyo wants postgresql+psycopg://. Accept either."""
    parts = urlsplit(url)
    if parts.scheme in (YOYO_SCHEME, "postgres", "postgres+psycopg"):
        parts = parts._replace(scheme="postgresql")
    return urlunsplit(parts)


def yoyo_url(url: str) -> str:
    parts = urlsplit(plain_url(url))
    return urlunsplit(parts._replace(scheme=YOYO_SCHEME))


def with_database(url: str, dbname: str) -> str:
    """The same server URL pointing at another database."""
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path="/" + dbname))


def redacted(url: str) -> str:
    """The URL without its password, for messages and provenance."""
    parts = urlsplit(plain_url(url))
    if parts.password:
        netloc = parts.netloc.replace(":" + parts.password + "@", ":***@")
        parts = parts._replace(netloc=netloc)
    return urlunsplit(parts)


def resolve_url(explicit: str | None = None) -> str:
    url = explicit or os.environ.get("DATABASE_URL")
    if not url:
        raise click.UsageError(
            "no database given: pass --database-url or set DATABASE_URL "
            "(e.g. postgresql://tsfleet@localhost:5432/tsfleet)"
        )
    return plain_url(url)


def connect(url: str, **kwargs: object) -> psycopg.Connection:
    return psycopg.connect(plain_url(url), application_name="tsfleet", **kwargs)
