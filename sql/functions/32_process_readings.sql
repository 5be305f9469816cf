-- Device readings -> asset readings: mapping, derived metrics, health score, latest health.
-- Set-based: a small link map for the (device, metric) pairs seen and the links of their devices
-- only (not every link of the fleet), then one statement per asset type maps, pivots, computes
-- derived metrics and the health score, inserts (on conflict do nothing) and updates
-- assets.latest_health_* and ingest.batches.
-- Rules (docs/processing.md):
-- * a link applies to readings with valid_from <= recorded_at < valid_until (NULL = open);
-- * a link with rtu_port n takes only device metrics port_<n>_*, strips that prefix, then
--   applies metrics_mapping to the stripped name; a link without a port takes every metric not
--   named port_<n>_* (plus any port metric its mapping names explicitly);
-- * metrics_mapping renames ({"device.voltage": "asset.power_input"} or {"voltage":
--   "power_input"}); device metrics it does not name are carried to the asset unchanged;
-- * derived metrics and the health score are computed per reading set = (asset, source device,
--   recorded_at) of the readings processed in this call; the health score is written for every
--   set of an asset type that has health rules;
-- * re-processing inserts nothing (unique key + on conflict do nothing) and therefore updates
--   nothing: assets and batches are updated only from rows this call inserted.
-- Couples with: migrations 0006, 0009, 0010, 0011, 0020, 0022 (privileges), 30_formulas.sql,
-- 31_health.sql; the loaders (issue 4) and the stream consumer (issue 8) call process_batch.

