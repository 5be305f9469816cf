-- Device rollups: hourly and daily per device and metric, daily battery state of charge and the
-- greenhouse instrument daily summary. Edition-aware, same names and columns on both editions:
--   Community: continuous aggregates (materialized only), daily ones built on the hourly one,
--              refresh policies from _tsfleet.rollup_definitions, compression where it pays;
--   Apache:    hypertables of the same shape, filled by rollups.refresh() from the same query.
-- Created WITH NO DATA inside this (transactional) migration, so it is all or nothing; the
-- first `call rollups.refresh()` fills them.
-- Couples with: 0040 (definitions), sql/functions/40_rollups_refresh.sql, quality views.
insert into _tsfleet.rollup_definitions (
    rollup_name, bucket_width, refresh_order, source_table, group_columns, source_query,
    policy_start_offset, policy_end_offset, policy_schedule, compress_after, description
) values
(
    'rollups.device_metrics_hourly', interval '1 hour', 10, 'telemetry.readings',
    '{device_id,metric_id}',
    'select
    public.time_bucket(interval ''1 hour'', r.recorded_at) as bucket_start,
    r.device_id,
    r.metric_id,
    min(r.value) as value_min,
    max(r.value) as value_max,
    avg(r.value) as value_avg,
    stddev_samp(r.value) as value_stddev,
    count(*) as reading_count,
    count(*) filter (where r.quality <> ''good'') as nongood_count,
    public.first(r.value, r.recorded_at) as value_first,
    public.last(r.value, r.recorded_at) as value_last
from telemetry.readings as r
group by 1, 2, 3',
    interval '3 days', interval '10 minutes', interval '15 minutes', interval '30 days',
    'Per device, metric and hour: min, max, avg, stddev, count, non-good count, first, last.'
),
(
    'rollups.device_metrics_daily', interval '1 day', 20, 'rollups.device_metrics_hourly',
    '{device_id,metric_id}',
    -- Built on the hourly rollup: avg weighted by count; stddev from the hourly sums of squares.
    'select
    public.time_bucket(interval ''1 day'', h.bucket_start) as bucket_start,
    h.device_id,
    h.metric_id,
    min(h.value_min) as value_min,
    max(h.value_max) as value_max,
    sum(h.value_avg * h.reading_count) / sum(h.reading_count) as value_avg,
    sqrt(greatest(0, (
        sum((h.reading_count - 1) * coalesce(h.value_stddev, 0) ^ 2
            + h.reading_count * h.value_avg ^ 2)
        - sum(h.value_avg * h.reading_count) ^ 2 / sum(h.reading_count)
    ) / nullif(sum(h.reading_count) - 1, 0))) as value_stddev,
    sum(h.reading_count)::bigint as reading_count,
    sum(h.nongood_count)::bigint as nongood_count,
    public.first(h.value_first, h.bucket_start) as value_first,
    public.last(h.value_last, h.bucket_start) as value_last
from rollups.device_metrics_hourly as h
group by 1, 2, 3',
    interval '5 days', interval '1 hour', interval '1 hour', null,
    'Per device, metric and UTC day: min, max, avg, stddev, count, non-good count, first, last.'
),
(
    'rollups.battery_soc_daily', interval '1 day', 30, 'rollups.device_metrics_hourly',
    '{device_id}',
    'select
    public.time_bucket(interval ''1 day'', h.bucket_start) as bucket_start,
    h.device_id,
    min(h.value_min) as soc_min_pct,
    max(h.value_max) as soc_max_pct,
    sum(h.value_avg * h.reading_count) / sum(h.reading_count) as soc_avg_pct,
    public.last(h.value_last, h.bucket_start) as soc_last_pct,
    sum(h.reading_count)::bigint as reading_count
from rollups.device_metrics_hourly as h
inner join telemetry.metrics as m on h.metric_id = m.metric_id
where m.metric_name = ''StateOfChargePercentage''
group by 1, 2',
    interval '5 days', interval '1 hour', interval '1 hour', null,
    'Battery state of charge per device and UTC day (StateOfChargePercentage), for degradation.'
),
(
    'rollups.instrument_daily', interval '1 day', 40, 'rollups.device_metrics_hourly',
    '{device_id}',
    'select
    public.time_bucket(interval ''1 day'', h.bucket_start) as bucket_start,
    h.device_id,
    min(h.value_min) filter (where m.metric_name = ''temperature_c'') as temperature_min_c,
    max(h.value_max) filter (where m.metric_name = ''temperature_c'') as temperature_max_c,
    sum(h.value_avg * h.reading_count) filter (where m.metric_name = ''temperature_c'')
    / sum(h.reading_count) filter (where m.metric_name = ''temperature_c'') as temperature_avg_c,
    coalesce(sum(h.reading_count) filter (where m.metric_name = ''temperature_c''), 0)::bigint
        as temperature_count,
    coalesce(sum(h.nongood_count) filter (where m.metric_name = ''temperature_c''), 0)::bigint
        as temperature_nongood_count,
    min(h.value_min) filter (where m.metric_name = ''humidity_pct'') as humidity_min_pct,
    max(h.value_max) filter (where m.metric_name = ''humidity_pct'') as humidity_max_pct,
    sum(h.value_avg * h.reading_count) filter (where m.metric_name = ''humidity_pct'')
    / sum(h.reading_count) filter (where m.metric_name = ''humidity_pct'') as humidity_avg_pct,
    coalesce(sum(h.reading_count) filter (where m.metric_name = ''humidity_pct''), 0)::bigint
        as humidity_count,
    coalesce(sum(h.nongood_count) filter (where m.metric_name = ''humidity_pct''), 0)::bigint
        as humidity_nongood_count,
    sum(h.reading_count)::bigint as reading_count,
    sum(h.nongood_count)::bigint as nongood_count
from rollups.device_metrics_hourly as h
inner join telemetry.metrics as m on h.metric_id = m.metric_id
where m.metric_name in (''temperature_c'', ''humidity_pct'')
group by 1, 2',
    interval '5 days', interval '1 hour', interval '1 hour', null,
    'Greenhouse instruments per UTC day: temperature and humidity min/max/avg, counts, non-good.'
);

