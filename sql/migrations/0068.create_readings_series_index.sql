-- The per-series read path. Alert conditions read each series' readings since their previous
-- evaluation and its newest reading at or before the evaluation time; Grafana panels read one
-- device's metrics over a window. Without a device-led index both scan every device's readings
-- of the window (issue 13). Device first, then time: "the newest reading of a device at or
-- before t" (stale devices) is one backward index probe; metric last, so one metric of a
-- device is filtered inside the index before the heap is read. It costs the loader: see
-- docs/operations.md (Indexes) for the figure measured by `make bench`.
-- Couples with: sql/functions/51_alerts_signals.sql (the probes it serves).
create index readings_device_id_recorded_at_metric_id_idx
on telemetry.readings (device_id, recorded_at, metric_id);
