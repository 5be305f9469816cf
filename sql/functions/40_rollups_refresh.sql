-- Refreshing the rollups (migrations 0041-0042) on both editions.
--   Community: rollups are continuous aggregates; refresh = refresh_continuous_aggregate().
--   Apache:    rollups are hypertables; refresh = delete + insert of the buckets in the range,
--              from the same query (_tsfleet.rollup_definitions.source_query).
-- Couples with: _tsfleet.rollup_definitions (0040), _tsfleet.rollup_refresh_queue (0043),
-- `tsfleet refresh`, the loaders (refresh_after_load) and the alert runner (refresh()).

create or replace function _tsfleet.rollup_refresh_windows(
    p_start timestamptz,
    p_end timestamptz,
    p_only_outside_policy boolean default false
)
returns table (
    rollup_name text,
    refresh_order integer,
    window_start timestamptz,
    window_end timestamptz
)
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    with
    definitions as (
        select
            rd.rollup_name,
            rd.refresh_order,
            rd.bucket_width,
            rd.policy_start_offset
        from _tsfleet.rollup_definitions as rd
    ),

    -- A refresh policy names its aggregate in timescaledb_information.jobs: TimescaleDB 2.19
    -- by the materialization hypertable, 2.28 by the aggregate itself; either matches.
    policies as (
        select
            format('%I.%I', ca.view_schema, ca.view_name) as rollup_name,
            (j.config ->> 'start_offset')::interval as start_offset
        from timescaledb_information.continuous_aggregates as ca
        inner join timescaledb_information.jobs as j
            on
                (
                    ca.materialization_hypertable_schema = j.hypertable_schema
                    and ca.materialization_hypertable_name = j.hypertable_name
                )
                or (ca.view_schema = j.hypertable_schema and ca.view_name = j.hypertable_name)
        where j.proc_name = 'policy_refresh_continuous_aggregate' and j.scheduled
    ),

    aligned as (
        select
            d.rollup_name,
            d.refresh_order,
            public.time_bucket(d.bucket_width, p_start) as window_start,
            case
                when public.time_bucket(d.bucket_width, p_end) = p_end then p_end
                else public.time_bucket(d.bucket_width, p_end) + d.bucket_width
            end as window_end,
            p.start_offset as policy_start_offset
        from definitions as d
        left join policies as p on d.rollup_name = p.rollup_name
    )

    select
        a.rollup_name,
        a.refresh_order,
        a.window_start,
        a.window_end
    from aligned as a
    where
        not p_only_outside_policy
        -- No running policy (Apache, or paused): nothing else will pick the range up.
        or a.policy_start_offset is null
        or a.window_start < pg_catalog.now() - a.policy_start_offset
    order by a.refresh_order;
$$;

comment on function _tsfleet.rollup_refresh_windows(timestamptz, timestamptz, boolean) is
'Rollups to refresh for a time range, in dependency order, with the range aligned outward to '
'each rollup''s buckets; optionally only those whose refresh policy does not cover the range.';

grant execute on function _tsfleet.rollup_refresh_windows(timestamptz, timestamptz, boolean)
to tsfleet_ingest;

create or replace function _tsfleet.can_refresh_rollups()
returns boolean
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(pg_catalog.bool_and(
        pg_catalog.pg_has_role(current_user, c.relowner, 'USAGE')
    ), true)
    from _tsfleet.rollup_definitions as rd
    inner join pg_catalog.pg_class as c on c.oid = pg_catalog.to_regclass(rd.rollup_name);
$$;

comment on function _tsfleet.can_refresh_rollups() is
'True when the current role owns (or is a member of the owner of) every rollup; refreshing a '
'continuous aggregate needs it.';

grant execute on function _tsfleet.can_refresh_rollups() to tsfleet_ingest;

-- Community: TimescaleDB refuses a continuous aggregate refresh whose window overlaps one in
-- progress (SQLSTATE 55P03) instead of waiting. tsfleet's own refreshers (loads, the consumer,
-- tsfleet refresh, the alert runner) therefore take turns on this session advisory lock, held
-- across the procedure's internal commits, and the second of two starts the moment the first
-- ends (the runner waits at most its lock_timeout, then skips that refresh).
-- Apache needs no turn: _tsfleet.rebuild_rollup_table locks the buckets it rewrites.
-- Couples with: loader/ingest/rollup_refresh.py (refresh_in_turn: begin, CALL, end), the alert
-- evaluation's lock (7461, 1) in 52_alerts_evaluate.sql.
create or replace function _tsfleet.begin_refresh_turn()
returns boolean
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    if pg_catalog.current_setting('timescaledb.license', true) is distinct from 'timescale' then
        return false;
    end if;
    perform pg_catalog.pg_advisory_lock(7461, 2);
    return true;
