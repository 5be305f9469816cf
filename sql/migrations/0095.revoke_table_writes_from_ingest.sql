-- The API is the only door (issue 15): loaders and consumers (tsfleet_ingest) write telemetry
-- and ingest tables only through the security definer ingest functions (sql/functions/2x,
-- 32, 70, 71), never directly. Alerts' tables and the rollup refresh queue keep their grants
-- here: their writers (the alert runner, the rollup refresh) are not yet behind definer
-- functions. Couples with: tests/test_roles.py (no tsfleet role but the owner writes a table).
revoke insert, update, delete, truncate on all tables in schema telemetry from tsfleet_ingest;
revoke insert, update, delete, truncate on all tables in schema ingest from tsfleet_ingest;
