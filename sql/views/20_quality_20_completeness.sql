-- Completeness per device, metric and complete hour: readings received vs expected from the
-- series' nominal interval (quality.intervals). Hours older than
-- quality.parameters.recent_from_raw are counted from rollups.device_metrics_hourly (fast at
-- any history length), newer ones from raw readings (fresh even before a rollup refresh).
-- Hours run from the series' first hour in the lookback to the last complete hour; an hour
-- with no readings has received = 0.
-- Couples with: alerts.condition_poor_completeness (reads device_id, metric_id, hour_start,
-- completeness_pct), quality.intervals, quality.parameters.

create or replace view quality.completeness_hourly as
with
params as (
    select
        pg_catalog.date_trunc('hour', pg_catalog.now()) as current_hour,
        pg_catalog.date_trunc('hour', pg_catalog.now() - p.completeness_lookback) as first_hour,
        pg_catalog.date_trunc('hour', pg_catalog.now() - p.recent_from_raw) as raw_from
    from quality.parameters as p
),

counted as (
    select
        h.device_id,
        h.metric_id,
        h.bucket_start as hour_start,
        h.reading_count as received
    from rollups.device_metrics_hourly as h
    cross join params as p
    where h.bucket_start >= p.first_hour and h.bucket_start < p.raw_from
    union all
    select
        r.device_id,
        r.metric_id,
        public.time_bucket(interval '1 hour', r.recorded_at) as hour_start,
        count(*) as received
    from telemetry.readings as r
    cross join params as p
    where r.recorded_at >= greatest(p.raw_from, p.first_hour) and r.recorded_at < p.current_hour
    group by r.device_id, r.metric_id, public.time_bucket(interval '1 hour', r.recorded_at)
),

series as (
    select
        c.device_id,
        c.metric_id,
        min(c.hour_start) as first_hour
    from counted as c
    group by c.device_id, c.metric_id
),

hours as (
    select
        s.device_id,
        s.metric_id,
        hs.hour_start
    from series as s
    cross join params as p
    cross join lateral pg_catalog.generate_series(
        s.first_hour, p.current_hour - interval '1 hour', interval '1 hour'
    ) as hs (hour_start)
),

expectations as (
    select
        i.device_id,
        i.device_key,
        i.metric_id,
        i.metric_name,
        i.nominal_interval,
        i.interval_source,
        extract(epoch from interval '1 hour')
        / extract(epoch from i.nominal_interval) as expected_per_hour
    from quality.intervals as i
    where i.nominal_interval is not null
),

final as (
    select
        h.device_id,
        i.device_key,
        h.metric_id,
        i.metric_name,
        h.hour_start,
        coalesce(c.received, 0) as received,
        pg_catalog.round(i.expected_per_hour::numeric, 2) as expected,
        pg_catalog.round(
            least(100, 100 * coalesce(c.received, 0) / i.expected_per_hour)::numeric, 1
        ) as completeness_pct,
        i.nominal_interval,
        i.interval_source
    from hours as h
    inner join expectations as i
        on h.device_id = i.device_id and h.metric_id = i.metric_id
    left join counted as c
        on
            h.device_id = c.device_id and h.metric_id = c.metric_id
            and h.hour_start = c.hour_start
)

select * from final;

comment on view quality.completeness_hourly is
'Readings received vs expected per device, metric and complete hour over the lookback '
'(quality.parameters); hours without readings are listed with received = 0.';
comment on column quality.completeness_hourly.device_id is 'Device (telemetry.devices).';
comment on column quality.completeness_hourly.device_key is 'External device id.';
comment on column quality.completeness_hourly.metric_id is 'Metric (telemetry.metrics).';
comment on column quality.completeness_hourly.metric_name is 'Metric name.';
comment on column quality.completeness_hourly.hour_start is 'Start of the hour (UTC).';
comment on column quality.completeness_hourly.received is 'Readings received in the hour.';
comment on column quality.completeness_hourly.expected is
'Readings expected in the hour: 1 hour / nominal_interval.';
comment on column quality.completeness_hourly.completeness_pct is
'100 * received / expected, capped at 100.';
comment on column quality.completeness_hourly.nominal_interval is
'Interval the expectation is based on (quality.intervals).';
comment on column quality.completeness_hourly.interval_source is
'device (set on the device) or learned (from its readings).';

grant select on quality.completeness_hourly to tsfleet_analyst, tsfleet_grafana;
