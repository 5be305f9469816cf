-- Nominal reading interval per device and metric: the device's nominal_interval when set, else
-- learned as the median spacing of the series' newest readings. Also the newest reading time.
-- Series are those seen within quality.parameters.completeness_lookback (hourly rollup) or
-- recently (raw readings). Couples with: quality.parameters (0044), the other quality views,
-- rollups.device_metrics_hourly (0041).

create or replace view quality.intervals as
with
params as (
    select p.* from quality.parameters as p
),

series as (
    select
        h.device_id,
        h.metric_id
    from rollups.device_metrics_hourly as h
    cross join params as p
    where h.bucket_start >= pg_catalog.now() - p.completeness_lookback
    union
    select
        r.device_id,
        r.metric_id
    from telemetry.readings as r
    cross join params as p
    where r.recorded_at >= pg_catalog.now() - p.recent_from_raw
),

samples as (
    select
        s.device_id,
        s.metric_id,
        newest.recorded_at,
        newest.recorded_at - pg_catalog.lead(newest.recorded_at) over (
            partition by s.device_id, s.metric_id order by newest.recorded_at desc
        ) as spacing
    from series as s
    cross join lateral (
        select r.recorded_at
        from telemetry.readings as r
        where r.device_id = s.device_id and r.metric_id = s.metric_id
        order by r.recorded_at desc
        limit (select p.interval_sample_size from params as p)
    ) as newest
),

learned as (
    select
        sa.device_id,
        sa.metric_id,
        max(sa.recorded_at) as last_reading_at,
        count(sa.spacing) as spacing_count,
        percentile_disc(0.5) within group (order by sa.spacing) as learned_interval
    from samples as sa
    group by sa.device_id, sa.metric_id
),

final as (
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
    inner join telemetry.metrics as m on l.metric_id = m.metric_id
)

select * from final;

comment on view quality.intervals is
'Nominal interval per device and metric (set on the device, else learned from its newest '
'readings) and the time of its newest reading.';
comment on column quality.intervals.device_id is 'Device (telemetry.devices).';
comment on column quality.intervals.device_key is 'External device id.';
comment on column quality.intervals.metric_id is 'Metric (telemetry.metrics).';
comment on column quality.intervals.metric_name is 'Metric name.';
comment on column quality.intervals.nominal_interval is
'Expected time between readings: the device''s nominal_interval, else learned_interval.';
comment on column quality.intervals.interval_source is
'device (telemetry.devices.nominal_interval) or learned (median spacing); NULL if unknown.';
comment on column quality.intervals.learned_interval is
'Median spacing of the newest quality.parameters.interval_sample_size readings.';
comment on column quality.intervals.spacing_count is 'Spacings the learned interval is based on.';
comment on column quality.intervals.last_reading_at is 'Time of the newest reading of the series.';

grant select on quality.intervals to tsfleet_analyst, tsfleet_grafana;
