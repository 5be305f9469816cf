-- Companion time series of the alert conditions, for dashboards: the signal each condition
-- watches, over time, with the same labels. Always filter on the time column (Grafana's
-- $__timeFilter does): the views read readings through their time-first index. The metric
-- series are telemetry.readings_named (couples with 10_telemetry_named.sql) narrowed to the
-- metrics the condition's rules watch.
-- Couples with: the alerts.condition_* views, grafana/dashboards/tsfleet-fleet.json.

create or replace view alerts.series_low_battery as
with
watched as (
    select distinct coalesce(r.params ->> 'metric', 'StateOfChargePercentage') as metric_name
    from alerts.rules as r
    where r.condition_kind = 'low_battery' and r.is_enabled
),

final as (
    select
        rn.recorded_at,
        rn.device_key as device,
        rn.metric_name as metric,
        rn.tenant_key as tenant,
        rn.value
    from telemetry.readings_named as rn
    inner join watched as w on rn.metric_name = w.metric_name
)

select * from final;

comment on view alerts.series_low_battery is
'State of charge readings watched by the low_battery rules (companion of condition_low_battery).';
comment on column alerts.series_low_battery.recorded_at is 'Time of the reading.';
comment on column alerts.series_low_battery.device is 'Device key.';
comment on column alerts.series_low_battery.metric is 'Metric name.';
comment on column alerts.series_low_battery.tenant is 'Tenant key.';
comment on column alerts.series_low_battery.value is 'Reading value.';

grant select on alerts.series_low_battery to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_threshold as
with
watched as (
    select distinct r.params ->> 'metric' as metric_name
    from alerts.rules as r
    where r.condition_kind = 'threshold' and r.is_enabled
),

final as (
    select
        rn.recorded_at,
        rn.device_key as device,
        rn.metric_name as metric,
        rn.tenant_key as tenant,
        rn.value
    from telemetry.readings_named as rn
    inner join watched as w on rn.metric_name = w.metric_name
)

select * from final;

comment on view alerts.series_threshold is
'Readings of the metrics watched by threshold rules (companion of condition_threshold).';
comment on column alerts.series_threshold.recorded_at is 'Time of the reading.';
comment on column alerts.series_threshold.device is 'Device key.';
comment on column alerts.series_threshold.metric is 'Metric name.';
comment on column alerts.series_threshold.tenant is 'Tenant key.';
comment on column alerts.series_threshold.value is 'Reading value.';

grant select on alerts.series_threshold to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_temperature_range as
with
watched as (
    select distinct coalesce(r.params ->> 'metric', 'temperature_c') as metric_name
    from alerts.rules as r
    where r.condition_kind = 'temperature_range' and r.is_enabled
),

final as (
    select
        rn.recorded_at,
        rn.device_key as device,
        rn.metric_name as metric,
        rn.tenant_key as tenant,
        rn.value
    from telemetry.readings_named as rn
    inner join watched as w on rn.metric_name = w.metric_name
)

select * from final;

comment on view alerts.series_temperature_range is
'Temperature readings watched by the temperature_range rules (companion of '
'condition_temperature_range).';
comment on column alerts.series_temperature_range.recorded_at is 'Time of the reading.';
comment on column alerts.series_temperature_range.device is 'Device key.';
comment on column alerts.series_temperature_range.metric is 'Metric name.';
comment on column alerts.series_temperature_range.tenant is 'Tenant key.';
comment on column alerts.series_temperature_range.value is 'Reading value.';

grant select on alerts.series_temperature_range to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_humidity_drift as
with
watched as (
    select distinct coalesce(r.params ->> 'metric', 'humidity_pct') as metric_name
    from alerts.rules as r
    where r.condition_kind = 'humidity_drift' and r.is_enabled
),

final as (
    select
        rn.recorded_at,
        rn.device_key as device,
        rn.metric_name as metric,
        rn.tenant_key as tenant,
        rn.value
    from telemetry.readings_named as rn
    inner join watched as w on rn.metric_name = w.metric_name
)

select * from final;

comment on view alerts.series_humidity_drift is
'Humidity readings watched by the humidity_drift rules (companion of condition_humidity_drift).';
comment on column alerts.series_humidity_drift.recorded_at is 'Time of the reading.';
comment on column alerts.series_humidity_drift.device is 'Device key.';
comment on column alerts.series_humidity_drift.metric is 'Metric name.';
comment on column alerts.series_humidity_drift.tenant is 'Tenant key.';
comment on column alerts.series_humidity_drift.value is 'Reading value.';

grant select on alerts.series_humidity_drift to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_quality_anomalies as
with
final as (
    select
        time_bucket(interval '1 hour', r.recorded_at) as bucket_start,
        d.device_key as device,
        m.metric_name as metric,
        t.tenant_key as tenant,
        count(*)::double precision as value
    from telemetry.readings as r
    inner join telemetry.devices as d on r.device_id = d.device_id
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
    inner join telemetry.metrics as m on r.metric_id = m.metric_id
    where r.quality <> 'good'
    group by
        time_bucket(interval '1 hour', r.recorded_at), d.device_key, m.metric_name, t.tenant_key
)

