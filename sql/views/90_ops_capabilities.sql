-- What this server can do and what the migrations did with it. One row.
-- Couples with: migration 0013 and every later edition-aware migration (_tsfleet.setup_log).

create or replace view ops.capabilities as
with
server as (
    select
        current_setting('server_version') as postgres_version,
        (
            select e.extversion from pg_catalog.pg_extension as e
            where e.extname = 'timescaledb'
        ) as timescaledb_version,
        coalesce(current_setting('timescaledb.license', true), 'none') as timescaledb_license
),

setup as (
    select
        coalesce(
            array_agg(sl.object_name order by sl.object_name)
            filter (where sl.feature = 'compression' and sl.status = 'enabled'),
            '{}'
        ) as compression_enabled_on,
        coalesce(
            array_agg(
                format('%s %s on %s: %s', sl.feature, sl.status, sl.object_name, sl.detail)
                order by sl.feature, sl.object_name
            ),
            '{}'
        ) as setup_notes
    from _tsfleet.setup_log as sl
),

final as (
    select
        s.postgres_version,
        s.timescaledb_version,
        s.timescaledb_license,
        case s.timescaledb_license
            when 'timescale' then 'community'
            when 'apache' then 'apache'
            else 'none'
        end as timescaledb_edition,
        s.timescaledb_version is not null as has_hypertables,
        s.timescaledb_license = 'timescale' as has_compression,
        s.timescaledb_license = 'timescale' as has_continuous_aggregates,
        s.timescaledb_license = 'timescale' as has_policies,
        st.compression_enabled_on,
        (
            select count(*) from timescaledb_information.continuous_aggregates as ca
            where ca.view_schema in ('rollups', 'quality', 'alerts')
        ) as continuous_aggregate_count,
        (
            select count(*) from timescaledb_information.jobs as j
            where
                j.hypertable_schema in ('telemetry', 'rollups', '_timescaledb_internal')
                or j.proc_schema in ('rollups', 'ops', 'alerts', '_tsfleet')
        ) as job_count,
        st.setup_notes
    from server as s
    cross join setup as st
)

select * from final;

comment on view ops.capabilities is
'Server versions, TimescaleDB edition, available features and what tsfleet enabled (one row).';
comment on column ops.capabilities.postgres_version is 'PostgreSQL server version.';
comment on column ops.capabilities.timescaledb_version is 'Installed TimescaleDB version.';
comment on column ops.capabilities.timescaledb_license is
'Value of timescaledb.license: timescale (Community) or apache.';
comment on column ops.capabilities.timescaledb_edition is 'community, apache or none.';
comment on column ops.capabilities.has_hypertables is 'Hypertables are available (both editions).';
comment on column ops.capabilities.has_compression is
'Compression is available (Community edition only).';
comment on column ops.capabilities.has_continuous_aggregates is
'Continuous aggregates are available (Community only); Apache uses materialized views.';
comment on column ops.capabilities.has_policies is
'Background policies and jobs are available (Community only).';
comment on column ops.capabilities.compression_enabled_on is
'Hypertables on which tsfleet enabled compression.';
comment on column ops.capabilities.continuous_aggregate_count is
'Continuous aggregates in tsfleet schemas.';
comment on column ops.capabilities.job_count is 'TimescaleDB jobs serving tsfleet objects.';
comment on column ops.capabilities.setup_notes is
'What each edition-aware migration enabled or skipped, and why.';

grant select on ops.capabilities to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

create or replace view ops.overview as
with
batches as (
    select
        count(*) filter (where b.status = 'committed') as batches_committed,
        count(*) filter (where b.status = 'failed') as batches_failed,
        coalesce(sum(b.rows_inserted) filter (where b.status = 'committed'), 0) as readings_loaded,
        coalesce(
            sum(b.asset_rows_inserted) filter (where b.status = 'committed'), 0
        ) as asset_readings_loaded,
        max(b.finished_at) filter (where b.status = 'committed') as last_load_at
    from ingest.batches as b
),

final as (
    select
        (select count(*) from telemetry.tenants) as tenant_count,
        (select count(*) from telemetry.devices) as device_count,
        (select count(*) from telemetry.metrics) as metric_count,
        (select count(*) from telemetry.assets) as asset_count,
        b.readings_loaded,
        b.asset_readings_loaded,
        (select max(d.last_reading_at) from telemetry.devices as d) as last_reading_at,
        b.batches_committed,
        b.batches_failed,
        b.last_load_at,
        (select count(*) from ingest.rejects) as rejects_total
    from batches as b
)

select * from final;

comment on view ops.overview is 'Headline counts for `tsfleet status` (one row).';
comment on column ops.overview.tenant_count is 'Tenants.';
comment on column ops.overview.device_count is 'Registered devices.';
comment on column ops.overview.metric_count is 'Metrics in the catalog.';
comment on column ops.overview.asset_count is 'Assets.';
-- Counted from the batches, not from planner statistics (which read 0 until the next ANALYZE
-- after a load); rows later removed by retention are still counted.
comment on column ops.overview.readings_loaded is
'Device readings inserted by committed ingest batches (before any retention).';
comment on column ops.overview.asset_readings_loaded is
'Asset readings written by committed ingest batches (before any retention).';
comment on column ops.overview.last_reading_at is 'Newest reading time over all devices.';
comment on column ops.overview.batches_committed is 'Committed ingest batches.';
comment on column ops.overview.batches_failed is 'Failed ingest batches.';
comment on column ops.overview.last_load_at is 'When the newest committed batch finished.';
comment on column ops.overview.rejects_total is 'Rejected input rows kept in ingest.rejects.';

grant select on ops.overview to tsfleet_analyst, tsfleet_grafana;
