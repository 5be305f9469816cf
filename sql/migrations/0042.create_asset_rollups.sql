-- Asset rollups: hourly per asset and metric, and hourly asset health (min, avg, last score).
-- Edition-aware like 0041: continuous aggregates on Community, hypertables on Apache.
-- Couples with: 0040 (definitions), 0041 (same creation block), 40_rollups_refresh.sql.
insert into _tsfleet.rollup_definitions (
    rollup_name, bucket_width, refresh_order, source_table, group_columns, source_query,
    policy_start_offset, policy_end_offset, policy_schedule, compress_after, description
) values
(
    'rollups.asset_metrics_hourly', interval '1 hour', 50, 'telemetry.asset_readings',
    '{asset_id,metric_id}',
    'select
    public.time_bucket(interval ''1 hour'', ar.recorded_at) as bucket_start,
    ar.asset_id,
    ar.metric_id,
    min(ar.value) as value_min,
    max(ar.value) as value_max,
    avg(ar.value) as value_avg,
    stddev_samp(ar.value) as value_stddev,
    count(*) as reading_count,
    count(*) filter (where ar.quality <> ''good'') as nongood_count,
    public.first(ar.value, ar.recorded_at) as value_first,
    public.last(ar.value, ar.recorded_at) as value_last
from telemetry.asset_readings as ar
group by 1, 2, 3',
    interval '3 days', interval '10 minutes', interval '15 minutes', interval '30 days',
    'Per asset, metric and hour: min, max, avg, stddev, count, non-good count, first, last.'
),
(
    'rollups.asset_health_hourly', interval '1 hour', 60, 'telemetry.asset_readings',
    '{asset_id}',
    'select
    public.time_bucket(interval ''1 hour'', ar.recorded_at) as bucket_start,
    ar.asset_id,
    min(ar.value) as health_score_min,
    avg(ar.value) as health_score_avg,
    public.last(ar.value, ar.recorded_at) as health_score_last,
    count(*) as reading_count
from telemetry.asset_readings as ar
inner join telemetry.metrics as m on ar.metric_id = m.metric_id
where m.metric_name = ''health_score''
group by 1, 2',
    interval '3 days', interval '10 minutes', interval '15 minutes', null,
    'Asset health per asset and hour: lowest, mean and latest health score (0..100).'
);

-- Same block as in 0041: create each rollup of this migration for the server's edition.
do $$
declare
    def record;
    is_community boolean := current_setting('timescaledb.license', true) = 'timescale';
begin
    for def in
        select rd.* from _tsfleet.rollup_definitions as rd
        where rd.rollup_name in (
            'rollups.asset_metrics_hourly', 'rollups.asset_health_hourly'
        )
        order by rd.refresh_order
    loop
        if is_community then
            execute format(
                'create materialized view %s with (timescaledb.continuous, '
                'timescaledb.materialized_only = true) as %s with no data',
                def.rollup_name, def.source_query
            );
            execute format('comment on view %s is %L', def.rollup_name, def.description);
            perform public.add_continuous_aggregate_policy(
                def.rollup_name::regclass,
                start_offset => def.policy_start_offset,
                end_offset => def.policy_end_offset,
                schedule_interval => def.policy_schedule
            );
            insert into _tsfleet.setup_log (feature, object_name, status, detail)
            values (
                'continuous_aggregate', def.rollup_name, 'enabled',
                format('refresh every %s over [now - %s, now - %s]', def.policy_schedule,
                    def.policy_start_offset, def.policy_end_offset)
            );
            if def.compress_after is not null then
                execute format(
                    'alter materialized view %s set (timescaledb.compress = true)',
                    def.rollup_name
                );
                perform public.add_compression_policy(
                    def.rollup_name::regclass, compress_after => def.compress_after
                );
                insert into _tsfleet.setup_log (feature, object_name, status, detail)
                values (
                    'compression', def.rollup_name, 'enabled',
                    format('compress rollup chunks older than %s', def.compress_after)
                );
            end if;
            raise notice 'tsfleet: continuous aggregate % created', def.rollup_name;
        else
            execute format(
                'create table %s as %s with no data', def.rollup_name, def.source_query
            );
            execute format('comment on table %s is %L', def.rollup_name, def.description);
            perform public.create_hypertable(
                def.rollup_name::regclass,
                public.by_range('bucket_start', def.bucket_width * 720),
                create_default_indexes => false
            );
            execute format(
                'create unique index %I on %s (bucket_start, %s)',
                split_part(def.rollup_name, '.', 2) || '_bucket_start_'
                || array_to_string(def.group_columns, '_') || '_key',
                def.rollup_name,
                (select string_agg(format('%I', gc), ', ') from unnest(def.group_columns) as gc)
            );
            insert into _tsfleet.setup_log (feature, object_name, status, detail)
            values (
                'continuous_aggregate', def.rollup_name, 'skipped',
                'TimescaleDB Apache edition: a hypertable filled by rollups.refresh() instead'
            );
            raise notice 'tsfleet: continuous aggregate % skipped (Apache edition): '
            'created as a table refreshed by rollups.refresh()', def.rollup_name;
        end if;
        execute format(
            'grant select on %s to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest',
            def.rollup_name
        );
    end loop;
end;
$$;

comment on column rollups.asset_metrics_hourly.bucket_start is 'Start of the hour (UTC).';
comment on column rollups.asset_metrics_hourly.asset_id is 'Asset (telemetry.assets).';
comment on column rollups.asset_metrics_hourly.metric_id is 'Asset metric (telemetry.metrics).';
comment on column rollups.asset_metrics_hourly.value_min is 'Smallest value in the hour.';
comment on column rollups.asset_metrics_hourly.value_max is 'Largest value in the hour.';
comment on column rollups.asset_metrics_hourly.value_avg is 'Mean value in the hour.';
comment on column rollups.asset_metrics_hourly.value_stddev is
'Sample standard deviation in the hour (NULL for a single reading).';
comment on column rollups.asset_metrics_hourly.reading_count is 'Asset readings in the hour.';
comment on column rollups.asset_metrics_hourly.nongood_count is
'Asset readings in the hour whose quality flag is not ''good''.';
comment on column rollups.asset_metrics_hourly.value_first is 'Earliest value in the hour.';
comment on column rollups.asset_metrics_hourly.value_last is 'Latest value in the hour.';

comment on column rollups.asset_health_hourly.bucket_start is 'Start of the hour (UTC).';
comment on column rollups.asset_health_hourly.asset_id is 'Asset (telemetry.assets).';
comment on column rollups.asset_health_hourly.health_score_min is
'Lowest health score in the hour (0..100).';
comment on column rollups.asset_health_hourly.health_score_avg is 'Mean health score in the hour.';
comment on column rollups.asset_health_hourly.health_score_last is
'Latest health score in the hour.';
comment on column rollups.asset_health_hourly.reading_count is
'Health scores computed in the hour.';