-- Same block in 0042: create each rollup of this migration for the server's edition.
do $$
declare
    def record;
    is_community boolean := current_setting('timescaledb.license', true) = 'timescale';
begin
    for def in
        select rd.* from _tsfleet.rollup_definitions as rd
        where rd.rollup_name in (
            'rollups.device_metrics_hourly', 'rollups.device_metrics_daily',
            'rollups.battery_soc_daily', 'rollups.instrument_daily'
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

comment on column rollups.device_metrics_hourly.bucket_start is 'Start of the hour (UTC).';
comment on column rollups.device_metrics_hourly.device_id is 'Device (telemetry.devices).';
comment on column rollups.device_metrics_hourly.metric_id is 'Metric (telemetry.metrics).';
comment on column rollups.device_metrics_hourly.value_min is 'Smallest value in the hour.';
comment on column rollups.device_metrics_hourly.value_max is 'Largest value in the hour.';
comment on column rollups.device_metrics_hourly.value_avg is 'Mean value in the hour.';
comment on column rollups.device_metrics_hourly.value_stddev is
'Sample standard deviation in the hour (NULL for a single reading).';
comment on column rollups.device_metrics_hourly.reading_count is 'Readings in the hour.';
comment on column rollups.device_metrics_hourly.nongood_count is
'Readings in the hour whose quality flag is not ''good''.';
comment on column rollups.device_metrics_hourly.value_first is 'Earliest value in the hour.';
comment on column rollups.device_metrics_hourly.value_last is 'Latest value in the hour.';

comment on column rollups.device_metrics_daily.bucket_start is 'Start of the UTC day.';
comment on column rollups.device_metrics_daily.device_id is 'Device (telemetry.devices).';
comment on column rollups.device_metrics_daily.metric_id is 'Metric (telemetry.metrics).';
comment on column rollups.device_metrics_daily.value_min is 'Smallest value of the day.';
comment on column rollups.device_metrics_daily.value_max is 'Largest value of the day.';
comment on column rollups.device_metrics_daily.value_avg is 'Mean value of the day.';
comment on column rollups.device_metrics_daily.value_stddev is
'Sample standard deviation of the day (combined from the hourly rollup).';
comment on column rollups.device_metrics_daily.reading_count is 'Readings of the day.';
comment on column rollups.device_metrics_daily.nongood_count is
'Readings of the day whose quality flag is not ''good''.';
comment on column rollups.device_metrics_daily.value_first is 'Earliest value of the day.';
comment on column rollups.device_metrics_daily.value_last is 'Latest value of the day.';

comment on column rollups.battery_soc_daily.bucket_start is 'Start of the UTC day.';
comment on column rollups.battery_soc_daily.device_id is 'Battery device (telemetry.devices).';
comment on column rollups.battery_soc_daily.soc_min_pct is
'Lowest state of charge of the day, percent (the degradation signal).';
comment on column rollups.battery_soc_daily.soc_max_pct is 'Highest state of charge, percent.';
comment on column rollups.battery_soc_daily.soc_avg_pct is 'Mean state of charge, percent.';
comment on column rollups.battery_soc_daily.soc_last_pct is
'Latest state of charge of the day, percent.';
comment on column rollups.battery_soc_daily.reading_count is 'State-of-charge readings.';

comment on column rollups.instrument_daily.bucket_start is 'Start of the UTC day.';
comment on column rollups.instrument_daily.device_id is
'Instrument (telemetry.devices; device_key is the instrument id).';
comment on column rollups.instrument_daily.temperature_min_c is 'Lowest temperature, Celsius.';
comment on column rollups.instrument_daily.temperature_max_c is 'Highest temperature, Celsius.';
comment on column rollups.instrument_daily.temperature_avg_c is 'Mean temperature, Celsius.';
comment on column rollups.instrument_daily.temperature_count is 'Temperature readings.';
comment on column rollups.instrument_daily.temperature_nongood_count is
'Temperature readings with a quality flag other than ''good''.';
comment on column rollups.instrument_daily.humidity_min_pct is 'Lowest relative humidity, %.';
comment on column rollups.instrument_daily.humidity_max_pct is 'Highest relative humidity, %.';
comment on column rollups.instrument_daily.humidity_avg_pct is 'Mean relative humidity, %.';
comment on column rollups.instrument_daily.humidity_count is 'Humidity readings.';
comment on column rollups.instrument_daily.humidity_nongood_count is
'Humidity readings with a quality flag other than ''good''.';
comment on column rollups.instrument_daily.reading_count is
'Temperature and humidity readings together.';
comment on column rollups.instrument_daily.nongood_count is
'Temperature and humidity readings with a quality flag other than ''good''.';
