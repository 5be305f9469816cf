-- The rollup refresh queue (_tsfleet.rollup_refresh_queue, migration 0043): what a committed
-- batch still owes the rollups. ingest.commit_batch queues, in the batch's own transaction,
-- the time ranges of the hour buckets that received its readings; whoever refreshes takes
-- them off (rollups.refresh_after_load for its batch, rollups.refresh_queued for everything:
-- the loader after its files, the stream consumer, `tsfleet refresh` and the alert runner
-- through rollups.refresh). A load killed after a commit therefore leaves its ranges queued,
-- not forgotten, and the next drain refreshes them.
-- Couples with: 40_rollups_refresh.sql (the drains), ingest.commit_batch (20_ingest.sql).

-- Ranges to refresh, few and close to the data: pieces nearer than p_min_gap (the widest
-- bucket) are joined, since refreshing an empty stretch costs less than another refresh
-- call per rollup, and at most p_max_ranges remain (the widest gaps are kept apart).
create or replace function _tsfleet.coalesce_refresh_ranges(
    p_ranges tstzmultirange,
    p_min_gap interval default interval '1 day',
    p_max_ranges integer default 8
)
returns setof tstzrange
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
    with
    pieces as (
        select
            pg_catalog.lower(p.piece) as piece_start,
            pg_catalog.upper(p.piece) as piece_end,
            pg_catalog.lower(p.piece) - pg_catalog.lag(pg_catalog.upper(p.piece)) over (
                order by pg_catalog.lower(p.piece)
            ) as gap
        from pg_catalog.unnest(p_ranges) as p (piece)
    ),

    ranked as (
        select
            pc.piece_start,
            pc.piece_end,
            pc.gap,
            pg_catalog.rank() over (order by pc.gap desc nulls last, pc.piece_start) as gap_rank
        from pieces as pc
    ),

    islands as (
        select
            r.piece_start,
            r.piece_end,
            pg_catalog.count(*) filter (
                where r.gap >= p_min_gap and r.gap_rank < p_max_ranges
            ) over (order by r.piece_start) as island
        from ranked as r
    )

    select pg_catalog.tstzrange(pg_catalog.min(i.piece_start), pg_catalog.max(i.piece_end))
    from islands as i
    group by i.island
    order by 1;
$$;

comment on function _tsfleet.coalesce_refresh_ranges(tstzmultirange, interval, integer) is
'Joins time ranges to refresh that lie closer than p_min_gap, then keeps at most p_max_ranges '
'(joining across the narrowest gaps).';

grant execute on function _tsfleet.coalesce_refresh_ranges(tstzmultirange, interval, integer)
to tsfleet_ingest;

-- The hour buckets (the finest rollup bucket) that hold readings of the batch, as few ranges:
-- a sparse year refreshes where its readings are, not every bucket between its first and
-- last reading. Finding them reads the rows in the batch's time range (there is no index on
-- batch_id), so that is done only when it can pay and stays cheap:
-- * sparse: fewer rows than hour buckets in its span (else nearly every bucket holds some:
--   a dense day of 1,000,000 readings took 1.2 s to scan for its 24 hours), and
-- * the chunks in its span hold few other rows (their statistics say so; a chunk written in
--   this transaction has none yet): a late sparse batch over a long dense history would
--   otherwise read that whole history.
-- Otherwise the batch's whole span, in whole buckets.
create or replace function _tsfleet.batch_refresh_ranges(p_batch_id bigint)
returns setof tstzrange
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    batch record;
    finest interval;
    widest interval;
    other_rows double precision;
    touched tstzmultirange;
