-- Nominal reading interval per device and metric over a window [p_start, p_end): the device's
-- nominal_interval when set, else learned. Also the newest reading time before p_end. Series
-- are those seen in the window's hours (hourly rollup) or its last recent_from_raw (raw).
-- Never reads readings per series (telemetry.readings has no device-led index, by design:
-- migration 0006): raw readings only by time range, the rest from the hourly rollup.
--   recent:  readings of the window's last recent_from_raw (one time-range scan); the learned
--            interval is the median spacing of each series' newest interval_sample_size of
--            them, when they give at least 3 spacings;
--   hourly:  otherwise 1 hour / the median reading_count of the series' non-empty complete
--            hours in the window, or, for series with one reading an hour or fewer, the median
--            distance between consecutive non-empty hours;
--   last_reading_at: newest recent reading, else the newest reading inside the series' last
--            non-empty hour (time-range scans of those hours only).
-- All quality functions share these settings, for the same reasons:
--   plpgsql, plan_cache_mode = force_custom_plan: every statement is planned with the window's
--     bounds as constants, so TimescaleDB excludes the chunks outside the window while planning
--     (a SQL function or a generic plan sees parameters, plans every chunk of the hypertable
--     and costs more the more history is stored);
--   jit = off: the plans are cheap to run but costed high over many rows; JIT compiled them for
--     seconds to save milliseconds (quality.gaps: 11.6 s with jit=on, 0.35 s off, one year);
--   security definer: analysts and Grafana read the quality views and functions, not the raw
--     tables they summarize (they have no SELECT on telemetry.readings). search_path is pinned
--     and the only inputs are two timestamps, used as values.
-- Couples with: quality.parameters (0044), the other quality functions and views,
-- rollups.device_metrics_hourly (0041), telemetry.readings' indexes (0006).

create or replace function quality.intervals_between(p_start timestamptz, p_end timestamptz)
returns table (
    device_id integer,
    device_key text,
    metric_id integer,
    metric_name text,
    nominal_interval interval,
    interval_source text,
    learned_interval interval,
    spacing_count bigint,
    last_reading_at timestamptz
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
    params quality.parameters;
    raw_from timestamptz;
    last_full_hour timestamptz;
begin
    if p_start is null or p_end is null or p_start >= p_end then
        raise exception 'quality.intervals_between: need p_start < p_end, got [%, %)',
            p_start, p_end;
    end if;
    select p.* into params from quality.parameters as p;
    raw_from := greatest(p_start, p_end - params.recent_from_raw);
    -- Hours from p_start's to the last that ends by p_end (the bucket of p_end's hour holds
    -- later readings too). Hours are UTC (time_bucket), whatever the session's time zone.
    last_full_hour := public.time_bucket(interval '1 hour', p_end) - interval '1 hour';

    return query
    with
    hourly as (
        select
            h.device_id,
            h.metric_id,
            h.bucket_start,
            h.reading_count,
            h.bucket_start - pg_catalog.lag(h.bucket_start) over (
                partition by h.device_id, h.metric_id order by h.bucket_start
            ) as bucket_spacing
        from rollups.device_metrics_hourly as h
        where
            h.bucket_start >= public.time_bucket(interval '1 hour', p_start)
            and h.bucket_start <= last_full_hour
            and h.reading_count > 0
    ),

    hourly_learned as (
        select
            h.device_id,
            h.metric_id,
            max(h.bucket_start) as last_bucket_start,
            sum(h.reading_count)::bigint as reading_count,
            percentile_disc(0.5) within group (order by h.reading_count) as median_count,
            percentile_disc(0.5) within group (order by h.bucket_spacing)
                as median_bucket_spacing
        from hourly as h
        group by h.device_id, h.metric_id
    ),

    recent as (
        select
            r.device_id,
            r.metric_id,
            r.recorded_at,
            pg_catalog.row_number() over (
                partition by r.device_id, r.metric_id order by r.recorded_at desc
            ) as newest_rank
        from telemetry.readings as r
        where r.recorded_at >= raw_from and r.recorded_at < p_end
    ),

    recent_spacings as (
        select
            re.device_id,
            re.metric_id,
            re.recorded_at,
            re.recorded_at - pg_catalog.lead(re.recorded_at) over (
                partition by re.device_id, re.metric_id order by re.recorded_at desc
            ) as spacing
        from recent as re
        where re.newest_rank <= params.interval_sample_size
    ),

    recent_learned as (
        select
            rs.device_id,
            rs.metric_id,
            max(rs.recorded_at) as last_reading_at,
            count(rs.spacing) as spacing_count,
            percentile_disc(0.5) within group (order by rs.spacing) as learned_interval
        from recent_spacings as rs
        group by rs.device_id, rs.metric_id
    ),

    stale as (
        select
            hl.device_id,
            hl.metric_id,
            hl.last_bucket_start
        from hourly_learned as hl
        left join recent_learned as rl
            on hl.device_id = rl.device_id and hl.metric_id = rl.metric_id
        where rl.device_id is null
    ),

    stale_hours as (
        select distinct s.last_bucket_start from stale as s
    ),

    stale_last as (
        select
            s.device_id,
            s.metric_id,
            max(r.recorded_at) as last_reading_at
        from stale_hours as sh
        inner join telemetry.readings as r
            on
                sh.last_bucket_start <= r.recorded_at
                and r.recorded_at < sh.last_bucket_start + interval '1 hour'
        inner join stale as s
            on
                r.device_id = s.device_id
                and r.metric_id = s.metric_id
                and sh.last_bucket_start = s.last_bucket_start
        -- Constant bounds: the planner excludes the chunks outside the window.
        where r.recorded_at >= p_start and r.recorded_at < p_end
        group by s.device_id, s.metric_id
    ),

    learned as (
        select
            coalesce(rl.device_id, hl.device_id) as device_id,
            coalesce(rl.metric_id, hl.metric_id) as metric_id,
            coalesce(rl.last_reading_at, sl.last_reading_at) as last_reading_at,
            case
                when rl.spacing_count >= 3 then rl.spacing_count
                when hl.reading_count > 1 then hl.reading_count - 1
                else coalesce(rl.spacing_count, 0)
            end as spacing_count,
            case
                when rl.spacing_count >= 3 then rl.learned_interval
                when hl.median_count >= 2 then interval '1 hour' / hl.median_count
                when hl.median_bucket_spacing is not null then hl.median_bucket_spacing
                else rl.learned_interval
            end as learned_interval
        from recent_learned as rl
        full join hourly_learned as hl
            on rl.device_id = hl.device_id and rl.metric_id = hl.metric_id
        left join stale_last as sl
            on hl.device_id = sl.device_id and hl.metric_id = sl.metric_id
    )

    select
        l.device_id,
        d.device_key,
        l.metric_id,
        m.metric_name,
        coalesce(d.nominal_interval, l.learned_interval) as nominal_interval,
        case
            when d.nominal_interval is not null then 'device'
            when l.learned_interval is not null then 'learned'
        end as interval_source,
        l.learned_interval,
        l.spacing_count,
        l.last_reading_at
    from learned as l
    inner join telemetry.devices as d on l.device_id = d.device_id
    inner join telemetry.metrics as m on l.metric_id = m.metric_id;
