-- Ingest writing: typed rows of pg_temp.ingest_staging into telemetry.readings under the
-- exactly-once rules, and ingest.write_batch(), the one function a loader calls per batch.
-- Couples with: 20_ingest.sql (staging, batches), 22_ingest_parse.sql (parsers), migration
-- 0092 (ingest.collisions), loader/ingest/batch.py (the caller).

-- Rows of the staging table whose key collides with an earlier staged row or a stored reading:
-- each recorded in ingest.collisions (file, line, key, both values) and taken out of the
-- staging table, except, under last-write-wins, the last staged row of a key and a row that
-- differs from the stored one (the upsert then replaces it). Returns (duplicates, conflicts)
-- of stored readings that stay in staging (last-write-wins conflicts).
create or replace function ingest.settle_collisions(
    p_batch_id bigint,
    p_source_names text[],
    p_last_write_wins boolean,
    p_min timestamptz,
    p_max timestamptz,
    out stored_conflicts bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    -- Within the batch: the first row of a key is kept (the last one under last-write-wins).
    with
    ranked as (
        select
            s.ctid as row_id,
            s.*,
            first_value(s.value) over keyed as kept_value,
            first_value(s.quality) over keyed as kept_quality,
            first_value(s.line_number) over keyed as kept_line,
            row_number() over keyed as position
        from pg_temp.ingest_staging as s
        window keyed as (
            partition by s.recorded_at, s.device_key, s.metric_name
            order by
                case when p_last_write_wins then -s.source_no else s.source_no end,
                case when p_last_write_wins then -s.line_number else s.line_number end
        )
    ),

    gone as (
        delete from pg_temp.ingest_staging as s
        using ranked as r
        where s.ctid = r.row_id and r.position > 1
        returning s.*, r.kept_value, r.kept_quality, r.kept_line
    )

    insert into ingest.collisions (
        batch_id, source_name, line_number, recorded_at, device_key, metric_name, kind,
        value, quality, other_value, other_quality, other_line_number
    )
    select
        p_batch_id,
        coalesce(p_source_names[g.source_no], 'staging'),
        g.line_number,
        g.recorded_at,
        g.device_key,
        g.metric_name,
        case
            when (g.value, coalesce(g.quality, 'good'))
                = (g.kept_value, coalesce(g.kept_quality, 'good')) then 'duplicate'
            else 'conflict'
        end,
        g.value,
        coalesce(g.quality, 'good'),
        g.kept_value,
        coalesce(g.kept_quality, 'good'),
        g.kept_line
    from gone as g
    order by g.source_no, g.line_number;

    -- Against stored readings (the batch's time range only).
    create temporary table if not exists ingest_stored_hits (
        row_id tid,
        stored_value double precision,
        stored_quality text,
        stored_batch_id bigint
    );
    truncate pg_temp.ingest_stored_hits;
    insert into pg_temp.ingest_stored_hits
    select
        s.ctid,
        r.value,
        r.quality,
        r.batch_id
    from pg_temp.ingest_staging as s
    inner join telemetry.devices as d on s.device_key = d.device_key
    inner join telemetry.metrics as m on s.metric_name = m.metric_name
    inner join telemetry.readings as r
        on
            s.recorded_at = r.recorded_at
            and d.device_id = r.device_id
            and m.metric_id = r.metric_id
    where r.recorded_at between p_min and p_max;

    insert into ingest.collisions (
        batch_id, source_name, line_number, recorded_at, device_key, metric_name, kind,
        value, quality, other_value, other_quality, stored_batch_id
    )
    select
        p_batch_id,
        coalesce(p_source_names[s.source_no], 'staging'),
        s.line_number,
        s.recorded_at,
        s.device_key,
        s.metric_name,
        case
            when (s.value, coalesce(s.quality, 'good')) = (h.stored_value, h.stored_quality)
                then 'duplicate'
            else 'conflict'
        end,
        s.value,
        coalesce(s.quality, 'good'),
        h.stored_value,
        h.stored_quality,
        h.stored_batch_id
    from pg_temp.ingest_staging as s
    inner join pg_temp.ingest_stored_hits as h on s.ctid = h.row_id
    order by s.source_no, s.line_number;

    select count(*) into stored_conflicts
    from pg_temp.ingest_staging as s
    inner join pg_temp.ingest_stored_hits as h on s.ctid = h.row_id
    where (s.value, coalesce(s.quality, 'good')) <> (h.stored_value, h.stored_quality);

    delete from pg_temp.ingest_staging as s
    using pg_temp.ingest_stored_hits as h
    where
        s.ctid = h.row_id
        and (
            not p_last_write_wins
            or (s.value, coalesce(s.quality, 'good')) = (h.stored_value, h.stored_quality)
        );
    if not p_last_write_wins then
        stored_conflicts := 0;
    end if;
end;
$$;

comment on function ingest.settle_collisions(
    bigint, text[], boolean, timestamptz, timestamptz
) is
'Record the staged rows whose key collides within the batch or with a stored reading in '
'ingest.collisions and remove them from pg_temp.ingest_staging (last-write-wins keeps the '
'last row of a key and rows that replace a different stored value); returns those conflicts.';

grant execute on function ingest.settle_collisions(
    bigint, text[], boolean, timestamptz, timestamptz
) to tsfleet_ingest;


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
    v_inserted bigint := 0;
    v_replaced bigint := 0;
    v_rejected bigint := 0;
    v_conflict bigint := 0;
    v_redelivered bigint := 0;
    v_messages_duplicate bigint := 0;
    v_repeated bigint := 0;
    v_ids bigint := 0;
    v_ids_new bigint := 0;
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

    -- Tenants, devices and metrics on first sight, sorted (a stable lock order). Only keys not
    -- seen yet are offered: ON CONFLICT alone would burn an identity value per known key.
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

    -- Message ids: a message loaded by another batch (a redelivery) changes nothing; an id
    -- repeated within the batch keeps its first line. Receipts are matched only when some id
    -- was known already (fewer receipts recorded than distinct ids).
    if exists (select from pg_temp.ingest_staging as s where s.message_id is not null) then
        create temporary table if not exists ingest_message_ids (
            message_id text,
            first_line bigint,
            last_line bigint
        );
        truncate pg_temp.ingest_message_ids;
        insert into pg_temp.ingest_message_ids
        select
            s.message_id,
            min(s.line_number),
            max(s.line_number)
        from pg_temp.ingest_staging as s
        where s.message_id is not null
        group by s.message_id;

        with
        recorded as (
            insert into ingest.message_receipts (message_id, batch_id)
            select
                i.message_id,
                p_batch_id
            from pg_temp.ingest_message_ids as i
            order by i.message_id
            on conflict (message_id) do nothing
            returning 1
        )

        select
            (select count(*) from pg_temp.ingest_message_ids),
            (select count(*) from recorded)
        into v_ids, v_ids_new;

        if v_ids_new < v_ids then
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
        if exists (select from pg_temp.ingest_message_ids as i where i.first_line <> i.last_line)
            then
            with
            gone as (
                delete from pg_temp.ingest_staging as s
                using pg_temp.ingest_message_ids as i
                where s.message_id = i.message_id and s.line_number <> i.first_line
                returning s.message_id, s.line_number
            )

            select
                count(*),
                count(distinct (g.message_id, g.line_number))
            into v_repeated, v_ids
            from gone as g;
            v_redelivered := v_redelivered + v_repeated;
            v_messages_duplicate := v_messages_duplicate + v_ids;
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
            order by b.source_no, b.line_number
            returning 1
        )

        select count(*) into v_rejected from final;
    end if;
    if v_rejected + v_redelivered > 0 then
        select min(s.recorded_at), max(s.recorded_at) into v_min, v_max
        from pg_temp.ingest_staging as s;
    end if;

    -- Readings in the order of their unique key: two batches that insert overlapping keys wait
    -- for each other in the same order, so they cannot deadlock.
    if not p_last_write_wins then
        begin
            -- A first load (no key stored or repeated) needs no conflict handling.
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
            order by s.recorded_at, d.device_id, m.metric_id;
            get diagnostics v_inserted = row_count;
        exception when unique_violation then
            perform ingest.settle_collisions(
                p_batch_id, p_source_names, false, v_min, v_max
            );
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
            order by s.recorded_at, d.device_id, m.metric_id
            on conflict (recorded_at, device_id, metric_id) do nothing;
            get diagnostics v_inserted = row_count;
        end;
        select count(*) into v_conflict
        from ingest.collisions as c
        where c.batch_id = p_batch_id and c.kind = 'conflict';
    else
        v_replaced := ingest.settle_collisions(
            p_batch_id, p_source_names, true, v_min, v_max
        );
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
        order by s.recorded_at, d.device_id, m.metric_id
        on conflict (recorded_at, device_id, metric_id) do update
            set value = excluded.value, quality = excluded.quality, batch_id = excluded.batch_id
            where (r.value, r.quality) is distinct from (excluded.value, excluded.quality);
        get diagnostics v_inserted = row_count;
        v_inserted := v_inserted - v_replaced;
        select count(*) into v_conflict
        from ingest.collisions as c
        where c.batch_id = p_batch_id and c.kind = 'conflict';
    end if;

    -- Freshness (device rows locked in id order) and the batch's time range (what
    -- rollups.refresh_after_load refreshes).
    if v_inserted + v_replaced > 0 then
        with
        latest as (
            select
                d.device_id,
                max(s.recorded_at) as last_at
            from pg_temp.ingest_staging as s
            inner join telemetry.devices as d on s.device_key = d.device_key
            group by d.device_id
        ),

        locked as (
            select
                d.device_id,
                l.last_at
            from telemetry.devices as d
            inner join latest as l on d.device_id = l.device_id
            where d.last_reading_at is null or d.last_reading_at < l.last_at
            order by d.device_id
            for no key update of d
        )

        update telemetry.devices as d
        set last_reading_at = l.last_at
        from locked as l
        where d.device_id = l.device_id;
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
'tenants, devices and metrics, skip redelivered and repeated messages, reject out-of-range and '
'future readings, insert in key order (keep stored values, or last-write-wins), record '
'duplicates and conflicts in ingest.collisions, keep devices.last_reading_at and the batch '
'counters.';