begin
    select pg_catalog.min(rd.bucket_width), pg_catalog.max(rd.bucket_width)
    into finest, widest
    from _tsfleet.rollup_definitions as rd;
    select b.min_recorded_at, b.max_recorded_at, b.rows_inserted
    into batch
    from ingest.batches as b
    where b.batch_id = p_batch_id;
    if batch.min_recorded_at is null or batch.max_recorded_at is null or finest is null then
        return;
    end if;
    touched := pg_catalog.tstzmultirange(pg_catalog.tstzrange(
        public.time_bucket(finest, batch.min_recorded_at),
        public.time_bucket(finest, batch.max_recorded_at) + finest
    ));
    if batch.rows_inserted < extract(epoch from batch.max_recorded_at - batch.min_recorded_at)
        / extract(epoch from finest) then
        select coalesce(pg_catalog.sum(greatest(c.reltuples, 0)), 0)
        into other_rows
        from timescaledb_information.chunks as ch
        inner join pg_catalog.pg_class as c
            on c.oid = pg_catalog.format('%I.%I', ch.chunk_schema, ch.chunk_name)::regclass
        where
            ch.hypertable_schema = 'telemetry'
            and ch.hypertable_name = 'readings'
            and ch.range_start <= batch.max_recorded_at
            and ch.range_end > batch.min_recorded_at;
        if other_rows <= 100 * batch.rows_inserted + 100000 then
            select pg_catalog.range_agg(pg_catalog.tstzrange(h.bucket_start, h.bucket_start + finest))
            into touched
            from (
                select distinct public.time_bucket(finest, r.recorded_at) as bucket_start
                from telemetry.readings as r
                where
                    r.batch_id = p_batch_id
                    and r.recorded_at >= batch.min_recorded_at
                    and r.recorded_at <= batch.max_recorded_at
            ) as h;
        end if;
    end if;
    return query
    select c.refresh_range
    from _tsfleet.coalesce_refresh_ranges(touched, widest) as c (refresh_range);
end;
$$;

comment on function _tsfleet.batch_refresh_ranges(bigint) is
'Time ranges covering the hour buckets that hold readings of the batch (a sparse batch) or its '
'whole span (a dense one), joined across gaps shorter than a day, at most 8: what its rollups '
'need refreshed.';

grant execute on function _tsfleet.batch_refresh_ranges(bigint) to tsfleet_ingest;

-- Called by ingest.commit_batch, in the batch's transaction: the ranges are queued if and only
-- if the batch commits. Ranges inside every rollup's refresh policy window (Community, live
-- data) are not queued: the policies refresh them.
create or replace function _tsfleet.queue_rollup_refresh(p_batch_id bigint)
returns integer
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    queued integer;
begin
    insert into _tsfleet.rollup_refresh_queue (range_start, range_end, batch_id)
    select pg_catalog.lower(br.refresh_range), pg_catalog.upper(br.refresh_range), p_batch_id
    from _tsfleet.batch_refresh_ranges(p_batch_id) as br (refresh_range)
    where exists (
        select
        from _tsfleet.rollup_refresh_windows(
            pg_catalog.lower(br.refresh_range), pg_catalog.upper(br.refresh_range), true
        )
    )
    order by 1;
    get diagnostics queued = row_count;
    return queued;
end;
$$;

comment on function _tsfleet.queue_rollup_refresh(bigint) is
'Queues the rollup refresh a batch needs (its touched hour buckets, outside the refresh '
'policies'' window) in the current transaction; returns the ranges queued.';

grant execute on function _tsfleet.queue_rollup_refresh(bigint) to tsfleet_ingest;

-- After a refresh of p_done for a batch: the batch's queued ranges lose what was refreshed
-- (a part of a shared refresh leaves the other parts' ranges queued until they finish).
create or replace function _tsfleet.forget_refreshed(p_batch_id bigint, p_done tstzmultirange)
returns void
language sql
set search_path = pg_catalog, pg_temp
as $$
    with
    taken as (
        delete from _tsfleet.rollup_refresh_queue as q
        where q.batch_id = p_batch_id
        returning q.range_start, q.range_end
    ),

    remaining as (
        select
            pg_catalog.unnest(
                pg_catalog.range_agg(pg_catalog.tstzrange(t.range_start, t.range_end)) - p_done
            ) as left_over
        from taken as t
    )

    insert into _tsfleet.rollup_refresh_queue (range_start, range_end, batch_id)
    select pg_catalog.lower(r.left_over), pg_catalog.upper(r.left_over), p_batch_id
    from remaining as r;
$$;

comment on function _tsfleet.forget_refreshed(bigint, tstzmultirange) is
'Takes the refreshed ranges p_done off a batch''s queued rollup refresh, keeping the rest.';
