-- Silent periods: consecutive readings of a series further apart than
-- quality.parameters.gap_interval_factor nominal intervals, within the gap lookback.
-- A filter on device_id or metric_id is pushed down to the readings scan.
-- Couples with: quality.intervals, quality.parameters.

create or replace view quality.gaps as
with
params as (
    select
        p.gap_interval_factor,
        pg_catalog.now() - p.gap_lookback as since
    from quality.parameters as p
),

spaced as (
    select
        r.device_id,
        r.metric_id,
        r.recorded_at as gap_start,
        pg_catalog.lead(r.recorded_at) over (
            partition by r.device_id, r.metric_id order by r.recorded_at
        ) as gap_end
    from telemetry.readings as r
    where r.recorded_at >= (select p.since from params as p)
),

final as (
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
    inner join quality.intervals as i
        on s.device_id = i.device_id and s.metric_id = i.metric_id
    cross join params as p
    where
        s.gap_end is not null
        and s.gap_end - s.gap_start > p.gap_interval_factor * i.nominal_interval
)

select * from final;

comment on view quality.gaps is
'Silent periods per device and metric: readings further apart than gap_interval_factor '
'nominal intervals (quality.parameters), within the gap lookback.';
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