end;
$$;

comment on function quality.intervals_between(timestamptz, timestamptz) is
'Nominal interval per device and metric seen in [p_start, p_end) (set on the device, else '
'learned: median spacing of the newest raw readings of the window''s last recent_from_raw, '
'else from the hourly rollup''s reading counts of the window''s complete hours) and its newest '
'reading before p_end. Reads only the window''s chunks; jit off (see the file''s note).';

grant execute on function quality.intervals_between(timestamptz, timestamptz)
to tsfleet_analyst, tsfleet_grafana;

-- The last completeness_lookback up to now(): quality.intervals_between over that window.
create or replace view quality.intervals as
select
    i.device_id,
    i.device_key,
    i.metric_id,
    i.metric_name,
    i.nominal_interval,
    i.interval_source,
    i.learned_interval,
    i.spacing_count,
    i.last_reading_at
from quality.parameters as p
cross join lateral quality.intervals_between(
    pg_catalog.now() - p.completeness_lookback, pg_catalog.now()
) as i;

comment on view quality.intervals is
'Nominal interval per device and metric (set on the device, else learned: median spacing of '
'the newest recent raw readings, else from the hourly rollup''s reading counts) and the time '
'of its newest reading, over the last completeness_lookback: '
'quality.intervals_between(now() - completeness_lookback, now()).';
comment on column quality.intervals.device_id is 'Device (telemetry.devices).';
comment on column quality.intervals.device_key is 'External device id.';
comment on column quality.intervals.metric_id is 'Metric (telemetry.metrics).';
comment on column quality.intervals.metric_name is 'Metric name.';
comment on column quality.intervals.nominal_interval is
'Expected time between readings: the device''s nominal_interval, else learned_interval.';
comment on column quality.intervals.interval_source is
'device (telemetry.devices.nominal_interval) or learned (see learned_interval); NULL if unknown.';
comment on column quality.intervals.learned_interval is
'Median spacing of the series'' newest quality.parameters.interval_sample_size readings within '
'recent_from_raw when they give at least 3 spacings; else 1 hour / median readings per '
'non-empty hour over completeness_lookback (hourly rollup), or for at most one reading an '
'hour the median distance between non-empty hours.';
comment on column quality.intervals.spacing_count is
'Spacings the learned interval is based on (raw spacings, or rollup readings minus one).';
comment on column quality.intervals.last_reading_at is 'Time of the newest reading of the series.';

grant select on quality.intervals to tsfleet_analyst, tsfleet_grafana;
