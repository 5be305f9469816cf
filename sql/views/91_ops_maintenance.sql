-- Maintenance views: sizes and compression of tsfleet's hypertables and rollups, per chunk,
-- and TimescaleDB job status (refresh, compression and retention policies). Valid on both
-- editions: on Apache nothing is compressed and ops.jobs is empty.
-- Couples with: migrations 0013, 0041-0042, 0045 (what is compressed, refreshed, dropped);
-- `tsfleet status` (loader/commands/status.py) prints a summary of these.

create or replace view _tsfleet.maintained_hypertables as
select
    format('%I.%I', h.hypertable_schema, h.hypertable_name) as object_name,
    'hypertable' as object_kind,
    format('%I.%I', h.hypertable_schema, h.hypertable_name)::regclass as hypertable,
    h.hypertable_schema,
    h.hypertable_name,
    h.compression_enabled
from timescaledb_information.hypertables as h
where h.hypertable_schema in ('telemetry', 'ingest', 'rollups', 'quality', 'alerts', 'ops')
union all
select
    format('%I.%I', ca.view_schema, ca.view_name) as object_name,
    'continuous_aggregate' as object_kind,
    format(
        '%I.%I', ca.materialization_hypertable_schema, ca.materialization_hypertable_name
    )::regclass as hypertable,
    ca.materialization_hypertable_schema as hypertable_schema,
    ca.materialization_hypertable_name as hypertable_name,
    ca.compression_enabled
from timescaledb_information.continuous_aggregates as ca
where ca.view_schema in ('telemetry', 'ingest', 'rollups', 'quality', 'alerts', 'ops');

comment on view _tsfleet.maintained_hypertables is
'tsfleet hypertables, and the hypertables that store its continuous aggregates, by user name.';

create or replace view ops.hypertable_sizes as
with
chunk_counts as (
    select
        c.hypertable_schema,
        c.hypertable_name,
        count(*) as chunk_count,
        count(*) filter (where c.is_compressed) as compressed_chunk_count
    from timescaledb_information.chunks as c
    group by c.hypertable_schema, c.hypertable_name
),

final as (
    select
        mh.object_name,
        mh.object_kind,
        mh.compression_enabled,
        coalesce(cc.chunk_count, 0) as chunk_count,
        coalesce(cc.compressed_chunk_count, 0) as compressed_chunk_count,
        sz.table_bytes,
        sz.index_bytes,
        sz.toast_bytes,
        sz.total_bytes,
        cs.before_compression_total_bytes,
        cs.after_compression_total_bytes,
        pg_catalog.round(
            100 - 100 * cs.after_compression_total_bytes::numeric
            / nullif(cs.before_compression_total_bytes, 0),
            1
        ) as compression_saved_pct
    from _tsfleet.maintained_hypertables as mh
    cross join lateral public.hypertable_detailed_size(mh.hypertable) as sz
    left join chunk_counts as cc
        on
            mh.hypertable_schema = cc.hypertable_schema
            and mh.hypertable_name = cc.hypertable_name
    left join lateral public.hypertable_compression_stats(mh.hypertable) as cs
        on cs.number_compressed_chunks > 0
)

select * from final;

comment on view ops.hypertable_sizes is
'Size, chunks and compression of every tsfleet hypertable and continuous aggregate.';
comment on column ops.hypertable_sizes.object_name is
'Hypertable, or continuous aggregate (its storage is counted).';
comment on column ops.hypertable_sizes.object_kind is 'hypertable or continuous_aggregate.';
comment on column ops.hypertable_sizes.compression_enabled is
'Compression is enabled (Community edition only).';
comment on column ops.hypertable_sizes.chunk_count is 'Chunks.';
comment on column ops.hypertable_sizes.compressed_chunk_count is 'Compressed chunks.';
comment on column ops.hypertable_sizes.table_bytes is 'Heap bytes of all chunks.';
comment on column ops.hypertable_sizes.index_bytes is 'Index bytes of all chunks.';
comment on column ops.hypertable_sizes.toast_bytes is 'TOAST bytes of all chunks.';
comment on column ops.hypertable_sizes.total_bytes is 'All bytes on disk.';
comment on column ops.hypertable_sizes.before_compression_total_bytes is
'Bytes the compressed chunks took before compression; NULL when none is compressed.';
comment on column ops.hypertable_sizes.after_compression_total_bytes is
'Bytes the compressed chunks take now; NULL when none is compressed.';
comment on column ops.hypertable_sizes.compression_saved_pct is
'100 * (1 - after / before) over compressed chunks: how much smaller compression made them.';

grant select on ops.hypertable_sizes to tsfleet_analyst, tsfleet_grafana;

