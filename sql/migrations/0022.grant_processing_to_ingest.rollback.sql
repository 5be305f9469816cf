revoke select on telemetry.readings, telemetry.devices, telemetry.device_asset_links,
telemetry.asset_types, telemetry.health_rules from tsfleet_ingest;
revoke select, insert on telemetry.metrics, telemetry.asset_readings from tsfleet_ingest;
revoke select, update (latest_health_score, latest_health_at, latest_health_source)
on telemetry.assets from tsfleet_ingest;
revoke select, update (asset_rows_inserted) on ingest.batches from tsfleet_ingest;
revoke select on telemetry.asset_types, telemetry.health_rules from tsfleet_analyst;