-- work_mem: the reading-set pivot of a 1,000,000-reading batch then hashes in memory instead of
-- spilling to disk (measured by bench/bench_processing.py).
create or replace function _tsfleet.process_readings(
    p_batch_id bigint,
    p_start timestamptz,
    p_end timestamptz
)
returns table (
    asset_rows_inserted bigint,
    assets_updated bigint,
    derived_rows_inserted bigint,
    health_rows_inserted bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
set work_mem = '64MB'
as $$
declare
    v_filter text;
    v_start timestamptz := p_start;
    v_end timestamptz := p_end;
    v_type integer;
    v_refs jsonb;
    v_pivot text;
    v_values text;
    v_derived_ids integer[];
    v_health_expression text;
    v_steps text;
    v_health_id integer;
    v_statement text;
    v_plain text;
    v_computed text;
    v_inserted bigint;
    v_updated bigint;
    v_derived bigint;
    v_health bigint;
    v_name record;
    v_position integer;
    v_all_refs jsonb;
    v_safe boolean;
    v_pair_devices integer[];
    v_pair_metrics integer[];
    v_devices integer[];
begin
    asset_rows_inserted := 0;
    assets_updated := 0;
    derived_rows_inserted := 0;
    health_rows_inserted := 0;

    -- Which readings: a batch (narrowed to its time range when the loader recorded it, so only
    -- those chunks are scanned), or a time range.
    if p_batch_id is not null then
        select b.min_recorded_at, b.max_recorded_at into v_start, v_end
        from ingest.batches as b
        where b.batch_id = p_batch_id;
        v_filter := 'r.batch_id = $1';
        if v_start is not null and v_end is not null then
            v_filter := v_filter || ' and r.recorded_at >= $2 and r.recorded_at <= $3';
        end if;
    else
        if p_start is null or p_end is null or p_start >= p_end then
            raise exception 'tsfleet: process_range needs p_start < p_end, got [%, %)',
            p_start, p_end
            using errcode = 'invalid_parameter_value';
        end if;
        v_filter := 'r.recorded_at >= $2 and r.recorded_at < $3';
    end if;

    -- Per-transaction scratch table (a second call in one transaction reuses it).
    if pg_catalog.to_regclass('pg_temp.tsfleet_link_map') is null then
        create temp table tsfleet_link_map (
            device_id integer not null,
            device_metric_id integer not null,
            asset_id integer not null,
            asset_type_id integer not null,
            asset_metric_name text not null,
            valid_from timestamptz,
            valid_until timestamptz
        ) on commit drop;
    else
        truncate pg_temp.tsfleet_link_map;
    end if;

    -- Only readings of linked devices become asset readings. Without any link (a fleet
    -- without assets) the readings are not even read: 2,000,000 of them took 0.8 s to find
    -- that out (python -m bench --only ingest).
    if not exists (select from telemetry.device_asset_links) then
        return next;
        return;
    end if;

    -- The (device, metric) pairs of the readings of linked devices (links looked up per pair,
    -- not per reading), and their devices, as arrays: the link map below then reads only the
    -- links of these devices, and is planned with their true numbers (a batch just written
    -- has no statistics yet; estimated at a row or two, the pairs were joined to every link
    -- and mapping entry by nested loops).
    execute pg_catalog.format($sql$
        select
            coalesce(pg_catalog.array_agg(p.device_id), '{}'),
            coalesce(pg_catalog.array_agg(p.metric_id), '{}'),
            coalesce(pg_catalog.array_agg(distinct p.device_id), '{}')
        from (
            select distinct r.device_id, r.metric_id
            from telemetry.readings as r
            where %s
        ) as p
        where exists (
            select from telemetry.device_asset_links as l
            where l.device_id = p.device_id
        )
    $sql$, v_filter)
    into v_pair_devices, v_pair_metrics, v_devices
    using p_batch_id, v_start, v_end;

    -- The link map: for every (device, metric) pair in the readings and every link of that
    -- device, the asset metric it becomes (or no row when the link does not take it); asset
    -- metric ids are joined by name where the map is used, after the names are registered.
    -- EXECUTE: planned for the arrays at hand (a batch of ten devices or of ten thousand).
    if pg_catalog.cardinality(v_devices) > 0 then
        execute $sql$
            insert into pg_temp.tsfleet_link_map (
                device_id, device_metric_id, asset_id, asset_type_id, asset_metric_name,
                valid_from, valid_until
            )
            with
            links as materialized (
                select
                    l.link_id,
                    l.device_id,
                    l.asset_id,
                    a.asset_type_id,
                    l.rtu_port,
                    l.valid_from,
                    l.valid_until,
                    l.metrics_mapping
                from telemetry.device_asset_links as l
                inner join telemetry.assets as a on l.asset_id = a.asset_id
                where l.device_id = any($1)
            ),

            pairs as (
                select
                    p.device_id,
                    p.metric_id
                from unnest($2, $3) as p (device_id, metric_id)
            ),

            metric_names as (
                select
                    m.metric_id,
                    m.metric_name,
                    m.metric_name ~ '^port_[0-9]+_' as is_port_metric
                from telemetry.metrics as m
                where m.metric_id = any($3)
            ),

            mapping as (
                select
                    l.link_id,
                    case
                        when pg_catalog.starts_with(e.key, 'device.')
                            then pg_catalog.substr(e.key, 8)
                        else e.key
                    end as device_name,
                    case
                        when pg_catalog.starts_with(e.value #>> '{}', 'asset.')
                            then pg_catalog.substr(e.value #>> '{}', 7)
                        else e.value #>> '{}'
                    end as asset_name
                from links as l
                cross join lateral pg_catalog.jsonb_each(l.metrics_mapping) as e
                where pg_catalog.jsonb_typeof(e.value) = 'string'
            ),

            candidates as (
                select
                    p.device_id,
                    p.metric_id,
                    l.link_id,
                    l.asset_id,
                    l.asset_type_id,
                    l.valid_from,
                    l.valid_until,
                    m.is_port_metric,
                    case
                        when l.rtu_port is null then m.metric_name
                        when pg_catalog.starts_with(m.metric_name, 'port_' || l.rtu_port || '_')
                            then pg_catalog.substr(
                                m.metric_name, pg_catalog.length('port_' || l.rtu_port || '_') + 1
                            )
                    end as local_name,
                    l.rtu_port is not null as is_port_link
                from pairs as p
                inner join links as l on p.device_id = l.device_id
                inner join metric_names as m on p.metric_id = m.metric_id
            )

            select
                c.device_id,
                c.metric_id,
                c.asset_id,
                c.asset_type_id,
                coalesce(mp.asset_name, c.local_name),
                c.valid_from,
                c.valid_until
            from candidates as c
            left join mapping as mp on c.link_id = mp.link_id and c.local_name = mp.device_name
            where
                c.local_name <> ''
                and coalesce(mp.asset_name, c.local_name) <> ''
                and (c.is_port_link or not c.is_port_metric or mp.asset_name is not null)
        $sql$
        using v_devices, v_pair_devices, v_pair_metrics;
    end if;

    -- Register the asset metric names (mapped, derived, health_score) this call may write.
    -- Sorted, so that concurrent callers insert in the same order.
    insert into telemetry.metrics (metric_name, unit, description)
    select distinct on (n.metric_name) n.metric_name, n.unit, n.description
    from (
        select lm.asset_metric_name as metric_name, dm.unit, null as description, 2 as pref
        from pg_temp.tsfleet_link_map as lm
        inner join telemetry.metrics as dm on lm.device_metric_id = dm.metric_id
        union all
        select
            d.value ->> 'name',
            d.value ->> 'unit',
            pg_catalog.format(
                'Derived metric of asset type %s: %s', aty.asset_type_key, d.value ->> 'formula'
            ),
            1
        from telemetry.asset_types as aty
        cross join lateral pg_catalog.jsonb_array_elements(
            coalesce(aty.telemetry_schema -> 'derived_metrics', '[]')
        ) as d
        where aty.asset_type_id in (select lm.asset_type_id from pg_temp.tsfleet_link_map as lm)
        union all
        select
            'health_score',
            null,
            'Asset health score 0..100 (100 = healthy), from telemetry.health_rules',
            0
        where exists (
            select from telemetry.health_rules as hr
            where hr.asset_type_id in (select lm.asset_type_id from pg_temp.tsfleet_link_map as lm)
        )
    ) as n
    order by n.metric_name, n.pref
    on conflict (metric_name) do nothing;

    -- Statistics, so that the planner hash-joins the readings instead of probing per pair.
    analyze pg_temp.tsfleet_link_map;

    select m.metric_id into v_health_id
    from telemetry.metrics as m
    where m.metric_name = 'health_score';

    for v_type in
        select distinct lm.asset_type_id from pg_temp.tsfleet_link_map as lm order by 1
    loop
        -- Pivot columns m1..mN: declared metrics, derived names (an arriving value of that name
        -- wins over the computed one) and rule metrics.
        v_refs := '{}';
        v_pivot := '';
        v_position := 0;
        for v_name in
            select n.metric_name, m.metric_id
            from (
                select e.value #>> '{}' as metric_name
                from telemetry.asset_types as aty
                cross join lateral pg_catalog.jsonb_array_elements(
                    coalesce(aty.telemetry_schema -> 'metrics', '[]')
                ) as e
                where aty.asset_type_id = v_type and pg_catalog.jsonb_typeof(e.value) = 'string'
                union
                select e.value ->> 'name'
                from telemetry.asset_types as aty
                cross join lateral pg_catalog.jsonb_array_elements(
                    coalesce(aty.telemetry_schema -> 'derived_metrics', '[]')
                ) as e
                where aty.asset_type_id = v_type
                union
                select hr.metric_name
                from telemetry.health_rules as hr
                where hr.asset_type_id = v_type
            ) as n
            left join telemetry.metrics as m on n.metric_name = m.metric_name
            where n.metric_name is not null
            order by n.metric_name
        loop
            v_position := v_position + 1;
            v_refs := v_refs || pg_catalog.jsonb_build_object(
                v_name.metric_name, pg_catalog.format('s.m%s', v_position)
            );
            v_pivot := v_pivot || pg_catalog.format(
                ', max(mp.value) filter (where mp.metric_id = %s) as m%s',
                coalesce(v_name.metric_id::text, 'null'), v_position
            );
        end loop;

        -- Plain expressions first; if a formula overflows double precision, again with
        -- overflow-checked operators (30_formulas.sql), which give no value instead.
        v_safe := false;
        loop
            begin
                v_all_refs := v_refs;
                v_values := '';
                v_derived_ids := '{}';
                -- Each derived metric is computed once per reading set, in a step of its own
                -- (_tsfleet.derived_steps_sql); later formulas, the rows and the health score
                -- read the step's column.
                for v_name in
                    select de.metric_name, de.value_sql, m.metric_id
                    from _tsfleet.derived_expressions(v_type, v_refs, v_safe) as de
                    inner join telemetry.metrics as m on de.metric_name = m.metric_name
                    order by de.derived_position
                loop
                    v_all_refs := v_all_refs || pg_catalog.jsonb_build_object(
                        v_name.metric_name, v_name.value_sql
                    );
                    v_values := v_values || pg_catalog.format(
                        ', (%s, %s)', v_name.metric_id, v_name.value_sql
                    );
                    v_derived_ids := v_derived_ids || v_name.metric_id;
                end loop;
                v_steps := _tsfleet.derived_steps_sql(v_type, v_refs, v_safe);
                v_health_expression := _tsfleet.health_expression(v_type, v_all_refs);
                if v_health_expression is not null then
                    v_values := v_values
                        || pg_catalog.format(', (%s, %s)', v_health_id, v_health_expression);
                end if;

                v_computed :=
                    case
                        when v_values = '' then
                            'select null::timestamptz as recorded_at, null::integer as asset_id, '
                            'null::integer as metric_id, null::integer as source_device_id, '
                            'null::double precision as value, null::text as quality, '
                            'null::bigint as batch_id where false'
                        else pg_catalog.format($sql$
                        select
                            s.recorded_at, s.asset_id, v.metric_id, s.source_device_id, v.value,
                            s.quality, s.batch_id
                        from (
                            select
                                mp.recorded_at,
                                mp.asset_id,
                                mp.source_device_id,
                                pg_catalog.min(mp.batch_id) as batch_id,
                                case
                                    when pg_catalog.min(mp.quality) = pg_catalog.max(mp.quality)
                                        then pg_catalog.min(mp.quality)
                                    else 'mixed'
                                end as quality
                                %s
                            from mapped as mp
                            group by mp.recorded_at, mp.asset_id, mp.source_device_id
                        ) as s
                        %s
                        cross join lateral (values %s) as v (metric_id, value)
                        $sql$, v_pivot, v_steps, pg_catalog.substr(v_values, 3))
                    end;
                v_statement := pg_catalog.format($sql$
                    with
                    mapped as materialized (
                        select
                            r.recorded_at,
                            lm.asset_id,
                            am.metric_id,
                            r.device_id as source_device_id,
                            r.value,
                            r.quality,
                            r.batch_id
                        from telemetry.readings as r
                        inner join pg_temp.tsfleet_link_map as lm
                            on r.device_id = lm.device_id and r.metric_id = lm.device_metric_id
                        inner join telemetry.metrics as am on lm.asset_metric_name = am.metric_name
                        where
                            lm.asset_type_id = $4
                            and (%s)
                            and (lm.valid_from is null or r.recorded_at >= lm.valid_from)
                            and (lm.valid_until is null or r.recorded_at < lm.valid_until)
                    ),

                    computed as (%s),

                    inserted as (
                        insert into telemetry.asset_readings as ar (
                            recorded_at, asset_id, metric_id, source_device_id, value, quality,
                            batch_id
                        )
                        select
                            mp.recorded_at, mp.asset_id, mp.metric_id, mp.source_device_id,
                            mp.value,
                            mp.quality, mp.batch_id
                        from mapped as mp
                        union all
                        select
                            c.recorded_at, c.asset_id, c.metric_id, c.source_device_id, c.value,
                            c.quality, c.batch_id
                        from computed as c
                        where c.value is not null
                        /*on_conflict*/
                        returning
                            ar.recorded_at, ar.asset_id, ar.metric_id, ar.source_device_id,
                            ar.value,
                            ar.batch_id
                    ),

                    newest_health as (
                        select distinct on (i.asset_id)
                            i.asset_id, i.recorded_at, i.value, i.source_device_id, i.batch_id
                        from inserted as i
                        where i.metric_id = $5
                        order by i.asset_id asc, i.recorded_at desc, i.source_device_id asc
                    ),

                    updated_assets as (
                        update telemetry.assets as a
                        set
                            latest_health_score = nh.value,
                            latest_health_at = nh.recorded_at,
                            latest_health_source = pg_catalog.format(
                                'telemetry.health_rules via ingest processing; device %%s; '
                                'batch %%s',
                                d.device_key, nh.batch_id
                            )
                        from newest_health as nh
                        inner join telemetry.devices as d on nh.source_device_id = d.device_id
                        where
                            a.asset_id = nh.asset_id
                            and (a.latest_health_at is null or nh.recorded_at > a.latest_health_at)
                        returning a.asset_id
                    ),

                    batch_counts as (
                        select i.batch_id, pg_catalog.count(*) as row_count
                        from inserted as i
                        group by i.batch_id
                    ),

                    updated_batches as (
                        update ingest.batches as b
                        set asset_rows_inserted = b.asset_rows_inserted + bc.row_count
                        from batch_counts as bc
                        where b.batch_id = bc.batch_id
                        returning b.batch_id
                    )

                    select
                        (select pg_catalog.count(*) from inserted),
                        (select pg_catalog.count(*) from updated_assets),
                        (select pg_catalog.count(*) from inserted as i where i.metric_id = any($6)),
                        (select pg_catalog.count(*) from inserted as i where i.metric_id = $5)
                $sql$,
                    v_filter,
                    v_computed
                );
                -- A new batch's rows are new: insert them plainly (on conflict costs about a
                -- third more on a hypertable). A conflict (re-processing, or a reading set split
                -- over batches) rolls that attempt back and redoes it with on conflict do nothing.
                v_plain := pg_catalog.replace(v_statement, '/*on_conflict*/', '');
                v_statement := pg_catalog.replace(
                    v_statement, '/*on_conflict*/', 'on conflict do nothing'
                );
                if p_batch_id is not null then
                    begin
                        execute v_plain
                        into v_inserted, v_updated, v_derived, v_health
                        using p_batch_id, v_start, v_end, v_type, v_health_id, v_derived_ids;
                    exception when unique_violation then
                        execute v_statement
                        into v_inserted, v_updated, v_derived, v_health
                        using p_batch_id, v_start, v_end, v_type, v_health_id, v_derived_ids;
                    end;
                else
                    execute v_statement
                    into v_inserted, v_updated, v_derived, v_health
                    using p_batch_id, v_start, v_end, v_type, v_health_id, v_derived_ids;
                end if;
                exit;
            exception when numeric_value_out_of_range then
                if v_safe then
                    raise;
                end if;
                v_safe := true;
            end;
        end loop;
        asset_rows_inserted := asset_rows_inserted + v_inserted;
        assets_updated := assets_updated + v_updated;
        derived_rows_inserted := derived_rows_inserted + v_derived;
        health_rows_inserted := health_rows_inserted + v_health;
    end loop;
    return next;
end;
$$;

comment on function _tsfleet.process_readings(bigint, timestamptz, timestamptz) is
'Maps device readings (one batch, or a time range when p_batch_id is NULL) to asset readings '
'with derived metrics and health scores; shared body of ingest.process_batch/process_range.';

grant execute on function _tsfleet.process_readings(bigint, timestamptz, timestamptz)
to tsfleet_ingest;

-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.process_batch(p_batch_id bigint)
returns table (
    asset_rows_inserted bigint,
    assets_updated bigint,
    derived_rows_inserted bigint,
    health_rows_inserted bigint
)
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    select
        pr.asset_rows_inserted,
        pr.assets_updated,
        pr.derived_rows_inserted,
        pr.health_rows_inserted
    from _tsfleet.process_readings(p_batch_id, null, null) as pr
$$;

comment on function ingest.process_batch(bigint) is
'Maps the readings of one ingest batch (telemetry.readings.batch_id) to asset readings: '
'mapped, derived and health_score rows, latest health on the asset, and '
'ingest.batches.asset_rows_inserted. Call it in the load''s transaction; re-running it writes '
'nothing. Uses ingest.batches.min/max_recorded_at, when set, to scan only those chunks.';

grant execute on function ingest.process_batch(bigint) to tsfleet_ingest;

-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.process_range(p_start timestamptz, p_end timestamptz)
returns table (
    asset_rows_inserted bigint,
    assets_updated bigint,
    derived_rows_inserted bigint,
    health_rows_inserted bigint
)
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    select
        pr.asset_rows_inserted,
        pr.assets_updated,
        pr.derived_rows_inserted,
        pr.health_rows_inserted
    from _tsfleet.process_readings(null, p_start, p_end) as pr
$$;

comment on function ingest.process_range(timestamptz, timestamptz) is
'Maps the device readings with p_start <= recorded_at < p_end (any batch), e.g. after a link '
'change. Adds missing asset readings; never deletes or changes existing ones.';

grant execute on function ingest.process_range(timestamptz, timestamptz) to tsfleet_ingest;
