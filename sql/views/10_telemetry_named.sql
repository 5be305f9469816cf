-- Readable views over the narrow tables, for psql. Names instead of ids; nothing else.

create or replace view telemetry.readings_named as
select
    r.recorded_at,
    t.tenant_key,
    d.device_key,
    d.device_type,
    m.metric_name,
    m.unit,
    r.value,
    r.quality,
    r.batch_id
from telemetry.readings as r
inner join telemetry.devices as d on r.device_id = d.device_id
inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
inner join telemetry.metrics as m on r.metric_id = m.metric_id;

comment on view telemetry.readings_named is
'Device readings with device, tenant and metric names (filter on recorded_at for speed).';
comment on column telemetry.readings_named.recorded_at is 'Time of the reading.';
comment on column telemetry.readings_named.tenant_key is 'Tenant (organization) of the device.';
comment on column telemetry.readings_named.device_key is 'External device id.';
comment on column telemetry.readings_named.device_type is 'Device type, when known.';
comment on column telemetry.readings_named.metric_name is 'Metric name as sent by the device.';
comment on column telemetry.readings_named.unit is 'Unit of the metric, when known.';
comment on column telemetry.readings_named.value is 'Reading value.';
comment on column telemetry.readings_named.quality is 'Quality flag (good unless flagged).';
comment on column telemetry.readings_named.batch_id is 'Ingest batch that wrote the reading.';

create or replace view telemetry.asset_readings_named as
select
    ar.recorded_at,
    t.tenant_key,
    a.asset_key,
    aty.asset_type_key,
    m.metric_name,
    m.unit,
    ar.value,
    d.device_key as source_device_key,
    ar.quality,
    ar.batch_id
from telemetry.asset_readings as ar
inner join telemetry.assets as a on ar.asset_id = a.asset_id
inner join telemetry.asset_types as aty on a.asset_type_id = aty.asset_type_id
inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
inner join telemetry.metrics as m on ar.metric_id = m.metric_id
inner join telemetry.devices as d on ar.source_device_id = d.device_id;

comment on view telemetry.asset_readings_named is
'Asset readings (mapped, derived, health_score) with asset, metric and source device names.';
comment on column telemetry.asset_readings_named.recorded_at is 'Time of the source reading.';
comment on column telemetry.asset_readings_named.tenant_key is 'Tenant of the asset.';
comment on column telemetry.asset_readings_named.asset_key is 'External asset id.';
comment on column telemetry.asset_readings_named.asset_type_key is 'Asset type (pump, ...).';
comment on column telemetry.asset_readings_named.metric_name is 'Asset metric name.';
comment on column telemetry.asset_readings_named.unit is 'Unit of the metric, when known.';
comment on column telemetry.asset_readings_named.value is 'Value.';
comment on column telemetry.asset_readings_named.source_device_key is
'Device whose reading produced this value.';
comment on column telemetry.asset_readings_named.quality is 'Quality flag of the source reading.';
comment on column telemetry.asset_readings_named.batch_id is 'Ingest batch that wrote the row.';

grant select on telemetry.readings_named, telemetry.asset_readings_named to tsfleet_analyst;
