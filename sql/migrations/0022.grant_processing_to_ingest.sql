-- Table privileges that ingest.process_batch / process_range need when tsfleet_ingest calls
-- them (they run as the caller: no security definer), and read access to the scoring
-- configuration for analysts calling telemetry.health_score() from psql.
-- Couples with: sql/functions/32_process_readings.sql (what the functions read and write).
grant select on telemetry.readings, telemetry.devices, telemetry.device_asset_links,
telemetry.asset_types, telemetry.health_rules to tsfleet_ingest;
grant select, insert on telemetry.metrics, telemetry.asset_readings to tsfleet_ingest;
grant select, update (latest_health_score, latest_health_at, latest_health_source)
on telemetry.assets to tsfleet_ingest;
grant select, update (asset_rows_inserted) on ingest.batches to tsfleet_ingest;
grant select on telemetry.asset_types, telemetry.health_rules to tsfleet_analyst;
