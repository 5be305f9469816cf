-- The hourly device rollup with names instead of ids, for Grafana's per-device metrics panel
-- (grafana/dashboards/tsfleet-fleet.json, variables tenant, device type and device) and psql.
-- Couples with: rollups.device_metrics_hourly (0041; same shape on both editions), the panel's
-- SQL and tests/test_grafana_provisioning.py.
create or replace view rollups.device_metrics_hourly_named as
with

hourly as (
    select * from rollups.device_metrics_hourly
),

devices as (
    select * from telemetry.devices
),

tenants as (
    select * from telemetry.tenants
),

metrics as (
    select * from telemetry.metrics
),

final as (
    select
        h.bucket_start,
        t.tenant_key as tenant,
        d.device_key as device,
        d.device_type,
        m.metric_name as metric,
        m.unit,
        h.value_avg,
        h.value_min,
        h.value_max,
        h.value_last,
        h.reading_count,
        h.nongood_count
    from hourly as h
    inner join devices as d on h.device_id = d.device_id
    inner join tenants as t on d.tenant_id = t.tenant_id
    inner join metrics as m on h.metric_id = m.metric_id
)

select * from final;

comment on view rollups.device_metrics_hourly_named is
'Per device, metric and hour (rollups.device_metrics_hourly) with tenant, device and metric '
'names; filter on bucket_start.';
comment on column rollups.device_metrics_hourly_named.bucket_start is 'Start of the hour.';
comment on column rollups.device_metrics_hourly_named.tenant is 'Tenant key of the device.';
comment on column rollups.device_metrics_hourly_named.device is 'Device key.';
comment on column rollups.device_metrics_hourly_named.device_type is 'Device type, when known.';
comment on column rollups.device_metrics_hourly_named.metric is 'Metric name.';
comment on column rollups.device_metrics_hourly_named.unit is 'Unit of the metric, when known.';
comment on column rollups.device_metrics_hourly_named.value_avg is 'Mean of the hour''s readings.';
comment on column rollups.device_metrics_hourly_named.value_min is 'Lowest reading of the hour.';
comment on column rollups.device_metrics_hourly_named.value_max is 'Highest reading of the hour.';
comment on column rollups.device_metrics_hourly_named.value_last is 'Newest reading of the hour.';
comment on column rollups.device_metrics_hourly_named.reading_count is 'Readings in the hour.';
comment on column rollups.device_metrics_hourly_named.nongood_count is
'Readings in the hour with a quality other than good.';

grant select on rollups.device_metrics_hourly_named to tsfleet_analyst, tsfleet_grafana;