create or replace view ops.chunk_sizes as
with
final as (
    select
        mh.object_name,
        format('%I.%I', cds.chunk_schema, cds.chunk_name) as chunk_name,
        c.range_start,
        c.range_end,
        c.is_compressed,
        cds.total_bytes,
        ccs.before_compression_total_bytes,
        ccs.after_compression_total_bytes
    from _tsfleet.maintained_hypertables as mh
    cross join lateral public.chunks_detailed_size(mh.hypertable) as cds
    inner join timescaledb_information.chunks as c
        on cds.chunk_schema = c.chunk_schema and cds.chunk_name = c.chunk_name
    left join lateral public.chunk_compression_stats(mh.hypertable) as ccs
        on cds.chunk_schema = ccs.chunk_schema and cds.chunk_name = ccs.chunk_name
)

select * from final;

comment on view ops.chunk_sizes is
'Every chunk of tsfleet''s hypertables and continuous aggregates: range, size, compression.';
comment on column ops.chunk_sizes.object_name is 'Hypertable or continuous aggregate.';
comment on column ops.chunk_sizes.chunk_name is 'Chunk (qualified table name).';
comment on column ops.chunk_sizes.range_start is 'Start of the chunk''s time range.';
comment on column ops.chunk_sizes.range_end is 'End of the chunk''s time range (exclusive).';
comment on column ops.chunk_sizes.is_compressed is 'The chunk is compressed.';
comment on column ops.chunk_sizes.total_bytes is
'Bytes on disk (for a compressed chunk: its compressed data).';
comment on column ops.chunk_sizes.before_compression_total_bytes is
'Bytes before compression (compressed chunks only).';
comment on column ops.chunk_sizes.after_compression_total_bytes is
'Bytes after compression (compressed chunks only).';

grant select on ops.chunk_sizes to tsfleet_analyst, tsfleet_grafana;

create or replace view ops.jobs as
with
last_errors as (
    select distinct on (e.job_id)
        e.job_id,
        e.finish_time,
        e.err_message
    from timescaledb_information.job_errors as e
    order by e.job_id asc, e.finish_time desc
),

final as (
    select
        j.job_id,
        j.proc_name as job_kind,
        coalesce(mh.object_name, j.proc_schema || '.' || j.proc_name) as target_name,
        j.schedule_interval,
        j.scheduled,
        j.config,
        js.last_run_started_at,
        js.last_run_status,
        js.last_successful_finish,
        coalesce(js.next_start, j.next_start) as next_start,
        coalesce(js.total_runs, 0) as total_runs,
        coalesce(js.total_failures, 0) as total_failures,
        le.finish_time as last_error_at,
        le.err_message as last_error
    from timescaledb_information.jobs as j
    -- A refresh policy's target, as the catalog names it: TimescaleDB up to 2.2x reports the
    -- materialization hypertable, newer releases (2.28) the continuous aggregate itself.
    left join _tsfleet.maintained_hypertables as mh
        on
            format('%I.%I', j.hypertable_schema, j.hypertable_name)
            in (mh.object_name, format('%I.%I', mh.hypertable_schema, mh.hypertable_name))
    left join timescaledb_information.job_stats as js on j.job_id = js.job_id
    left join last_errors as le on j.job_id = le.job_id
    where
        j.job_id >= 1000
        and (
            mh.object_name is not null
            or j.proc_schema in (
                'telemetry', 'ingest', 'rollups', 'quality', 'alerts', 'ops', '_tsfleet'
            )
        )
)

select * from final;

comment on view ops.jobs is
'TimescaleDB jobs serving tsfleet (refresh, compression, retention policies): schedule, last '
'run, next run and last error. Empty on the Apache edition, which has no jobs.';
comment on column ops.jobs.job_id is 'TimescaleDB job id.';
comment on column ops.jobs.job_kind is
'What the job runs, e.g. policy_refresh_continuous_aggregate, policy_compression.';
comment on column ops.jobs.target_name is 'Hypertable or continuous aggregate it works on.';
comment on column ops.jobs.schedule_interval is 'How often it runs.';
comment on column ops.jobs.scheduled is 'false when paused.';
comment on column ops.jobs.config is 'Job configuration (offsets, ages).';
comment on column ops.jobs.last_run_started_at is 'Start of the last run.';
comment on column ops.jobs.last_run_status is 'Success or Failed.';
comment on column ops.jobs.last_successful_finish is 'End of the last successful run.';
comment on column ops.jobs.next_start is 'When it runs next.';
comment on column ops.jobs.total_runs is 'Runs so far.';
comment on column ops.jobs.total_failures is 'Failed runs so far.';
comment on column ops.jobs.last_error_at is 'When the newest error happened.';
comment on column ops.jobs.last_error is 'Message of the newest error.';

grant select on ops.jobs to tsfleet_analyst, tsfleet_grafana;
