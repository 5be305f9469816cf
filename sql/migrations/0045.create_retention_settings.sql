-- How long raw readings are kept. Default: keep (drop_after NULL). Rollups are never dropped by
-- tsfleet, so they always outlive raw data. Change with ops.set_raw_retention(), which applies
-- a retention policy on Community and records the setting for ops.apply_retention() on Apache.
-- Couples with: sql/functions/41_ops_retention.sql, _tsfleet.rollup_definitions (windows).
create table ops.retention_settings (
    hypertable_name text not null,
    drop_after interval,
    updated_at timestamptz not null default now(),
    constraint retention_settings_pkey primary key (hypertable_name),
    constraint retention_settings_drop_after_check check (drop_after > interval '0')
);
comment on table ops.retention_settings is
'Raw-data retention per hypertable: drop chunks older than drop_after (NULL = keep forever).';
comment on column ops.retention_settings.drop_after is
'Age after which raw chunks are dropped; NULL keeps everything (the default).';

insert into ops.retention_settings (hypertable_name, drop_after)
values ('telemetry.readings', null), ('telemetry.asset_readings', null);

grant select on ops.retention_settings to tsfleet_analyst;