end;
$$;

comment on function _tsfleet.begin_refresh_turn() is
'Wait for this session''s turn to refresh the rollups (Community: a session advisory lock, '
'held until _tsfleet.end_refresh_turn); false on Apache, where refreshes need no turn.';

grant execute on function _tsfleet.begin_refresh_turn() to tsfleet_ingest;

create or replace function _tsfleet.end_refresh_turn()
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
    select pg_catalog.pg_advisory_unlock(7461, 2);
$$;

comment on function _tsfleet.end_refresh_turn() is
'End the refresh turn _tsfleet.begin_refresh_turn took (call it only when that returned true).';

grant execute on function _tsfleet.end_refresh_turn() to tsfleet_ingest;

-- The time column of a rollup's source: raw hypertables have recorded_at, rollups bucket_start.
create or replace function _tsfleet.rollup_source_time_column(p_source_table text)
returns text
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
    select case
        when p_source_table like 'rollups.%' then 'bucket_start' else 'recorded_at'
    end;
$$;

comment on function _tsfleet.rollup_source_time_column(text) is
'Time column of a rollup source: bucket_start for a rollup, recorded_at for a raw hypertable.';

-- The bucket-aligned range a rollup's source covers now: what a "whole" refresh recomputes.
-- Rollup rows older than the source (raw data dropped by retention) are therefore kept.
create or replace function _tsfleet.rollup_source_range(
    p_rollup text,
    out range_start timestamptz,
    out range_end timestamptz
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    def _tsfleet.rollup_definitions;
    time_column text;
begin
    select rd.* into strict def
    from _tsfleet.rollup_definitions as rd
    where rd.rollup_name = p_rollup;
    time_column := _tsfleet.rollup_source_time_column(def.source_table);
    execute format(
        'select public.time_bucket(%L::interval, min(s.%I)),'
        ' public.time_bucket(%L::interval, max(s.%I)) + %L::interval from %s as s',
        def.bucket_width, time_column, def.bucket_width, time_column, def.bucket_width,
        def.source_table
    ) into range_start, range_end;
end;
$$;

comment on function _tsfleet.rollup_source_range(text) is
'Bucket-aligned time range that a rollup''s source (raw hypertable or hourly rollup) covers.';

-- Apache edition: recompute the buckets of one rollup table in [p_start, p_end). NULL bounds
-- mean the range its source covers, so rollup rows older than the retained raw data are kept.
create or replace function _tsfleet.rebuild_rollup_table(
    p_rollup text,
    p_start timestamptz,
    p_end timestamptz
)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
-- A large load's range holds many (bucket, key) groups, each with first()/last() state: with
-- the default 4MB the hash aggregate spills to disk, and a batch just written has no
-- statistics, so the planner may pick an external sort instead. 2,000,000 readings: 2.3 s
-- with the defaults, 0.9 s with these (python -m bench --only ingest).
set work_mem = '256MB'
set enable_sort = off
as $$
declare
    -- Up to this many buckets a rebuild locks each of them (with the rollup shared), so that
    -- rebuilds of distinct buckets run at once (a large load's parts, concurrent loads of
    -- other days); a longer range locks the whole rollup.
    max_bucket_locks constant integer := 48;
    def _tsfleet.rollup_definitions;
    source_range record;
    range_start timestamptz := p_start;
    range_end timestamptz := p_end;
    source_from text;
    time_column text;
    bucket timestamptz;
    written bigint;
begin
    select rd.* into strict def
    from _tsfleet.rollup_definitions as rd
    where rd.rollup_name = p_rollup;
    if range_start is null or range_end is null then
        source_range := _tsfleet.rollup_source_range(p_rollup);
        range_start := coalesce(range_start, source_range.range_start);
        range_end := coalesce(range_end, source_range.range_end);
    end if;
    if range_start is null or range_end is null or range_start >= range_end then
        return 0;
    end if;
    -- Whole buckets: a bucket is recomputed from all of its source rows or not at all.
    range_start := public.time_bucket(def.bucket_width, range_start);
    if public.time_bucket(def.bucket_width, range_end) < range_end then
        range_end := public.time_bucket(def.bucket_width, range_end) + def.bucket_width;
    end if;
    -- Concurrent rebuilds of one bucket would both insert it: one at a time per bucket, until
    -- the end of the transaction. Callers take the rollups in refresh_order and buckets in
    -- time order (rollup lock first), so two rebuilds never wait for each other in a circle.
    if range_end - range_start <= def.bucket_width * max_bucket_locks then
        perform pg_catalog.pg_advisory_xact_lock_shared(
            pg_catalog.hashtext('tsfleet rollup rebuild'), def.refresh_order
        );
        -- A loop, not a sorted query: with enable_sort off a sort costs so much on paper that
        -- the query would be JIT-compiled (70 ms).
        bucket := range_start;
        while bucket < range_end loop
            perform pg_catalog.pg_advisory_xact_lock(
                pg_catalog.hashtext('tsfleet rollup bucket ' || def.rollup_name),
                -- Minutes since 1970, folded into integer's range (a shared key only waits).
                ((extract(epoch from bucket) / 60)::bigint % 2147483647)::integer
            );
            bucket := bucket + def.bucket_width;
        end loop;
    else
        perform pg_catalog.pg_advisory_xact_lock(
            pg_catalog.hashtext('tsfleet rollup rebuild'), def.refresh_order
        );
    end if;
    execute format(
        'delete from %s as t where t.bucket_start >= %L and t.bucket_start < %L',
        def.rollup_name, range_start, range_end
    );
    -- The source is read as a range of its time column, put in place of the source table in
    -- the rollup's own query: for whole buckets the same rows as filtering on bucket_start
    -- afterwards, which PostgreSQL would evaluate as time_bucket() per source row (a quarter
    -- of the time of an hourly rebuild of 2,000,000 readings).
    source_from := format('from %s as ', def.source_table);
    if (
        pg_catalog.length(def.source_query)
        - pg_catalog.length(pg_catalog.replace(def.source_query, source_from, ''))
    ) <> pg_catalog.length(source_from) then
        raise exception 'tsfleet: rollup % must read "%" exactly once', p_rollup, source_from;
    end if;
    time_column := _tsfleet.rollup_source_time_column(def.source_table);
    execute format(
        'insert into %s %s',
        def.rollup_name,
        pg_catalog.replace(
            def.source_query,
            source_from,
            format(
                'from (select * from %s where %I >= %L and %I < %L) as ',
                def.source_table, time_column, range_start, time_column, range_end
            )
        )
    );
    get diagnostics written = row_count;
    return written;
end;
$$;

comment on function _tsfleet.rebuild_rollup_table(text, timestamptz, timestamptz) is
'Apache edition: recompute one rollup table''s buckets in [p_start, p_end) (NULL: its source''s '
'whole range). Returns the rows written.';

-- PROCEDURES WITHOUT `set search_path`, on purpose: refresh_continuous_aggregate() commits
-- internally, and PostgreSQL runs a procedure that has a SET clause atomically (no commits), so
-- the refresh would fail with "cannot be executed from a function". Every name below is
-- schema-qualified instead, each body pins search_path first thing (transaction-local, so it
-- never leaks into the caller's session), and no procedure is security definer.

-- The refresh of every rollup over each range, in dependency order: the loop the procedures
-- below share. p_only_outside_policy: leave to a running refresh policy what its window covers.
create or replace procedure _tsfleet.refresh_rollup_ranges(
    p_ranges tstzrange[],
    p_only_outside_policy boolean
)
language plpgsql
as $$
declare
    is_community boolean := pg_catalog.current_setting('timescaledb.license', true)
        = 'timescale';
    -- TimescaleDB 2.28 cuts a manual refresh into batches of a few buckets by default, each a
    -- pass of its own (a sparse year of 7,000 hourly readings: 4 s for the hourly rollup);
    -- where the procedure takes options, buckets_per_batch 0 refreshes the window in one pass,
    -- as 2.19 does. Asked of the catalog, not assumed from the version.
    can_unbatch boolean := pg_catalog.to_regprocedure(
        'public.refresh_continuous_aggregate(regclass, "any", "any", boolean, jsonb)'
    ) is not null;
    range_item tstzrange;
    rollup_names text[];
    window_starts timestamptz[];
    window_ends timestamptz[];
    source_range record;
begin
    perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    foreach range_item in array coalesce(p_ranges, '{}') loop
        -- Collected first: the refresh commits, which must not happen inside an open query.
        select
            pg_catalog.array_agg(w.rollup_name order by w.refresh_order),
            pg_catalog.array_agg(w.window_start order by w.refresh_order),
            pg_catalog.array_agg(w.window_end order by w.refresh_order)
        into rollup_names, window_starts, window_ends
        from _tsfleet.rollup_refresh_windows(
            pg_catalog.lower(range_item), pg_catalog.upper(range_item), p_only_outside_policy
        ) as w;
        for i in 1..coalesce(pg_catalog.cardinality(rollup_names), 0) loop
            if is_community then
                -- Open bounds become the source's range, read now: a rollup built on another
                -- one sees what the previous step just materialized.
                if window_starts[i] is null or window_ends[i] is null then
                    source_range := _tsfleet.rollup_source_range(rollup_names[i]);
                    window_starts[i] := coalesce(window_starts[i], source_range.range_start);
                    window_ends[i] := coalesce(window_ends[i], source_range.range_end);
                end if;
                if window_starts[i] is null or window_ends[i] is null then
                    continue;
                end if;
                if can_unbatch then
                    call public.refresh_continuous_aggregate(
                        rollup_names[i]::regclass, window_starts[i], window_ends[i],
                        options => '{"buckets_per_batch": 0}'::jsonb
                    );
                else
                    call public.refresh_continuous_aggregate(
                        rollup_names[i]::regclass, window_starts[i], window_ends[i]
                    );
                end if;
                -- TimescaleDB logs the invalidations this refresh caused when its transaction
                -- commits; a rollup built on this one only sees them after that.
                commit;
            else
                perform _tsfleet.rebuild_rollup_table(
                    rollup_names[i], window_starts[i], window_ends[i]
                );
            end if;
        end loop;
    end loop;
end;
$$;

comment on procedure _tsfleet.refresh_rollup_ranges (tstzrange [], boolean) is
'Refresh every rollup over each range (NULL bounds: the source''s range), in refresh order; '
'optionally only rollups whose refresh policy does not cover the range. Commits on Community.';

create or replace procedure rollups.refresh(
    p_start timestamptz default null,
    p_end timestamptz default null
)
language plpgsql
as $$
declare
    queued_ids bigint[];
    queued tstzmultirange;
    ranges tstzrange[];
begin
    perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    if p_start is not null and p_end is not null and p_start >= p_end then
        raise exception 'tsfleet: refresh range is empty: start % is not before end %',
            p_start, p_end
        using hint = 'Give --start before --end, or neither for a whole refresh.';
    end if;
    if not _tsfleet.can_refresh_rollups() then
        raise exception 'tsfleet: role % cannot refresh the rollups', current_user
        using hint = 'Run as the owner of the rollups (the role that ran the migrations).';
    end if;
    -- What committed batches left queued (loads that could not refresh, or were killed first).
    select
        pg_catalog.array_agg(q.request_id),
        pg_catalog.range_agg(pg_catalog.tstzrange(q.range_start, q.range_end))
    into queued_ids, queued
    from _tsfleet.rollup_refresh_queue as q;
    ranges := array(
        select c.refresh_range
        from _tsfleet.coalesce_refresh_ranges(queued) as c (refresh_range)
    );
    if p_start is null and p_end is null then
        ranges := array[pg_catalog.tstzrange(null, null)];
    else
        ranges := coalesce(ranges, '{}') || pg_catalog.tstzrange(p_start, p_end);
    end if;
    call _tsfleet.refresh_rollup_ranges(ranges, false);
    if queued_ids is not null then
        delete from _tsfleet.rollup_refresh_queue as q where q.request_id = any(queued_ids);
    end if;
end;
$$;

comment on procedure rollups.refresh (timestamptz, timestamptz) is
'Refresh every rollup: whole when both bounds are NULL, else [p_start, p_end) widened to whole '
'buckets; also refreshes (and takes off) the ranges committed batches queued. CALL it in '
'autocommit (Community commits inside) as the rollups'' owner. Apache: recomputes the buckets '
'of the range (whole: the range raw data covers).';

-- No role grant: refreshing needs the rollups' owner (the role that ran the migrations), which
-- has EXECUTE as the procedure's owner.

-- Couples with: the loader (after its files), the stream consumer (every --refresh-interval).
create or replace procedure rollups.refresh_queued(inout ranges_refreshed integer default null)
language plpgsql
as $$
declare
    queued_ids bigint[];
    queued tstzmultirange;
    ranges tstzrange[];
begin
    perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    ranges_refreshed := 0;
    if not _tsfleet.can_refresh_rollups() then
        raise notice 'tsfleet: role % cannot refresh the rollups: queued refreshes wait for '
        'the rollups'' owner (tsfleet refresh)', current_user;
        return;
    end if;
    select
        pg_catalog.array_agg(q.request_id),
        pg_catalog.range_agg(pg_catalog.tstzrange(q.range_start, q.range_end))
    into queued_ids, queued
    from _tsfleet.rollup_refresh_queue as q;
    ranges := array(
        select c.refresh_range
        from _tsfleet.coalesce_refresh_ranges(queued) as c (refresh_range)
    );
    if queued_ids is null then
        return;
    end if;
    call _tsfleet.refresh_rollup_ranges(ranges, true);
    -- Only what was read above: ranges queued meanwhile wait for the next drain.
    delete from _tsfleet.rollup_refresh_queue as q where q.request_id = any(queued_ids);
    ranges_refreshed := pg_catalog.cardinality(ranges);
end;
$$;

comment on procedure rollups.refresh_queued (integer) is
'Refresh the ranges committed batches queued (_tsfleet.rollup_refresh_queue), joined, leaving '
'to a running refresh policy what its window covers, and take them off the queue; returns '
'how many ranges. As a role that may not refresh: a notice, the queue stays. CALL in '
'autocommit.';

grant execute on procedure rollups.refresh_queued(integer) to tsfleet_ingest;

create or replace procedure rollups.refresh_after_load(
    p_start timestamptz,
    p_end timestamptz,
    p_batch_id bigint default null
)
language plpgsql
as $$
declare
    stale record;
begin
    perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    if p_start is null or p_end is null then
        raise notice 'tsfleet: no time range given: no rollup refresh';
        return;
    end if;
    if p_start >= p_end then
        raise exception 'tsfleet: refresh range is empty: start % is not before end %',
            p_start, p_end
        using hint = 'The end is exclusive: pass the newest reading''s time plus 1 microsecond.';
    end if;
    -- Only rollups whose policy will not cover the range.
    select pg_catalog.min(w.window_start) as window_start, pg_catalog.max(w.window_end)
        as window_end
    into stale
    from _tsfleet.rollup_refresh_windows(p_start, p_end, true) as w;
    if stale.window_start is null then
        return;
    end if;
    if _tsfleet.can_refresh_rollups() then
        call rollups.refresh(p_start, p_end);
    else
        insert into _tsfleet.rollup_refresh_queue (range_start, range_end, batch_id)
        values (p_start, p_end, p_batch_id);
        raise notice 'tsfleet: rollup refresh of [%, %) queued for the rollups'' owner',
            p_start, p_end;
    end if;
end;
$$;

comment on procedure rollups.refresh_after_load (timestamptz, timestamptz, bigint) is
'After committed loads that wrote readings in [p_start, p_end) (end exclusive): when the range '
'is older than a rollup''s refresh policy window (or the rollup has no running policy, as on '
'Apache), refresh it; queue it for the owner (with p_batch_id, if given) if the caller may not '
'refresh. CALL in autocommit.';

grant execute on procedure rollups.refresh_after_load(timestamptz, timestamptz, bigint)
to tsfleet_ingest;

-- The ranges a batch owes the rollups: what ingest.commit_batch queued for it, or, for a batch
-- with nothing queued (written without commit_batch, or taken off by a drain meanwhile), the
-- hour buckets that hold its readings.
create or replace function _tsfleet.batch_pending_ranges(p_batch_id bigint)
returns tstzrange[]
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(
        (
            select pg_catalog.array_agg(
                pg_catalog.tstzrange(q.range_start, q.range_end) order by q.range_start
            )
            from _tsfleet.rollup_refresh_queue as q
            where q.batch_id = p_batch_id
        ),
        array(
            select br.refresh_range
            from _tsfleet.batch_refresh_ranges(p_batch_id) as br (refresh_range)
        )
    );
$$;

comment on function _tsfleet.batch_pending_ranges(bigint) is
'Time ranges whose rollups a batch still needs refreshed: its queued ranges, else the ranges '
'of the hour buckets that hold its readings.';

create or replace procedure rollups.refresh_after_load(p_batch_id bigint)
language plpgsql
as $$
declare
    ranges tstzrange[];
begin
    perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    if not _tsfleet.can_refresh_rollups() then
        -- ingest.commit_batch queued the batch's ranges in its transaction.
        raise notice 'tsfleet: the rollup refresh of batch % stays queued for the rollups'' '
        'owner (tsfleet refresh)', p_batch_id;
        return;
    end if;
    ranges := _tsfleet.batch_pending_ranges(p_batch_id);
    if pg_catalog.cardinality(ranges) = 0 then
        raise notice 'tsfleet: batch % wrote no readings: no rollup refresh', p_batch_id;
        return;
    end if;
    call _tsfleet.refresh_rollup_ranges(ranges, true);
    perform _tsfleet.forget_refreshed(
        p_batch_id,
        (select pg_catalog.range_agg(r.piece) from pg_catalog.unnest(ranges) as r (piece))
    );
end;
$$;

comment on procedure rollups.refresh_after_load (bigint) is
'After a committed load: refresh the rollups for the hour buckets the batch wrote (what '
'ingest.commit_batch queued for it), leaving to a running refresh policy what its window '
'covers, and take them off the queue; as a role that may not refresh, nothing (they stay '
'queued for the owner). CALL in autocommit.';

grant execute on procedure rollups.refresh_after_load(bigint) to tsfleet_ingest;

create or replace procedure rollups.refresh_after_load(
    p_batch_id bigint,
    p_part integer,
    p_parts integer
)
language plpgsql
as $$
declare
    batch_start timestamptz;
    batch_end timestamptz;
    part_start timestamptz;
    part_end timestamptz;
    part_ranges tstzrange[];
begin
    perform pg_catalog.set_config('search_path', 'pg_catalog, pg_temp', true);
    if p_parts is null or p_part is null or p_part not between 0 and p_parts - 1 then
        raise exception 'tsfleet: refresh part % of % is not a part', p_part, p_parts
        using hint = 'Call it once per part: parts 0 to p_parts - 1.';
    end if;
    -- One part, Community (its continuous aggregates refresh a range in one go), or a role
    -- that only queues: part 0 does what refresh_after_load(batch) does, the others nothing.
    if p_parts = 1 or pg_catalog.current_setting('timescaledb.license', true) = 'timescale'
        or not _tsfleet.can_refresh_rollups() then
        if p_part = 0 then
            call rollups.refresh_after_load(p_batch_id);
        end if;
        return;
    end if;
    -- The slices come from the batch's recorded range in whole hours, so every part cuts the
    -- same ones whenever it starts; each refreshes what its slice holds of the batch's pending
    -- ranges and takes its slice off the queue.
    select
        public.time_bucket(interval '1 hour', b.min_recorded_at),
        public.time_bucket(interval '1 hour', b.max_recorded_at) + interval '1 hour'
    into batch_start, batch_end
    from ingest.batches as b
    where b.batch_id = p_batch_id;
    if batch_start is null or batch_end is null then
        return;
    end if;
    -- Consecutive slices of the batch's range, cut at whole hours (the finest bucket): each
    -- part rebuilds other hourly buckets; a daily bucket that two parts share is rebuilt by
    -- both, one after the other (rebuild_rollup_table locks it), the second seeing both.
    part_start := case when p_part = 0 then batch_start else public.time_bucket(
        interval '1 hour', batch_start + (batch_end - batch_start) * p_part / p_parts
    ) end;
    part_end := case when p_part = p_parts - 1 then batch_end else public.time_bucket(
        interval '1 hour', batch_start + (batch_end - batch_start) * (p_part + 1) / p_parts
    ) end;
    if part_start < batch_start then
        part_start := batch_start;
    end if;
    if part_start >= part_end then
        return;
    end if;
    part_ranges := array(
        select r.piece * pg_catalog.tstzrange(part_start, part_end)
        from pg_catalog.unnest(_tsfleet.batch_pending_ranges(p_batch_id)) as r (piece)
        where r.piece && pg_catalog.tstzrange(part_start, part_end)
    );
    call _tsfleet.refresh_rollup_ranges(part_ranges, true);
    perform _tsfleet.forget_refreshed(
        p_batch_id, pg_catalog.tstzmultirange(pg_catalog.tstzrange(part_start, part_end))
    );
end;
$$;

comment on procedure rollups.refresh_after_load (bigint, integer, integer) is
'refresh_after_load(batch) shared by p_parts connections, each calling it with its own p_part '
'(0 to p_parts - 1) at the same time: on Apache each part refreshes a slice of the batch''s '
'time range (cut at whole hours) and takes it off the queue; on Community part 0 refreshes '
'it all and the others nothing. CALL in autocommit.';

grant execute on procedure rollups.refresh_after_load(bigint, integer, integer) to tsfleet_ingest;
