"""tsfleet: SQL-first fleet telemetry on PostgreSQL + TimescaleDB.

The Python package is deliberately thin: it parses files and messages, streams rows into
PostgreSQL with COPY, and calls the SQL functions that hold the business logic.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("tsfleet")
except PackageNotFoundError:  # running from a source tree without an install
    __version__ = "0.0.0+source"