grant execute on function ingest.insert_staged_readings(bigint, text, text[], boolean)
to tsfleet_ingest;


-- The one call per batch, after the loader COPYed its text into pg_temp.ingest_lines.
-- p_format: csv (options of ingest.parse_csv), messages, battery. Options also read here:
-- tenant (default tenant key), last_write_wins, strict (any reject or conflict fails the
-- batch), allow_empty (a batch whose every row was rejected commits; the stream's choice).
-- Failures raise: TSF01 input (file level), TSF03 --strict, TSF04 nothing stored; the caller
-- rolls back and records the failed batch.
-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.write_batch(
    p_batch_id bigint,
    p_format text,
    p_source_names text[],
    p_options jsonb default '{}'
)
returns table (
    rows_read bigint,
    rows_inserted bigint,
    rows_duplicate bigint,
    rows_conflict bigint,
    rows_rejected bigint,
    messages_duplicate bigint,
    values_missing bigint,
    asset_rows_inserted bigint,
    min_recorded_at timestamptz,
    max_recorded_at timestamptz
)
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_read bigint;
    v_rejected bigint;
    v_missing bigint := 0;
    v_tenant text := coalesce(p_options ->> 'tenant', 'default');
    v_strict boolean := coalesce((p_options ->> 'strict')::boolean, false);
    v_counts record;
    v_first record;
    v_batch ingest.batches;
    v_assets bigint;
begin
    if p_format = 'csv' then
        select p.rows_read, p.rows_rejected, p.values_missing into v_read, v_rejected, v_missing
        from ingest.parse_csv(p_batch_id, p_source_names, p_options) as p;
    elsif p_format = 'messages' then
        select p.rows_read, p.rows_rejected into v_read, v_rejected
        from ingest.parse_messages(p_batch_id, p_source_names) as p;
    elsif p_format = 'battery' then
        select p.rows_read, p.rows_rejected into v_read, v_rejected
        from ingest.parse_battery(p_batch_id, p_source_names) as p;
    else
        raise exception 'tsfleet: unknown batch format %', p_format
        using hint = 'Use csv, messages or battery.';
    end if;
    if v_strict and v_rejected > 0 then
        perform ingest.fail_strict(p_batch_id, 'reject');
    end if;

    perform ingest.register_device_records(p_batch_id, v_tenant);
    select * into v_counts
    from ingest.insert_staged_readings(
        p_batch_id, v_tenant, p_source_names,
        coalesce((p_options ->> 'last_write_wins')::boolean, false)
    ) as i;
    if v_strict and (v_counts.rows_rejected > 0 or v_counts.rows_conflict > 0) then
        perform ingest.fail_strict(
            p_batch_id, case when v_counts.rows_rejected > 0 then 'reject' else 'conflict' end
        );
    end if;
    update ingest.batches as b
    set
        rows_rejected = b.rows_rejected + v_rejected,
        values_missing = v_missing
    where b.batch_id = p_batch_id;

    if v_counts.rows_inserted + v_counts.rows_duplicate = 0
        and v_rejected + v_counts.rows_rejected > 0
        and not coalesce((p_options ->> 'allow_empty')::boolean, false) then
        select r.source_name, r.line_number, r.field_name, r.reason into v_first
        from ingest.rejects as r
        where r.batch_id = p_batch_id
        order by r.reject_id
        limit 1;
        raise exception using
            errcode = 'TSF04',
            message = format(
                'every row was rejected (%s rejects), nothing stored; the first: %s%s%s: %s',
                v_rejected + v_counts.rows_rejected, v_first.source_name,
                coalesce(':' || v_first.line_number, ''), coalesce(':' || v_first.field_name, ''),
                v_first.reason
            ),
            hint = 'check the file''s format and the load options, then load it again';
    end if;

    select p.asset_rows_inserted into v_assets from ingest.process_batch(p_batch_id) as p;
    select * into v_batch from ingest.commit_batch(p_batch_id, v_read, 0);
    return query select
        v_batch.rows_read,
        v_batch.rows_inserted,
        v_batch.rows_duplicate,
        v_batch.rows_conflict,
        v_batch.rows_rejected,
        v_counts.messages_duplicate,
        v_batch.values_missing,
        coalesce(v_assets, v_batch.asset_rows_inserted),
        v_batch.min_recorded_at,
        v_batch.max_recorded_at;
end;
$$;

comment on function ingest.write_batch(bigint, text, text[], jsonb) is
'Write the batch staged in pg_temp.ingest_lines: parse (csv, messages or battery), reject, '
'register devices and metrics, apply the exactly-once rules, insert the readings, run asset '
'processing and mark the batch committed; returns its counts. Raises TSF01 (input), TSF03 '
'(--strict) or TSF04 (every row rejected).';

grant execute on function ingest.write_batch(bigint, text, text[], jsonb) to tsfleet_ingest;


create or replace function ingest.fail_strict(p_batch_id bigint, p_kind text)
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_where text;
    v_reason text;
begin
    if p_kind = 'reject' then
        select
            r.source_name || coalesce(':' || r.line_number, '')
            || coalesce(':' || r.field_name, ''),
            r.reason
        into v_where, v_reason
        from ingest.rejects as r
        where r.batch_id = p_batch_id
        order by r.line_number, r.reject_id
        limit 1;
    else
        select
            c.source_name || coalesce(':' || c.line_number, ''),
            format(
                'conflict: key (%s, %s, %s) holds %s, %s',
                c.recorded_at, c.device_key, c.metric_name, c.other_value,
                coalesce('line ' || c.other_line_number, 'stored by batch ' || c.stored_batch_id)
            )
        into v_where, v_reason
        from ingest.collisions as c
        where c.batch_id = p_batch_id and c.kind = 'conflict'
        order by c.line_number
        limit 1;
    end if;
    raise exception using
        errcode = 'TSF03',
        message = format(
            '%s: %s (--strict: any rejected row or conflict fails the batch; nothing was '
            'loaded; fix the row or load without --strict to keep the good rows)',
            v_where, v_reason
        );
end;
$$;

comment on function ingest.fail_strict(bigint, text) is
'Raise TSF03 naming the first reject (p_kind reject) or conflict (conflict) of a batch, for '
'--strict.';

grant execute on function ingest.fail_strict(bigint, text) to tsfleet_ingest;
