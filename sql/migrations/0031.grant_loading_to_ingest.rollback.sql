revoke insert on telemetry.tenants from tsfleet_ingest;
revoke insert, update on telemetry.devices, telemetry.readings from tsfleet_ingest;
revoke insert on ingest.batches, ingest.rejects from tsfleet_ingest;
revoke select on ingest.rejects from tsfleet_ingest;
revoke update (
    status, rows_read, rows_inserted, rows_duplicate, rows_conflict, rows_rejected,
    min_recorded_at, max_recorded_at, error_message, finished_at
) on ingest.batches from tsfleet_ingest;
