-- 7-day chunks for the raw hypertables (1 day until now, migrations 0006 and 0010). A load
-- pays for every chunk it creates (about 6 ms each here: table, constraint, indexes), so the
-- chunk count, not the rows, set the cost of sparse history: 7,000 hourly readings over 311
-- days created 311 chunks and took 2.1 s to write, the same rows in one day 0.3 s. At 7 days
-- the fleets we size for (3-6 M rows a day) write 20-40 M rows, 2-5 GB with indexes, per
-- chunk: still within the 25%-of-RAM guideline on the servers we target; chunk exclusion
-- keeps "recent" queries on the newest chunk; compression (older than 7 days) and retention
-- work on whole weeks. TimescaleDB's own default is 7 days.
-- New chunks only: existing 1-day chunks stay as they are.
-- Couples with: bench/bench_sparse_load.py (the sparse-year vs one-day benchmark).
do $$
begin
    perform public.set_chunk_time_interval('telemetry.readings', interval '7 days');
    perform public.set_chunk_time_interval('telemetry.asset_readings', interval '7 days');
end;
$$;

comment on table telemetry.readings is
'Device readings, narrow: one value per time, device and metric (hypertable, 7-day chunks).';
