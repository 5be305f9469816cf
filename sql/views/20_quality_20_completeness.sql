-- Completeness per device, metric and complete hour of a window [p_start, p_end): readings
-- received vs expected from the series' nominal interval (quality.intervals_between over the
-- same window). Hours older than quality.parameters.recent_from_raw before p_end are counted
-- from rollups.device_metrics_hourly (fast at any history length), newer ones from raw
-- readings (fresh even before a rollup refresh).
-- Hours: from the hour of p_start to the last hour that ends by p_end. An hour without readings
-- of an expected series is listed with received = 0 (0 %), never left out. A series is expected
-- from the window's first hour, or, if its device was registered later than that and the
-- series' first reading of the window is later still, from the earlier of those two hours
-- (devices are registered on their first reading; a backfilled device, registered after its
-- readings, is expected from its first reading of the window).
-- Couples with: quality.intervals_between, quality.parameters, and the
-- settings note in 20_quality_10_intervals.sql (plpgsql, custom plans, jit off, definer).

create or replace function quality.completeness_between(p_start timestamptz, p_end timestamptz)
returns table (
    device_id integer,
    device_key text,
    metric_id integer,
    metric_name text,
    hour_start timestamptz,
    received bigint,
    expected numeric,
    completeness_pct numeric,
    nominal_interval interval,
    interval_source text
)
language plpgsql
stable
security definer
set search_path = pg_catalog, pg_temp
set plan_cache_mode = force_custom_plan
set jit = off
as $$
#variable_conflict use_column
declare
    -- UTC hours (time_bucket), whatever the session's time zone (date_trunc would use it).
    first_hour timestamptz := public.time_bucket(interval '1 hour', p_start);
    end_hour timestamptz := public.time_bucket(interval '1 hour', p_end);
    raw_from timestamptz;
begin
    if p_start is null or p_end is null or p_start >= p_end then
        raise exception 'quality.completeness_between: need p_start < p_end, got [%, %)',
            p_start, p_end;
    end if;
    raw_from := greatest(
        first_hour,
        public.time_bucket(
            interval '1 hour', p_end - (select p.recent_from_raw from quality.parameters as p)
        )
    );

    return query
    with
    counted as (
        select
            h.device_id,
            h.metric_id,
            h.bucket_start as hour_start,
            h.reading_count as received
        from rollups.device_metrics_hourly as h
        where h.bucket_start >= first_hour and h.bucket_start < least(raw_from, end_hour)
        union all
        select
            r.device_id,
            r.metric_id,
            public.time_bucket(interval '1 hour', r.recorded_at) as hour_start,
            count(*) as received
        from telemetry.readings as r
        where r.recorded_at >= raw_from and r.recorded_at < end_hour
        group by r.device_id, r.metric_id, public.time_bucket(interval '1 hour', r.recorded_at)
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
        from quality.intervals_between(p_start, p_end) as i
        where i.nominal_interval is not null
    ),

    series as (
        select
            e.device_id,
            e.metric_id,
            greatest(
                first_hour,
                least(public.time_bucket(interval '1 hour', d.created_at), min(c.hour_start))
            ) as expected_from
        from expectations as e
        inner join telemetry.devices as d on e.device_id = d.device_id
        left join counted as c on e.device_id = c.device_id and e.metric_id = c.metric_id
        group by e.device_id, e.metric_id, d.created_at
    ),

    hours as (
        select
            s.device_id,
            s.metric_id,
            hs.hour_start
        from series as s
        cross join lateral pg_catalog.generate_series(
            s.expected_from, end_hour - interval '1 hour', interval '1 hour'
        ) as hs (hour_start)
    )

    select
        h.device_id,
        e.device_key,
        h.metric_id,
        e.metric_name,
        h.hour_start,
        coalesce(c.received, 0)::bigint as received,
        pg_catalog.round(e.expected_per_hour::numeric, 2) as expected,
        pg_catalog.round(
            least(100, 100 * coalesce(c.received, 0) / e.expected_per_hour)::numeric, 1
        ) as completeness_pct,
        e.nominal_interval,
        e.interval_source
    from hours as h
    inner join expectations as e
        on h.device_id = e.device_id and h.metric_id = e.metric_id
    left join counted as c
        on
            h.device_id = c.device_id and h.metric_id = c.metric_id
            and h.hour_start = c.hour_start;
end;
$$;

comment on function quality.completeness_between(timestamptz, timestamptz) is
'Readings received vs expected per device, metric and complete hour of [p_start, p_end) (from '
'the hour of p_start to the last hour ending by p_end). Hours without readings of an expected '
'series are listed with received = 0. Reads only the window''s chunks; jit off.';

grant execute on function quality.completeness_between(timestamptz, timestamptz)
to tsfleet_analyst, tsfleet_grafana;

-- The last completeness_lookback up to now(): quality.completeness_between over that window.
create or replace view quality.completeness_hourly as
select
    c.device_id,
    c.device_key,
    c.metric_id,
    c.metric_name,
    c.hour_start,
    c.received,
    c.expected,
    c.completeness_pct,
    c.nominal_interval,
    c.interval_source
from quality.parameters as p
cross join lateral quality.completeness_between(
    pg_catalog.now() - p.completeness_lookback, pg_catalog.now()
) as c;

comment on view quality.completeness_hourly is
'Readings received vs expected per device, metric and complete hour over the lookback '
'(quality.parameters); hours without readings are listed with received = 0: '
'quality.completeness_between(now() - completeness_lookback, now()).';
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