select * from final;

comment on view alerts.series_quality_anomalies is
'Non-good quality readings per hour (companion of condition_quality_anomalies).';
comment on column alerts.series_quality_anomalies.bucket_start is 'Start of the hour.';
comment on column alerts.series_quality_anomalies.device is 'Device key.';
comment on column alerts.series_quality_anomalies.metric is 'Metric name.';
comment on column alerts.series_quality_anomalies.tenant is 'Tenant key.';
comment on column alerts.series_quality_anomalies.value is 'Non-good readings in the hour.';

grant select on alerts.series_quality_anomalies to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_high_volume as
with
final as (
    select
        time_bucket(interval '1 minute', r.recorded_at) as bucket_start,
        d.device_key as device,
        t.tenant_key as tenant,
        count(*)::double precision as value
    from telemetry.readings as r
    inner join telemetry.devices as d on r.device_id = d.device_id
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
    group by time_bucket(interval '1 minute', r.recorded_at), d.device_key, t.tenant_key
)

select * from final;

comment on view alerts.series_high_volume is
'Readings per minute per device (companion of condition_high_volume; sum for the fleet).';
comment on column alerts.series_high_volume.bucket_start is 'Start of the minute.';
comment on column alerts.series_high_volume.device is 'Device key.';
comment on column alerts.series_high_volume.tenant is 'Tenant key.';
comment on column alerts.series_high_volume.value is 'Readings in the minute.';

grant select on alerts.series_high_volume to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_stale_device as
with
final as (
    select
        time_bucket(interval '5 minutes', r.recorded_at) as bucket_start,
        d.device_key as device,
        t.tenant_key as tenant,
        count(*)::double precision as value
    from telemetry.readings as r
    inner join telemetry.devices as d on r.device_id = d.device_id
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
    group by time_bucket(interval '5 minutes', r.recorded_at), d.device_key, t.tenant_key
)

select * from final;

comment on view alerts.series_stale_device is
'Readings per 5 minutes per device: gaps show stale periods (companion of condition_stale_device).';
comment on column alerts.series_stale_device.bucket_start is 'Start of the 5-minute bucket.';
comment on column alerts.series_stale_device.device is 'Device key.';
comment on column alerts.series_stale_device.tenant is 'Tenant key.';
comment on column alerts.series_stale_device.value is
'Readings in the bucket (a gap is a silent device).';

grant select on alerts.series_stale_device to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_poor_completeness as
with
final as (
    select
        time_bucket(interval '1 hour', r.recorded_at) as bucket_start,
        d.device_key as device,
        m.metric_name as metric,
        t.tenant_key as tenant,
        100.0 * count(*)::double precision
        / (extract(epoch from interval '1 hour') / extract(epoch from d.nominal_interval))
            as value
    from telemetry.readings as r
    inner join telemetry.devices as d on r.device_id = d.device_id
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
    inner join telemetry.metrics as m on r.metric_id = m.metric_id
    where d.nominal_interval is not null
    group by
        time_bucket(interval '1 hour', r.recorded_at), d.device_key, m.metric_name,
        t.tenant_key, d.nominal_interval
)

select * from final;

comment on view alerts.series_poor_completeness is
'Hourly completeness per series (companion of condition_poor_completeness).';
comment on column alerts.series_poor_completeness.bucket_start is 'Start of the hour.';
comment on column alerts.series_poor_completeness.device is 'Device key.';
comment on column alerts.series_poor_completeness.metric is 'Metric name.';
comment on column alerts.series_poor_completeness.tenant is 'Tenant key.';
comment on column alerts.series_poor_completeness.value is
'Received / expected readings, percent (devices with a nominal interval only).';

grant select on alerts.series_poor_completeness to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.series_low_asset_health as
with
health as (
    select m.metric_id from telemetry.metrics as m
    where m.metric_name = 'health_score'
),

final as (
    select
        ar.recorded_at,
        a.asset_key as asset,
        t.tenant_key as tenant,
        ar.value
    from telemetry.asset_readings as ar
    inner join health as h on ar.metric_id = h.metric_id
    inner join telemetry.assets as a on ar.asset_id = a.asset_id
    inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
)

select * from final;

comment on view alerts.series_low_asset_health is
'Asset health scores over time (companion of condition_low_asset_health).';
comment on column alerts.series_low_asset_health.recorded_at is 'Time of the source reading.';
comment on column alerts.series_low_asset_health.asset is 'Asset key.';
comment on column alerts.series_low_asset_health.tenant is 'Tenant key.';
comment on column alerts.series_low_asset_health.value is 'Health score (0..100).';

grant select on alerts.series_low_asset_health to tsfleet_analyst, tsfleet_grafana;
