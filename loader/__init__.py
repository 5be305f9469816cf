"""tsfleet: SQL-first fleet telemetry on PostgreSQL + TimescaleDB.

The Python package is deliberately thin: it parses files and messages, streams rows into
PostgreSQL with COPY, and calls the SQL functions that hold the business logic.
"""

# The one place the version is written: pyproject.toml reads it (dynamic version), the wheel's
# metadata carries it, and `tsfleet --version` prints it. Bump it with a CHANGELOG.md entry.
__version__ = "0.1.0"
