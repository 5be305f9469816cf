-- Ingest: the SQL half of every loader (loader/ingest/). A batch is one transaction:
--   ingest.begin_batch()            lock, checksum registry, the batch row
--   ingest.create_staging()         the session's staging table, filled by COPY
--   ingest.register_devices()       device records and metadata (JSON), tenants on first sight
--   per chunk, the fast path (a first load):
--     ingest.resolve_keys()           ids of devices and metrics, registered on first sight
--     COPY into telemetry.readings    inside a savepoint (loader/ingest/direct.py)
--     ingest.record_copied_readings() row checks and bookkeeping; false: roll back to the
--                                     savepoint and take the staging path for this chunk
--   or the staging path (stored keys, rejects, message ids, last-write-wins):
--     ingest.insert_staged_readings() register, reject, insert, count, bookkeeping
--   ingest.process_batch()          (sql/functions/3x, another subject) asset readings
--   ingest.commit_batch()           status and counts, the rollup refresh queued (4x_rollups)
-- ingest.record_batch_outcome() writes failed/skipped rows after a rollback.
-- Couples with: loader/ingest/ (calls these in this order), migrations 0011/0012/0030,
-- _tsfleet.queue_rollup_refresh() (reads min_recorded_at/max_recorded_at of the batch row).

create or replace function ingest.infer_unit(p_metric_name text)
returns text
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    -- A qualifier after '-' (GridImportKwh-mainmeter) is not part of the unit.
    select case
        when lower(split_part(p_metric_name, '-', 1)) like '%\_c' then 'degC'
        when lower(split_part(p_metric_name, '-', 1)) like '%\_pct' then '%'
        when lower(split_part(p_metric_name, '-', 1)) like '%\_kwh' then 'kWh'
        when lower(split_part(p_metric_name, '-', 1)) like '%\_w' then 'W'
        when split_part(p_metric_name, '-', 1) ~ '(Percentage|Percent|Pct)$' then '%'
        when split_part(p_metric_name, '-', 1) ~ '[a-z](Kwh|KWh)$' then 'kWh'
        when split_part(p_metric_name, '-', 1) ~ '[a-z]W$' then 'W'
    end;
$$;

comment on function ingest.infer_unit(text) is
'Unit of a metric from its name: suffix _c degC, _pct %, _w W, _kwh kWh (also CamelCase '
'Percentage, W, Kwh before an optional -qualifier); NULL when the name says nothing.';

grant execute on function ingest.infer_unit(text) to tsfleet_ingest, tsfleet_analyst;


-- Couples with: loader/ingest/staging.py (COPY column list, in this order).
create or replace function ingest.create_staging()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    -- Once per session; emptied only when it holds rows (insert_staged_readings empties it
    -- after each chunk): a truncate gives the table a new file and makes every statement that
    -- reads it plan again, once per stream micro-batch.
    if pg_catalog.to_regclass('pg_temp.ingest_staging') is null then
        create temporary table ingest_staging (
            source_no integer not null,
            line_number bigint,
            recorded_at timestamptz not null,
            device_key text not null,
            metric_name text not null,
            value double precision not null,
            quality text,
            message_id text
        );
    elsif exists (select from pg_temp.ingest_staging) then
        truncate pg_temp.ingest_staging;
    end if;
end;
$$;

comment on function ingest.create_staging() is
'Create (once per session) and empty pg_temp.ingest_staging, the table loaders COPY into.';

grant execute on function ingest.create_staging() to tsfleet_ingest;


-- One batch at a time: a batch holds the ingest lock until it commits or rolls back, so
-- loaders of overlapping data neither deadlock (no lock cycles between unique-index
-- insertions, device rows and registrations) nor duplicate (the checksum check below sees
-- every committed batch). Concurrent loaders wait for each other, batch by batch.
create or replace function ingest.begin_batch(
    p_source_kind text,
    p_source_name text,
    p_checksum text,
    p_loader_version text default null
)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_batch_id bigint;
begin
    -- Key 7_465_676 ('tsfleet ingest'): held until this transaction ends.
    perform pg_catalog.pg_advisory_xact_lock(7465676);
    if p_checksum is not null and exists (
        select from ingest.batches as b
        where
            b.source_kind = p_source_kind
            and b.checksum = p_checksum
            and b.status = 'committed'
    ) then
        return null;
    end if;
    -- Inserted in the data transaction: a killed loader leaves no 'running' row behind.
    insert into ingest.batches (source_kind, source_name, checksum, status, loader_version)
    values (p_source_kind, p_source_name, p_checksum, 'running', p_loader_version)
    returning batch_id into v_batch_id;
    return v_batch_id;
