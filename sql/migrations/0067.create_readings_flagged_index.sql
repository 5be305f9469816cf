-- Serves the quality-anomalies alert: non-good readings of a recent window are found without
-- reading the good ones. Partial, so it stays small and costs ingest almost nothing.
create index readings_recorded_at_device_id_flagged_idx
on telemetry.readings (recorded_at, device_id)
where quality <> 'good';
