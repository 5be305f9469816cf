-- Room for HOT updates in the two tables every ingest batch updates row by row: each batch
-- advances telemetry.devices.last_reading_at of its devices (ingest.insert_staged_readings,
-- ingest.record_device_last_readings) and telemetry.assets.latest_health_* of its assets
-- (ingest.process_batch). On full pages most of those updates could not stay on their page
-- and wrote a new entry in every index of the table; with a fifth of each page kept free they
-- stay on it (measured: 1,000 device updates 9 ms -> 2.6 ms, bench/bench_consume.py, issue 8).
-- New pages only: existing pages fill as before until rewritten (VACUUM FULL, pg_repack).
alter table telemetry.devices set (fillfactor = 80);
alter table telemetry.assets set (fillfactor = 80);
