-- Table privileges the loaders need when they run as a member of tsfleet_ingest: the ingest
-- functions run as the caller (no security definer), so the role needs them directly.
-- Migration 0022 already grants select/insert on telemetry.metrics and select on the rest.
-- Couples with: sql/functions/20_ingest.sql (what the functions read and write).
grant select, insert on telemetry.tenants to tsfleet_ingest;
grant select, insert, update on telemetry.devices, telemetry.readings to tsfleet_ingest;
grant select, insert on ingest.batches, ingest.rejects to tsfleet_ingest;
grant update (
    status, rows_read, rows_inserted, rows_duplicate, rows_conflict, rows_rejected,
    min_recorded_at, max_recorded_at, error_message, finished_at
) on ingest.batches to tsfleet_ingest;
