-- Views behind the Grafana fleet dashboard (grafana/dashboards/tsfleet-fleet.json): fleet
-- headline figures and device freshness. Couples with: that dashboard's panel queries.

create or replace view alerts.dashboard_fleet_summary as
with
devices as (
    select
        count(*) as device_count,
        count(*) filter (
            where d.last_reading_at < now() - coalesce(d.nominal_interval * 3, interval '5 minutes')
        ) as silent_device_count
    from telemetry.devices as d
),

assets as (
    select
        count(*) as asset_count,
        avg(a.latest_health_score) as avg_health_score,
        min(a.latest_health_score) as min_health_score
    from telemetry.assets as a
),

episodes as (
    select
        count(*) filter (where e.state = 'firing') as firing_count,
        count(*) filter (where e.state = 'pending') as pending_count
    from alerts.episodes as e
    where e.ended_at is null
),

final as (
    select
        dv.device_count,
        dv.silent_device_count,
        ast.asset_count,
        ast.avg_health_score,
        ast.min_health_score,
        ep.firing_count,
        ep.pending_count
    from devices as dv
    cross join assets as ast
    cross join episodes as ep
)

select * from final;

comment on view alerts.dashboard_fleet_summary is
'Fleet headline figures for the dashboard (one row): devices, silent devices, health, alerts.';
comment on column alerts.dashboard_fleet_summary.device_count is 'Registered devices.';
comment on column alerts.dashboard_fleet_summary.silent_device_count is
'Devices silent for more than 3 nominal intervals (5 minutes when unknown).';
comment on column alerts.dashboard_fleet_summary.asset_count is 'Assets.';
comment on column alerts.dashboard_fleet_summary.avg_health_score is 'Mean latest health score.';
comment on column alerts.dashboard_fleet_summary.min_health_score is 'Lowest latest health score.';
comment on column alerts.dashboard_fleet_summary.firing_count is 'Alerts firing.';
comment on column alerts.dashboard_fleet_summary.pending_count is 'Alerts pending.';

grant select on alerts.dashboard_fleet_summary to tsfleet_analyst, tsfleet_grafana;

create or replace view alerts.dashboard_device_freshness as
with
final as (
    select
        d.device_key as device,
        d.device_type,
        t.tenant_key as tenant,
        d.last_reading_at,
        extract(epoch from now() - d.last_reading_at)::double precision as age_s,
        extract(epoch from d.nominal_interval)::double precision as nominal_interval_s
    from telemetry.devices as d
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
)

select * from final;

comment on view alerts.dashboard_device_freshness is
'Per device: time of the newest reading and its age, for the dashboard freshness table.';
comment on column alerts.dashboard_device_freshness.device is 'Device key.';
comment on column alerts.dashboard_device_freshness.device_type is 'Device type, when known.';
comment on column alerts.dashboard_device_freshness.tenant is 'Tenant key.';
comment on column alerts.dashboard_device_freshness.last_reading_at is 'Newest reading time.';
comment on column alerts.dashboard_device_freshness.age_s is 'Seconds since the newest reading.';
comment on column alerts.dashboard_device_freshness.nominal_interval_s is
'Expected seconds between readings, when set.';

grant select on alerts.dashboard_device_freshness to tsfleet_analyst, tsfleet_grafana;