end;
$$;

comment on function ingest.begin_batch(text, text, text, text) is
'Start a batch in the current transaction: take the ingest lock, return NULL if this content '
'(kind, checksum) is already committed, else insert the running batch row and return its id.';

grant execute on function ingest.begin_batch(text, text, text, text) to tsfleet_ingest;


create or replace function ingest.register_devices(
    p_devices jsonb,
    p_default_tenant_key text default 'default'
)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_changed integer;
    v_inserted integer;
begin
    if jsonb_typeof(p_devices) is distinct from 'array' then
        raise exception 'tsfleet: p_devices must be a JSON array, got %', jsonb_typeof(p_devices)
        using hint = 'Pass [{"device_key": ..., "tenant_key": ..., "device_type": ...}, ...].';
    end if;
    insert into telemetry.tenants (tenant_key)
    select k.tenant_key
    from (
        select distinct coalesce(dv.item ->> 'tenant_key', p_default_tenant_key) as tenant_key
        from jsonb_array_elements(p_devices) as dv (item)
    ) as k
    where not exists (select from telemetry.tenants as t where t.tenant_key = k.tenant_key)
    order by k.tenant_key
    on conflict (tenant_key) do nothing;

    create temporary table if not exists pg_temp.ingest_devices (
        tenant_id integer,
        device_key text,
        device_type text,
        description text,
        state text,
        serial_number text,
        firmware_version text
    );
    truncate pg_temp.ingest_devices;
    -- The last record of a device in the array wins.
    insert into pg_temp.ingest_devices
    select distinct on (dv.item ->> 'device_key')
        t.tenant_id,
        dv.item ->> 'device_key' as device_key,
        dv.item ->> 'device_type' as device_type,
        dv.item ->> 'description' as description,
        dv.item ->> 'state' as state,
        dv.item ->> 'serial_number' as serial_number,
        dv.item ->> 'firmware_version' as firmware_version
    from jsonb_array_elements(p_devices) with ordinality as dv (item, position)
    inner join telemetry.tenants as t
        on coalesce(dv.item ->> 'tenant_key', p_default_tenant_key) = t.tenant_key
    -- A record from a message loaded before (a redelivery) changes nothing.
    where not exists (
        select from ingest.message_receipts as mr
        where mr.message_id = dv.item ->> 'message_id'
    )
    order by dv.item ->> 'device_key', dv.position desc;

    -- A device keeps its tenant; metadata fields given replace stored ones. Separate update
    -- and insert (not ON CONFLICT): an upsert would use up an identity value per call.
    update telemetry.devices as d
    set
        device_type = coalesce(i.device_type, d.device_type),
        description = coalesce(i.description, d.description),
        state = coalesce(i.state, d.state),
        serial_number = coalesce(i.serial_number, d.serial_number),
        firmware_version = coalesce(i.firmware_version, d.firmware_version),
        updated_at = now()
    from pg_temp.ingest_devices as i
    where
        d.device_key = i.device_key
        and (d.device_type, d.description, d.state, d.serial_number, d.firmware_version)
        is distinct from (
            coalesce(i.device_type, d.device_type),
            coalesce(i.description, d.description),
            coalesce(i.state, d.state),
            coalesce(i.serial_number, d.serial_number),
            coalesce(i.firmware_version, d.firmware_version)
        );
    get diagnostics v_changed = row_count;

    insert into telemetry.devices (
        tenant_id, device_key, device_type, description, state, serial_number,
        firmware_version
    )
    select
        i.tenant_id,
        i.device_key,
        i.device_type,
        i.description,
        i.state,
        i.serial_number,
        i.firmware_version
    from pg_temp.ingest_devices as i
    where not exists (
        select from telemetry.devices as d where d.device_key = i.device_key
    )
    order by i.device_key
    on conflict (device_key) do nothing;
    get diagnostics v_inserted = row_count;
    v_changed := v_changed + v_inserted;
    return v_changed;
