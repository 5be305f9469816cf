-- Freshness per device (newest reading, its age, in nominal intervals) and event rate per
-- minute, fleet-wide and per device. Couples with: alerts stale-device and high-volume
-- conditions, quality.intervals, telemetry.devices.last_reading_at (kept by ingest).

create or replace view quality.freshness as
with
series as (
    select
        i.device_id,
        max(i.last_reading_at) as last_reading_at,
        min(i.nominal_interval) as nominal_interval
    from quality.intervals as i
    group by i.device_id
),

final as (
    select
        d.device_id,
        d.device_key,
        d.device_type,
        t.tenant_key,
        greatest(d.last_reading_at, s.last_reading_at) as last_reading_at,
        pg_catalog.now() - greatest(d.last_reading_at, s.last_reading_at) as age,
        coalesce(d.nominal_interval, s.nominal_interval) as nominal_interval,
        pg_catalog.round((
            extract(epoch from pg_catalog.now() - greatest(d.last_reading_at, s.last_reading_at))
            / extract(epoch from coalesce(d.nominal_interval, s.nominal_interval))
        )::numeric, 1) as intervals_since_last
    from telemetry.devices as d
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
    left join series as s on d.device_id = s.device_id
)

select * from final;

comment on view quality.freshness is
'Newest reading per device and how old it is (NULL when the device never sent or was silent '
'for longer than the completeness lookback and ingest did not record it).';
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

create or replace view quality.event_rate as
with
params as (
    select pg_catalog.date_trunc('minute', pg_catalog.now() - p.event_rate_lookback) as since
    from quality.parameters as p
),

counted as (
    select
        public.time_bucket(interval '1 minute', r.recorded_at) as minute_start,
        r.device_id,
        count(*) as reading_count
    from telemetry.readings as r
    where r.recorded_at >= (select p.since from params as p)
    group by grouping sets (
        (public.time_bucket(interval '1 minute', r.recorded_at)),
        (public.time_bucket(interval '1 minute', r.recorded_at), r.device_id)
    )
),

final as (
    select
        c.minute_start,
        case when c.device_id is null then 'fleet' else 'device' end as scope,
        c.device_id,
        d.device_key,
        c.reading_count as readings_per_minute
    from counted as c
    left join telemetry.devices as d on c.device_id = d.device_id
)

select * from final;

comment on view quality.event_rate is
'Readings per minute (by reading time) over the event-rate lookback: one fleet row and one '
'row per sending device for every minute.';
comment on column quality.event_rate.minute_start is 'Start of the minute (UTC).';
comment on column quality.event_rate.scope is 'fleet (all devices) or device.';
comment on column quality.event_rate.device_id is 'Device; NULL on fleet rows.';
comment on column quality.event_rate.device_key is 'External device id; NULL on fleet rows.';
comment on column quality.event_rate.readings_per_minute is 'Readings recorded in the minute.';

grant select on quality.event_rate to tsfleet_analyst, tsfleet_grafana;
