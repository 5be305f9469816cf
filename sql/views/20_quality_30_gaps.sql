-- Silent periods of a window [p_start, p_end): consecutive readings of a series, both in the
-- window, further apart than quality.parameters.gap_interval_factor nominal intervals
-- (quality.intervals_between over the same window). A silence that crosses p_start or p_end
-- is not listed (widen the window to see it); a series silent for the whole window has no
-- readings to measure from (quality.freshness_at shows it).
-- Couples with: quality.intervals_between, quality.parameters, and the settings note in
-- 20_quality_10_intervals.sql (plpgsql, custom plans, jit off, definer).

create or replace function quality.gaps_between(p_start timestamptz, p_end timestamptz)
returns table (
    device_id integer,
    device_key text,
    metric_id integer,
    metric_name text,
    gap_start timestamptz,
    gap_end timestamptz,
    gap_duration interval,
    nominal_interval interval,
    missed_readings bigint
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
    factor double precision := (select p.gap_interval_factor from quality.parameters as p);
begin
    if p_start is null or p_end is null or p_start >= p_end then
        raise exception 'quality.gaps_between: need p_start < p_end, got [%, %)',
            p_start, p_end;
    end if;

    return query
    with
    spaced as (
        select
            r.device_id,
            r.metric_id,
            r.recorded_at as gap_start,
            pg_catalog.lead(r.recorded_at) over (
                partition by r.device_id, r.metric_id order by r.recorded_at
            ) as gap_end
        from telemetry.readings as r
        where r.recorded_at >= p_start and r.recorded_at < p_end
    )

    select
        s.device_id,
        i.device_key,
        s.metric_id,
        i.metric_name,
        s.gap_start,
        s.gap_end,
        s.gap_end - s.gap_start as gap_duration,
        i.nominal_interval,
        (
            pg_catalog.round(
                extract(epoch from s.gap_end - s.gap_start)
                / extract(epoch from i.nominal_interval)
            ) - 1
        )::bigint as missed_readings
    from spaced as s
    inner join quality.intervals_between(p_start, p_end) as i
        on s.device_id = i.device_id and s.metric_id = i.metric_id
    where
        s.gap_end is not null
        and s.gap_end - s.gap_start > factor * i.nominal_interval;
end;
$$;

comment on function quality.gaps_between(timestamptz, timestamptz) is
'Silent periods per device and metric in [p_start, p_end): consecutive readings of the window '
'further apart than gap_interval_factor nominal intervals (quality.parameters). Reads only '
'the window''s chunks; jit off.';

grant execute on function quality.gaps_between(timestamptz, timestamptz)
to tsfleet_analyst, tsfleet_grafana;

-- The last gap_lookback up to now(): quality.gaps_between over that window.
create or replace view quality.gaps as
select
    g.device_id,
    g.device_key,
    g.metric_id,
    g.metric_name,
    g.gap_start,
    g.gap_end,
    g.gap_duration,
    g.nominal_interval,
    g.missed_readings
from quality.parameters as p
cross join lateral quality.gaps_between(pg_catalog.now() - p.gap_lookback, pg_catalog.now()) as g;

comment on view quality.gaps is
'Silent periods per device and metric: readings further apart than gap_interval_factor '
'nominal intervals (quality.parameters), within the gap lookback: '
'quality.gaps_between(now() - gap_lookback, now()).';
comment on column quality.gaps.device_id is 'Device (telemetry.devices).';
comment on column quality.gaps.device_key is 'External device id.';
comment on column quality.gaps.metric_id is 'Metric (telemetry.metrics).';
comment on column quality.gaps.metric_name is 'Metric name.';
comment on column quality.gaps.gap_start is 'Time of the last reading before the silence.';
comment on column quality.gaps.gap_end is 'Time of the first reading after the silence.';
comment on column quality.gaps.gap_duration is 'gap_end - gap_start.';
comment on column quality.gaps.nominal_interval is 'Expected time between readings.';
comment on column quality.gaps.missed_readings is
'Readings the nominal interval expected inside the gap.';

grant select on quality.gaps to tsfleet_analyst, tsfleet_grafana;