end;
$$;

comment on function ingest.register_devices(jsonb, text) is
'Create or update devices from a JSON array of {device_key, tenant_key, device_type, '
'description, state, serial_number, firmware_version, message_id}; a record whose message_id '
'was loaded before is ignored. Returns how many rows changed.';

grant execute on function ingest.register_devices(jsonb, text) to tsfleet_ingest;


-- Only an unseen key is offered to the insert: ON CONFLICT alone would burn an identity value
-- per call, and a busy stream calls this once per micro-batch.
create or replace function ingest.tenant_id(p_tenant_key text)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenant_id integer;
begin
    select t.tenant_id into v_tenant_id
    from telemetry.tenants as t where t.tenant_key = p_tenant_key;
    if v_tenant_id is null then
        insert into telemetry.tenants (tenant_key) values (p_tenant_key)
        on conflict (tenant_key) do nothing;
        select t.tenant_id into v_tenant_id
        from telemetry.tenants as t where t.tenant_key = p_tenant_key;
    end if;
    return v_tenant_id;
end;
$$;

comment on function ingest.tenant_id(text) is
'Id of the tenant with this key, registered on first sight (loaders and stream consumers).';

grant execute on function ingest.tenant_id(text) to tsfleet_ingest;


create or replace function ingest.insert_staged_readings(
    p_batch_id bigint,
    p_tenant_key text default 'default',
    p_source_names text[] default '{}',
    p_last_write_wins boolean default false
)
returns table (
    rows_staged bigint,
    rows_inserted bigint,
    rows_duplicate bigint,
    rows_conflict bigint,
    rows_rejected bigint,
    messages_duplicate bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenant_id integer;
    v_staged bigint;
    v_written bigint := 0;
    v_inserted bigint := 0;
    v_conflict bigint := 0;
    v_rejected bigint := 0;
    v_in_batch_duplicate bigint := 0;
    v_redelivered bigint := 0;
    v_messages_duplicate bigint := 0;
    v_message_ids bigint := 0;
    v_message_ids_new bigint := 0;
    v_min timestamptz;
    v_max timestamptz;
    v_future_limit timestamptz := now() + coalesce(
        nullif(current_setting('tsfleet.ingest_max_future', true), '')::interval,
        interval '1 day'
    );
begin
    select
        count(*),
        min(s.recorded_at),
        max(s.recorded_at)
    into v_staged, v_min, v_max
    from pg_temp.ingest_staging as s;
    if v_staged = 0 then
        return query select 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint, 0::bigint;
        return;
    end if;

    -- Tenants, devices and metrics on first sight (sorted: a stable lock order).
    -- Only keys not seen yet are offered: ON CONFLICT alone would burn an identity value per
    -- known key and chunk, and the integer ids would run out under a busy stream.
    v_tenant_id := ingest.tenant_id(p_tenant_key);

    insert into telemetry.devices (tenant_id, device_key)
    select
        v_tenant_id,
        k.device_key
    from (select distinct s.device_key from pg_temp.ingest_staging as s) as k
    where not exists (
        select from telemetry.devices as d where d.device_key = k.device_key
    )
    order by k.device_key
    on conflict (device_key) do nothing;

    insert into telemetry.metrics (metric_name, unit)
    select
        k.metric_name,
        ingest.infer_unit(k.metric_name)
    from (select distinct s.metric_name from pg_temp.ingest_staging as s) as k
    where not exists (
        select from telemetry.metrics as m where m.metric_name = k.metric_name
    )
    order by k.metric_name
    on conflict (metric_name) do nothing;

    -- Redelivered messages: their ids are known, so their readings change nothing. The staged
    -- rows are matched against the receipts only when some id was known already (fewer
    -- receipts recorded than distinct ids): joined on every call, each micro-batch of a
    -- stream read the whole receipts table, which grows with every message.
    if exists (select from pg_temp.ingest_staging as s where s.message_id is not null) then
        with
        ids as materialized (
            select distinct s.message_id
            from pg_temp.ingest_staging as s
            where s.message_id is not null
        ),

        recorded as (
            insert into ingest.message_receipts (message_id, batch_id)
            select
                i.message_id,
                p_batch_id
            from ids as i
            order by i.message_id
            on conflict (message_id) do nothing
            returning 1
        )

        select
            (select count(*) from ids),
            (select count(*) from recorded)
        into v_message_ids, v_message_ids_new;

        if v_message_ids_new < v_message_ids then
            with
            gone as (
                delete from pg_temp.ingest_staging as s
                where exists (
                    select from ingest.message_receipts as mr
                    where mr.message_id = s.message_id and mr.batch_id <> p_batch_id
                )
                returning s.message_id
            )

            select
                count(*),
                count(distinct g.message_id)
            into v_redelivered, v_messages_duplicate
            from gone as g;
        end if;
    end if;

    -- Row-level checks that need the catalog: valid range of the metric, future timestamps
    -- (skipped when no staged time is in the future and no metric has a range).
    if v_max > v_future_limit or exists (
        select from telemetry.metrics as m
        where m.valid_min is not null or m.valid_max is not null
    ) then
        with
        bad as (
            delete from pg_temp.ingest_staging as s
            using telemetry.metrics as m
            where
                s.metric_name = m.metric_name
                and (
                    s.value < m.valid_min
                    or s.value > m.valid_max
                    or s.recorded_at > v_future_limit
                )
            returning s.*, m.valid_min, m.valid_max
        ),

        final as (
            insert into ingest.rejects (
                batch_id, source_name, line_number, field_name, raw_text, reason
            )
            select
                p_batch_id,
                coalesce(p_source_names[b.source_no], 'staging'),
                b.line_number,
                case when b.recorded_at > v_future_limit then 'timestamp' else 'value' end,
                concat_ws(',', b.recorded_at, b.device_key, b.metric_name, b.value),
                case
                    when b.recorded_at > v_future_limit
                        then format(
                            'timestamp %s is in the future (beyond %s)', b.recorded_at,
                            v_future_limit
                        )
                    else format(
                        'value %s outside the valid range [%s, %s] of metric %s',
                        b.value, b.valid_min, b.valid_max, b.metric_name
                    )
                end
            from bad as b
            returning 1
        )

        select count(*) into v_rejected from final;
    end if;
    if v_rejected + v_redelivered > 0 then
        select min(s.recorded_at), max(s.recorded_at) into v_min, v_max
        from pg_temp.ingest_staging as s;
    end if;

    if p_last_write_wins then
        -- One row per key (the last one read wins), then replace differing stored values.
        delete from pg_temp.ingest_staging as s
        using pg_temp.ingest_staging as later
        where
            later.recorded_at = s.recorded_at
            and later.device_key = s.device_key
            and later.metric_name = s.metric_name
            and (later.source_no, later.line_number, later.ctid)
            > (s.source_no, s.line_number, s.ctid);
        get diagnostics v_in_batch_duplicate = row_count;

        select count(*) into v_conflict
        from pg_temp.ingest_staging as s
        inner join telemetry.devices as d on s.device_key = d.device_key
        inner join telemetry.metrics as m on s.metric_name = m.metric_name
        inner join telemetry.readings as r
            on
                s.recorded_at = r.recorded_at
                and d.device_id = r.device_id
                and m.metric_id = r.metric_id
        where (r.value, r.quality) is distinct from (s.value, coalesce(s.quality, 'good'));

        insert into telemetry.readings as r (
            recorded_at, device_id, metric_id, value, quality, batch_id
        )
        select
            s.recorded_at,
            d.device_id,
            m.metric_id,
            s.value,
            coalesce(s.quality, 'good'),
            p_batch_id
        from pg_temp.ingest_staging as s
        inner join telemetry.devices as d on s.device_key = d.device_key
        inner join telemetry.metrics as m on s.metric_name = m.metric_name
        on conflict (recorded_at, device_id, metric_id) do update
            set value = excluded.value, quality = excluded.quality, batch_id = excluded.batch_id
            where (r.value, r.quality) is distinct from (excluded.value, excluded.quality);
        get diagnostics v_written = row_count;
        v_inserted := v_written - v_conflict;
    else
        begin
            -- Fast path: no key exists yet (a first load) needs no conflict handling.
            insert into telemetry.readings (
                recorded_at, device_id, metric_id, value, quality, batch_id
            )
            select
                s.recorded_at,
                d.device_id,
                m.metric_id,
                s.value,
                coalesce(s.quality, 'good'),
                p_batch_id
            from pg_temp.ingest_staging as s
            inner join telemetry.devices as d on s.device_key = d.device_key
            inner join telemetry.metrics as m on s.metric_name = m.metric_name;
            get diagnostics v_inserted = row_count;
        exception when unique_violation then
            insert into telemetry.readings (
                recorded_at, device_id, metric_id, value, quality, batch_id
            )
            select
                s.recorded_at,
                d.device_id,
                m.metric_id,
                s.value,
                coalesce(s.quality, 'good'),
                p_batch_id
            from pg_temp.ingest_staging as s
            inner join telemetry.devices as d on s.device_key = d.device_key
            inner join telemetry.metrics as m on s.metric_name = m.metric_name
            on conflict (recorded_at, device_id, metric_id) do nothing;
            get diagnostics v_inserted = row_count;
            -- Not inserted: equal to the stored reading (duplicate) or not (conflict). A row
            -- inserted by this statement matches itself and counts as neither.
            select count(*) into v_conflict
            from pg_temp.ingest_staging as s
            inner join telemetry.devices as d on s.device_key = d.device_key
            inner join telemetry.metrics as m on s.metric_name = m.metric_name
            inner join telemetry.readings as r
                on
                    s.recorded_at = r.recorded_at
                    and d.device_id = r.device_id
                    and m.metric_id = r.metric_id
            where (r.value, r.quality) is distinct from (s.value, coalesce(s.quality, 'good'));
        end;
        v_written := v_inserted;
    end if;

    -- Freshness and the batch's time range (what rollups.refresh_after_load refreshes).
    if v_written > 0 then
        with
        latest as (
            select
                s.device_key,
                max(s.recorded_at) as last_at
            from pg_temp.ingest_staging as s
            group by s.device_key
        )

        update telemetry.devices as d
        set last_reading_at = l.last_at
        from latest as l
        where
            d.device_key = l.device_key
            and (d.last_reading_at is null or d.last_reading_at < l.last_at);

    else
        v_min := null;
        v_max := null;
    end if;

    update ingest.batches as b
    set
        rows_inserted = b.rows_inserted + v_inserted,
        rows_duplicate = b.rows_duplicate + (
            v_staged - v_rejected - v_inserted - v_conflict
        ),
        rows_conflict = b.rows_conflict + v_conflict,
        rows_rejected = b.rows_rejected + v_rejected,
        min_recorded_at = least(b.min_recorded_at, v_min),
        max_recorded_at = greatest(b.max_recorded_at, v_max)
    where b.batch_id = p_batch_id;

    truncate pg_temp.ingest_staging;
    return query select
        v_staged,
        v_inserted,
        v_staged - v_rejected - v_inserted - v_conflict,
        v_conflict,
        v_rejected,
        v_messages_duplicate;
end;
$$;

comment on function ingest.insert_staged_readings(bigint, text, text[], boolean) is
'Move the rows of pg_temp.ingest_staging into telemetry.readings for a batch: register '
'tenants, devices and metrics, skip redelivered messages, reject out-of-range and future '
'readings, insert (keep stored values, or last-write-wins), count duplicates and conflicts, '
'keep devices.last_reading_at and the batch counters; empties the staging table.';

grant execute on function ingest.insert_staged_readings(bigint, text, text[], boolean)
to tsfleet_ingest;


create or replace function ingest.commit_batch(
    p_batch_id bigint,
    p_rows_read bigint,
    p_rows_rejected bigint default 0
)
returns setof ingest.batches
language sql
set search_path = pg_catalog, pg_temp
as $$
    -- In the batch's transaction: its rollup refresh is queued if and only if it commits.
    select _tsfleet.queue_rollup_refresh(p_batch_id);
    update ingest.batches as b
    set
        status = 'committed',
        rows_read = p_rows_read,
        rows_rejected = b.rows_rejected + p_rows_rejected,
        finished_at = clock_timestamp()
    where b.batch_id = p_batch_id
    returning b.*;
$$;

comment on function ingest.commit_batch(bigint, bigint, bigint) is
'Mark a batch committed with the rows read and the rows the loader rejected while parsing '
'(added to those the SQL checks rejected) and queue the rollup refresh its readings need '
'(_tsfleet.queue_rollup_refresh); the caller then commits the transaction.';

grant execute on function ingest.commit_batch(bigint, bigint, bigint) to tsfleet_ingest;


create or replace function ingest.record_batch_outcome(
    p_source_kind text,
    p_source_name text,
    p_checksum text,
    p_status text,
    p_error_message text default null,
    p_rows_read bigint default 0,
    p_loader_version text default null
)
returns bigint
language sql
set search_path = pg_catalog, pg_temp
as $$
    insert into ingest.batches (
        source_kind, source_name, checksum, status, error_message, rows_read, loader_version,
        finished_at
    )
    values (
        p_source_kind, p_source_name, p_checksum, p_status, p_error_message, p_rows_read,
        p_loader_version, clock_timestamp()
    )
    returning batch_id;
$$;

comment on function ingest.record_batch_outcome(text, text, text, text, text, bigint, text) is
'Record a batch that wrote nothing: failed (with its error, after the rollback) or skipped '
'(content already committed). Returns the new batch id.';

grant execute on function ingest.record_batch_outcome(
    text, text, text, text, text, bigint, text
) to tsfleet_ingest;


-- Couples with: migration 0030 (ingest.message_receipts).
create or replace function ingest.prune_message_receipts(p_older_than interval)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_deleted bigint;
begin
    if p_older_than < interval '1 day' then
        raise exception 'tsfleet: refusing to prune message receipts younger than 1 day (%)',
        p_older_than
        using hint = 'A redelivery after its receipt is pruned would load the message again.';
    end if;
    delete from ingest.message_receipts as mr
    where mr.received_at < now() - p_older_than;
    get diagnostics v_deleted = row_count;
    return v_deleted;
end;
$$;

comment on function ingest.prune_message_receipts(interval) is
'Delete message-id receipts older than the given age (at least 1 day); a message redelivered '
'after that would load again. Returns the number deleted.';

grant execute on function ingest.prune_message_receipts(interval) to tsfleet_ingest;


-- The fast path of a chunk (loader/ingest/direct.py): ids resolved here, rows COPYed straight
-- into telemetry.readings inside a savepoint, then ingest.record_copied_readings() checks and
-- books them. Couples with: ingest.insert_staged_readings() (same registration rules).
create or replace function ingest.resolve_keys(
    p_tenant_key text,
    p_device_keys text[],
    p_metric_names text[]
)
returns table (
    key_kind text,
    key_name text,
    key_id integer,
    valid_min double precision,
    valid_max double precision
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tenant_id integer;
begin
    v_tenant_id := ingest.tenant_id(p_tenant_key);

    -- As in insert_staged_readings: only unseen keys are offered, sorted (stable lock order,
    -- no identity value burnt per known key).
    insert into telemetry.devices (tenant_id, device_key)
    select
        v_tenant_id,
        k.device_key
    from (select distinct u.device_key from unnest(p_device_keys) as u (device_key)) as k
    where not exists (
        select from telemetry.devices as d where d.device_key = k.device_key
    )
    order by k.device_key
    on conflict (device_key) do nothing;

    insert into telemetry.metrics (metric_name, unit)
    select
        k.metric_name,
        ingest.infer_unit(k.metric_name)
    from (select distinct u.metric_name from unnest(p_metric_names) as u (metric_name)) as k
    where not exists (
        select from telemetry.metrics as m where m.metric_name = k.metric_name
    )
    order by k.metric_name
    on conflict (metric_name) do nothing;

    return query
    select
        'device'::text,
        d.device_key,
        d.device_id,
        null::double precision,
        null::double precision
    from telemetry.devices as d
    where d.device_key = any(p_device_keys)
    union all
    select
        'metric'::text,
        m.metric_name,
        m.metric_id,
        m.valid_min,
        m.valid_max
    from telemetry.metrics as m
    where m.metric_name = any(p_metric_names);
end;
$$;

comment on function ingest.resolve_keys(text, text[], text[]) is
'Ids of device keys and metric names, registering unseen ones (and the tenant) first: rows '
'(key_kind device|metric, key_name, key_id, valid_min, valid_max of a metric). The loader''s '
'fast path COPYs readings with these ids.';

grant execute on function ingest.resolve_keys(text, text[], text[]) to tsfleet_ingest;


-- Couples with: ingest.insert_staged_readings() (the same row checks, the same bookkeeping).
create or replace function ingest.record_copied_readings(
    p_batch_id bigint,
    p_rows bigint,
    p_min timestamptz,
    p_max timestamptz,
    p_metric_ids integer[],
    p_metric_value_min double precision[],
    p_metric_value_max double precision[]
)
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_future_limit timestamptz := now() + coalesce(
        nullif(current_setting('tsfleet.ingest_max_future', true), '')::interval,
        interval '1 day'
    );
begin
    -- A row the checks of insert_staged_readings would reject (the chunk's newest time, or a
    -- metric's smallest or largest value, outside the limits): the caller rolls the chunk back
    -- to its savepoint and loads it through staging, which rejects each such row with its
    -- reason. Metrics with a valid range must be in p_metric_ids.
    if p_max > v_future_limit then
        return false;
    end if;
    if exists (
        select
        from
            unnest(
                p_metric_ids, p_metric_value_min, p_metric_value_max
            ) as v (metric_id, value_min, value_max)
        inner join telemetry.metrics as m on v.metric_id = m.metric_id
        where v.value_min < m.valid_min or v.value_max > m.valid_max
    ) then
        return false;
    end if;

    update ingest.batches as b
    set
        rows_inserted = b.rows_inserted + p_rows,
        min_recorded_at = least(b.min_recorded_at, p_min),
        max_recorded_at = greatest(b.max_recorded_at, p_max)
    where b.batch_id = p_batch_id;
    return true;
end;
$$;

comment on function ingest.record_copied_readings(
    bigint, bigint, timestamptz, timestamptz, integer[], double precision[], double precision[]
) is
'Check and book a chunk the loader COPYed straight into telemetry.readings, given its row '
'count, time range and value range per metric: false (books nothing) if a row would be '
'rejected (future timestamp, value outside its metric''s valid range), which the caller then '
'rolls back and loads through staging; else add to the batch counters and time range and '
'return true. The loader then calls ingest.record_device_last_readings once per batch.';

grant execute on function ingest.record_copied_readings(
    bigint, bigint, timestamptz, timestamptz, integer[], double precision[], double precision[]
) to tsfleet_ingest;


-- Once per batch rather than per chunk: a time-ordered load would otherwise rewrite every
-- device row once per chunk. Couples with: ingest.insert_staged_readings() (the same rule).
create or replace function ingest.record_device_last_readings(
    p_device_ids integer[],
    p_last_at timestamptz[]
)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
    update telemetry.devices as d
    set last_reading_at = l.last_at
    from unnest(p_device_ids, p_last_at) as l (device_id, last_at)
    where
        d.device_id = l.device_id
        and (d.last_reading_at is null or d.last_reading_at < l.last_at);
$$;

comment on function ingest.record_device_last_readings(integer[], timestamptz[]) is
'Advance telemetry.devices.last_reading_at to the given times (never backwards): the newest '
'reading per device of the chunks the loader COPYed straight into telemetry.readings.';

grant execute on function ingest.record_device_last_readings(integer[], timestamptz[])
to tsfleet_ingest;
