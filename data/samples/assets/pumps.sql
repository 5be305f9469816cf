-- Demo topology (the worked example of docs/processing.md): two pumps, each monitored by one
-- of the sample message devices. Run before loading the messages, so that the load maps the
-- readings to the pumps in its own transaction. Safe to run twice.
insert into telemetry.tenants (tenant_key, display_name)
values ('org-1', 'Org 1')
on conflict (tenant_key) do nothing;

insert into telemetry.devices (tenant_id, device_key, device_type)
select
    t.tenant_id,
    d.device_key,
    'pump-sensor'
from telemetry.tenants as t
cross join (values ('device-abc-123'), ('device-abc-124')) as d (device_key)
where t.tenant_key = 'org-1'
on conflict (device_key) do nothing;

insert into telemetry.assets (tenant_id, asset_key, asset_type_id, display_name)
select
    t.tenant_id,
    a.asset_key,
    aty.asset_type_id,
    a.display_name
from telemetry.tenants as t
cross join telemetry.asset_types as aty
cross join (values ('pump-a', 'Pump A'), ('pump-b', 'Pump B')) as a (asset_key, display_name)
where t.tenant_key = 'org-1' and aty.asset_type_key = 'pump'
on conflict (asset_key) do nothing;

insert into telemetry.device_asset_links (tenant_id, device_id, asset_id, metrics_mapping)
select
    d.tenant_id,
    d.device_id,
    a.asset_id,
    '{"device.voltage": "asset.power_input", "device.current": "asset.power_current",
      "device.temperature": "asset.motor_temperature"}'::jsonb
from telemetry.devices as d
inner join telemetry.assets as a
    on a.asset_key = case d.device_key when 'device-abc-123' then 'pump-a' else 'pump-b' end
where
    d.device_key in ('device-abc-123', 'device-abc-124')
    and not exists (
        select from telemetry.device_asset_links as l
        where l.device_id = d.device_id and l.asset_id = a.asset_id
    );
