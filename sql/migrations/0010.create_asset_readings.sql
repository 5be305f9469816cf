-- Asset readings: mapped, derived and health_score metrics, each with its source device.
-- No foreign keys, for the same reason as telemetry.readings.
create table telemetry.asset_readings (
    recorded_at timestamptz not null,
    asset_id integer not null,
    metric_id integer not null,
    source_device_id integer not null,
    value double precision not null,
    quality text not null default 'good',
    batch_id bigint not null
);

-- Same 1-day chunks as telemetry.readings: asset rows follow device rows one for one or less.
do $$
begin
    perform public.create_hypertable(
        'telemetry.asset_readings',
        public.by_range('recorded_at', interval '1 day'),
        create_default_indexes => false
    );
end;
$$;

create unique index asset_readings_recorded_at_asset_id_metric_id_source_key
on telemetry.asset_readings (recorded_at, asset_id, metric_id, source_device_id);

create index asset_readings_asset_id_metric_id_recorded_at_idx
on telemetry.asset_readings (asset_id, metric_id, recorded_at desc);

comment on table telemetry.asset_readings is
'Asset readings (hypertable): mapped device metrics, derived metrics and health_score.';
comment on column telemetry.asset_readings.source_device_id is
'Device whose reading produced this asset reading.';
