-- `tsfleet bundle load` (issue 7; moved out of Python strings by issue 15): a capture
-- bundle's binned values back into the database. Device bundles register their manifest's
-- keys here (ingest.register_bundle_keys) and then go through the shared ingest path
-- (20_ingest.sql, 23_ingest_write.sql); asset bundles are written by
-- ingest.load_asset_bundle, which the shared path does not cover (it writes device readings).
-- Couples with: loader/capture/load.py (calls these with the manifest's columns as arrays),
-- ingest.begin_batch/commit_batch (the batch row and the checksum registry), migration 0093
-- (the registry's unique index), tests/test_bundle_load.py.
-- unnest() is unqualified: its multi-argument form is FROM-clause syntax, not a pg_catalog
-- function (search_path is pinned to pg_catalog anyway).

create or replace function ingest.committed_batch_id(p_source_kind text, p_checksum text)
returns bigint
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select b.batch_id
    from ingest.batches as b
    where
        b.source_kind = p_source_kind
        and b.checksum = p_checksum
        and b.status = 'committed';
$$;

comment on function ingest.committed_batch_id(text, text) is
'Id of the committed batch that loaded this content (source kind, checksum), or NULL: what a '
'skipped load reports as "already loaded as batch ...".';

grant execute on function ingest.committed_batch_id(text, text) to tsfleet_ingest;


-- Keys are registered in key order with "on conflict do nothing" (as 23_ingest_write.sql
-- does): two loads registering overlapping keys wait for each other but never deadlock. A key
-- that exists keeps what it has (a metric its unit, a device its tenant).
-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.register_bundle_keys(
    p_tenant_keys text[],
    p_metric_names text[],
    p_units text[],
    p_device_keys text[],
    p_device_tenant_keys text[]
)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_count integer;
    v_registered integer := 0;
begin
    insert into telemetry.tenants (tenant_key)
    select distinct s.tenant_key
    from unnest(p_tenant_keys) as s (tenant_key)
    where not exists (select from telemetry.tenants as t where t.tenant_key = s.tenant_key)
    order by s.tenant_key
    on conflict (tenant_key) do nothing;
    get diagnostics v_count = row_count;
    v_registered := v_registered + v_count;

    insert into telemetry.metrics (metric_name, unit)
    select
        s.metric_name,
        s.unit
    from unnest(p_metric_names, p_units) as s (metric_name, unit)
    where not exists (select from telemetry.metrics as m where m.metric_name = s.metric_name)
    order by s.metric_name
    on conflict (metric_name) do nothing;
    get diagnostics v_count = row_count;
    v_registered := v_registered + v_count;

    insert into telemetry.devices (tenant_id, device_key)
    select
        t.tenant_id,
        s.device_key
    from unnest(p_device_keys, p_device_tenant_keys) as s (device_key, tenant_key)
    inner join telemetry.tenants as t on s.tenant_key = t.tenant_key
    where not exists (select from telemetry.devices as d where d.device_key = s.device_key)
    order by s.device_key
    on conflict (device_key) do nothing;
    get diagnostics v_count = row_count;
    return v_registered + v_count;
end;
$$;

comment on function ingest.register_bundle_keys(text[], text[], text[], text[], text[]) is
'Register a bundle manifest''s tenants, metrics (with their units, paired by position) and '
'devices (with their tenants, paired by position) that do not exist yet; existing ones are '
'left as they are. Returns how many rows were inserted.';

grant execute on function ingest.register_bundle_keys(
    text[], text[], text[], text[], text[]
) to tsfleet_ingest;


-- One batch per bundle, in the caller's transaction: ingest.begin_batch (the checksum
-- registry: a second load of the same bundle waits for the first and then returns it as
-- already loaded), registration, the asset readings, ingest.commit_batch. The source device of
-- every reading is one device per tenant named bundle:<first 12 hex of the checksum>:<tenant>
-- (a binned value has no single source). An existing asset reading with the same key is kept:
-- a duplicate if its value is equal, a conflict if not.
-- The batch's counts and time range are written after ingest.commit_batch: that way it queues
-- no rollup refresh, as before this moved here. (A follow-up could let it queue one for the
-- asset rollups of migration 0042.)
-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.load_asset_bundle(
    p_source_name text,
    p_checksum text,
    p_loader_version text,
    p_series_tenant_keys text[],
    p_series_keys text[],
    p_series_asset_type_keys text[],
    p_series_metric_names text[],
    p_series_units text[],
    p_recorded_at timestamptz[],
    p_reading_series_keys text[],
    p_reading_metric_names text[],
    p_values double precision[]
)
returns table (
    batch_id bigint,
    is_already_loaded boolean,
    rows_read bigint,
    rows_inserted bigint,
    rows_duplicate bigint,
    rows_conflict bigint
)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_batch_id bigint;
    v_prefix text := 'bundle:' || pg_catalog.left(p_checksum, 12) || ':';
    v_read bigint := coalesce(pg_catalog.cardinality(p_values), 0);
    v_inserted bigint;
    v_conflict bigint;
begin
    v_batch_id := ingest.begin_batch('bundle', p_source_name, p_checksum, p_loader_version);
    if v_batch_id is null then
        return query
        select ingest.committed_batch_id('bundle', p_checksum), true, 0::bigint, 0::bigint,
            0::bigint, 0::bigint;
        return;
    end if;

    create temporary table bundle_series on commit drop as
    select
        s.tenant_key,
        s.series_key,
        s.asset_type_key,
        s.metric_name,
        s.unit
    from unnest(
        p_series_tenant_keys, p_series_keys, p_series_asset_type_keys, p_series_metric_names,
        p_series_units
    ) as s (tenant_key, series_key, asset_type_key, metric_name, unit);

    create temporary table bundle_rows on commit drop as
    select
        r.recorded_at,
        r.series_key,
        r.metric_name,
        r.value
    from unnest(
        p_recorded_at, p_reading_series_keys, p_reading_metric_names, p_values
    ) as r (recorded_at, series_key, metric_name, value);

    insert into telemetry.tenants (tenant_key)
    select distinct bs.tenant_key from pg_temp.bundle_series as bs
    order by bs.tenant_key
    on conflict (tenant_key) do nothing;

    insert into telemetry.metrics (metric_name, unit)
    select distinct on (bs.metric_name)
        bs.metric_name,
        bs.unit
    from pg_temp.bundle_series as bs
    order by bs.metric_name asc, bs.unit asc
    on conflict (metric_name) do nothing;

    insert into telemetry.asset_types (asset_type_key)
    select distinct bs.asset_type_key from pg_temp.bundle_series as bs
    order by bs.asset_type_key
    on conflict (asset_type_key) do nothing;

    insert into telemetry.assets (tenant_id, asset_key, asset_type_id)
    select distinct on (bs.series_key)
        t.tenant_id,
        bs.series_key,
        aty.asset_type_id
    from pg_temp.bundle_series as bs
    inner join telemetry.tenants as t on bs.tenant_key = t.tenant_key
    inner join telemetry.asset_types as aty on bs.asset_type_key = aty.asset_type_key
    order by bs.series_key asc, t.tenant_id asc
    on conflict (asset_key) do nothing;

    insert into telemetry.devices (tenant_id, device_key, description)
    select distinct
        t.tenant_id,
        v_prefix || t.tenant_key,
        'source of bundle asset readings'
    from pg_temp.bundle_series as bs
    inner join telemetry.tenants as t on bs.tenant_key = t.tenant_key
    order by 2
    on conflict (device_key) do nothing;

    insert into telemetry.asset_readings (
        recorded_at, asset_id, metric_id, source_device_id, value, quality, batch_id
    )
    select
        br.recorded_at,
        a.asset_id,
        m.metric_id,
        d.device_id,
        br.value,
        'good',
        v_batch_id
    from pg_temp.bundle_rows as br
    inner join telemetry.assets as a on br.series_key = a.asset_key
    inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
    inner join telemetry.devices as d on d.device_key = v_prefix || t.tenant_key
    inner join telemetry.metrics as m on br.metric_name = m.metric_name
    on conflict (recorded_at, asset_id, metric_id, source_device_id) do nothing;
    get diagnostics v_inserted = row_count;

    select count(*) into v_conflict
    from pg_temp.bundle_rows as br
    inner join telemetry.assets as a on br.series_key = a.asset_key
    inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
    inner join telemetry.devices as d on d.device_key = v_prefix || t.tenant_key
    inner join telemetry.metrics as m on br.metric_name = m.metric_name
    inner join telemetry.asset_readings as ar
        on
            br.recorded_at = ar.recorded_at
            and a.asset_id = ar.asset_id
            and m.metric_id = ar.metric_id
            and d.device_id = ar.source_device_id
    where ar.batch_id <> v_batch_id and ar.value is distinct from br.value;

    perform ingest.commit_batch(v_batch_id, v_read);
    update ingest.batches as b
    set
        rows_inserted = 0,
        asset_rows_inserted = v_inserted,
        rows_duplicate = v_read - v_inserted - v_conflict,
        rows_conflict = v_conflict,
        min_recorded_at = (select min(br.recorded_at) from pg_temp.bundle_rows as br),
        max_recorded_at = (select max(br.recorded_at) from pg_temp.bundle_rows as br)
    where b.batch_id = v_batch_id;

    drop table pg_temp.bundle_series;
    drop table pg_temp.bundle_rows;
    return query
    select v_batch_id, false, v_read, v_inserted, v_read - v_inserted - v_conflict, v_conflict;
end;
$$;

comment on function ingest.load_asset_bundle(
    text, text, text, text[], text[], text[], text[], text[], timestamptz[], text[],
    text[], double precision[]
) is
'Load an asset bundle as one batch in the current transaction: its series (tenant, asset, '
'asset type, metric, unit; paired by position) are registered if missing and its readings '
'(time, asset, metric, value) written to telemetry.asset_readings, keeping existing ones. '
'Returns the batch id, whether the bundle was already loaded (then that batch''s id and '
'zeros), and rows read, inserted, duplicate (stored with the same value) and conflicting.';

grant execute on function ingest.load_asset_bundle(
    text, text, text, text[], text[], text[], text[], text[], timestamptz[], text[],
    text[], double precision[]
) to tsfleet_ingest;
