-- Freshness per device as of a time (newest reading before it, its age, in nominal intervals)
-- and event rate per minute over a window, fleet-wide and per device.
-- Couples with: alerts stale-device and high-volume conditions, quality.intervals_between,
-- telemetry.devices.last_reading_at (kept by ingest), and the settings note in
-- 20_quality_10_intervals.sql (plpgsql, custom plans, jit off, definer).

-- telemetry.devices.last_reading_at is the newest reading ever: it counts only when it is
-- before p_at (so a past p_at never sees later readings).
create or replace function quality.freshness_at(p_at timestamptz)
returns table (
    device_id integer,
    device_key text,
    device_type text,
    tenant_key text,
    last_reading_at timestamptz,
    age interval,
    nominal_interval interval,
    intervals_since_last numeric
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
    lookback interval := (select p.completeness_lookback from quality.parameters as p);
begin
    if p_at is null then
        raise exception 'quality.freshness_at: p_at must not be NULL';
    end if;

    return query
    with
    series as (
        select
            i.device_id,
            max(i.last_reading_at) as last_reading_at,
            min(i.nominal_interval) as nominal_interval
        from quality.intervals_between(p_at - lookback, p_at) as i
        group by i.device_id
    ),

    newest as (
        select
            d.device_id,
            d.device_key,
            d.device_type,
            t.tenant_key,
            greatest(
                case when d.last_reading_at < p_at then d.last_reading_at end,
                s.last_reading_at
            ) as last_reading_at,
            coalesce(d.nominal_interval, s.nominal_interval) as nominal_interval
        from telemetry.devices as d
        inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
        left join series as s on d.device_id = s.device_id
    )

    select
        n.device_id,
        n.device_key,
        n.device_type,
        n.tenant_key,
        n.last_reading_at,
        p_at - n.last_reading_at as age,
        n.nominal_interval,
        pg_catalog.round((
            extract(epoch from p_at - n.last_reading_at)
            / extract(epoch from n.nominal_interval)
        )::numeric, 1) as intervals_since_last
    from newest as n;
end;
$$;

comment on function quality.freshness_at(timestamptz) is
'Newest reading per device before p_at and how old it was at p_at (NULL when the device never '
'sent before p_at, or was silent for longer than the completeness lookback before it and '
'ingest did not record it). Reads only that lookback''s chunks; jit off.';

grant execute on function quality.freshness_at(timestamptz) to tsfleet_analyst, tsfleet_grafana;

-- Now: quality.freshness_at(now()).
create or replace view quality.freshness as
select
    f.device_id,
    f.device_key,
    f.device_type,
    f.tenant_key,
    f.last_reading_at,
    f.age,
    f.nominal_interval,
    f.intervals_since_last
from quality.freshness_at(pg_catalog.now()) as f;

comment on view quality.freshness is
'Newest reading per device and how old it is (NULL when the device never sent or was silent '
'for longer than the completeness lookback and ingest did not record it): '
'quality.freshness_at(now()).';
comment on column quality.freshness.device_id is 'Device (telemetry.devices).';
comment on column quality.freshness.device_key is 'External device id.';
comment on column quality.freshness.device_type is 'Device type, when known.';
comment on column quality.freshness.tenant_key is 'Tenant of the device.';
comment on column quality.freshness.last_reading_at is 'Time of the newest reading.';
comment on column quality.freshness.age is 'now() - last_reading_at.';
comment on column quality.freshness.nominal_interval is
'Expected time between readings (device setting, else the shortest learned series interval).';
comment on column quality.freshness.intervals_since_last is
'age in nominal intervals (above 1 means at least one reading is overdue).';

grant select on quality.freshness to tsfleet_analyst, tsfleet_grafana;

create or replace function quality.event_rate_between(p_start timestamptz, p_end timestamptz)
returns table (
    minute_start timestamptz,
    scope text,
    device_id integer,
    device_key text,
    readings_per_minute bigint
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
    since timestamptz := public.time_bucket(interval '1 minute', p_start);
begin
    if p_start is null or p_end is null or p_start >= p_end then
        raise exception 'quality.event_rate_between: need p_start < p_end, got [%, %)',
            p_start, p_end;
    end if;

    return query
    with
    counted as (
        select
            public.time_bucket(interval '1 minute', r.recorded_at) as minute_start,
            r.device_id,
            count(*) as reading_count
        from telemetry.readings as r
        where r.recorded_at >= since and r.recorded_at < p_end
        group by grouping sets (
            (public.time_bucket(interval '1 minute', r.recorded_at)),
            (public.time_bucket(interval '1 minute', r.recorded_at), r.device_id)
        )
    )

    select
        c.minute_start,
        case when c.device_id is null then 'fleet' else 'device' end as scope,
        c.device_id,
        d.device_key,
        c.reading_count as readings_per_minute
    from counted as c
    left join telemetry.devices as d on c.device_id = d.device_id;
end;
$$;

comment on function quality.event_rate_between(timestamptz, timestamptz) is
'Readings per minute (by reading time) from the minute of p_start to p_end: one fleet row and '
'one row per sending device for every minute with readings. Reads only the window''s chunks; '
'jit off.';

grant execute on function quality.event_rate_between(timestamptz, timestamptz)
to tsfleet_analyst, tsfleet_grafana;

-- The last event_rate_lookback up to now(): quality.event_rate_between over that window.
create or replace view quality.event_rate as
select
    e.minute_start,
    e.scope,
    e.device_id,
    e.device_key,
    e.readings_per_minute
from quality.parameters as p
cross join lateral quality.event_rate_between(
    pg_catalog.now() - p.event_rate_lookback, pg_catalog.now()
) as e;

comment on view quality.event_rate is
'Readings per minute (by reading time) over the event-rate lookback: one fleet row and one '
'row per sending device for every minute: '
'quality.event_rate_between(now() - event_rate_lookback, now()).';
comment on column quality.event_rate.minute_start is 'Start of the minute (UTC).';
comment on column quality.event_rate.scope is 'fleet (all devices) or device.';
comment on column quality.event_rate.device_id is 'Device; NULL on fleet rows.';
comment on column quality.event_rate.device_key is 'External device id; NULL on fleet rows.';
comment on column quality.event_rate.readings_per_minute is 'Readings recorded in the minute.';

grant select on quality.event_rate to tsfleet_analyst, tsfleet_grafana;
