-- The grants of migrations 0022, 0030, 0031 and 0090, as they were.
grant select, insert on telemetry.metrics, telemetry.asset_readings to tsfleet_ingest;
grant select, update (latest_health_score, latest_health_at, latest_health_source)
on telemetry.assets to tsfleet_ingest;
grant select, update (asset_rows_inserted) on ingest.batches to tsfleet_ingest;
grant select, insert, delete on ingest.message_receipts to tsfleet_ingest;
grant select, insert on telemetry.tenants to tsfleet_ingest;
grant select, insert, update on telemetry.devices, telemetry.readings to tsfleet_ingest;
grant select, insert on ingest.batches, ingest.rejects to tsfleet_ingest;
grant update (
    status, rows_read, rows_inserted, rows_duplicate, rows_conflict, rows_rejected,
    min_recorded_at, max_recorded_at, error_message, finished_at
) on ingest.batches to tsfleet_ingest;
grant select, insert, update on ingest.asset_event_outbox to tsfleet_ingest;
