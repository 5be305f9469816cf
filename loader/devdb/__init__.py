"""Throwaway TimescaleDB servers for tests and the demo (never for production).

Order of choice, shared by `make test` and `make demo`:
1. an explicit URL (``TEST_DATABASE_URL`` for tests);
2. a Docker engine, if one answers (the official Community-edition image, pinned);
3. a local PostgreSQL cluster in a temp dir, run by an unprivileged user, with TimescaleDB
   preloaded; on Debian the extension is built from Debian's source package when missing.
"""
