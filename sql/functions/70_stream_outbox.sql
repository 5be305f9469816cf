-- Transactional outbox of telemetry.asset.v1 events (stream ingestion, issue 8).
-- Couples with: migration 0090 (ingest.asset_event_outbox), loader/stream/outbox.py (the
-- publisher) and the asset readings written by ingest.process_batch(): it reads the rows of
-- telemetry.asset_readings that carry the batch id, and the metric named 'health_score'.

-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.enqueue_asset_events(
    p_batch_id bigint,
    p_from timestamptz default null,
    p_until timestamptz default null,
    p_subject text default 'telemetry.asset.v1'
)
returns integer
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_from timestamptz := p_from;
    v_until timestamptz := p_until;
    v_health_metric_id integer;
    v_count integer;
begin
    -- Asset readings have no batch index: bound the scan by time (chunk exclusion), from
    -- the caller or from the batch's own time range.
    if v_from is null or v_until is null then
        select b.min_recorded_at, b.max_recorded_at into v_from, v_until
        from ingest.batches as b
        where b.batch_id = p_batch_id;
    end if;
    if v_from is null or v_until is null then
        return 0;
    end if;
    select m.metric_id into v_health_metric_id
    from telemetry.metrics as m
    where m.metric_name = 'health_score';

    with
    batch_rows as (
        select
            ar.recorded_at,
            ar.asset_id,
            ar.source_device_id,
            ar.metric_id,
            ar.value
        from telemetry.asset_readings as ar
        where
            ar.recorded_at >= v_from
            and ar.recorded_at <= v_until
            and ar.batch_id = p_batch_id
    ),

    events as (
        select
            br.asset_id,
            br.source_device_id,
            br.recorded_at,
            jsonb_object_agg(m.metric_name, br.value order by m.metric_name) as metrics,
            max(br.value) filter (where br.metric_id = v_health_metric_id) as health_score
        from batch_rows as br
        inner join telemetry.metrics as m on br.metric_id = m.metric_id
        group by br.asset_id, br.source_device_id, br.recorded_at
    ),

    -- Previous health score: the asset's newest health score recorded before this event's
    -- time (from any batch and source device). For a time-ordered stream this is the
    -- asset's latest_health_score as it was before the batch.
    with_previous as (
        select
            e.*,
            prev.value as previous_health_score
        from events as e
        left join lateral (
            select ar.value
            from telemetry.asset_readings as ar
            where
                ar.asset_id = e.asset_id
                and ar.metric_id = v_health_metric_id
                and ar.recorded_at < e.recorded_at
            order by ar.recorded_at desc
            limit 1
        ) as prev on true
    ),

    final as (
        select
            wp.asset_id,
            wp.source_device_id,
            wp.recorded_at,
            format(
                '%s/%s/%s', a.asset_key, d.device_key,
                to_char(wp.recorded_at at time zone 'UTC', 'YYYYMMDD"T"HH24MISS.US"Z"')
            ) as event_key,
            jsonb_build_object(
                'schema', 'telemetry.asset.v1',
                'eventId', format(
                    '%s/%s/%s', a.asset_key, d.device_key,
                    to_char(wp.recorded_at at time zone 'UTC', 'YYYYMMDD"T"HH24MISS.US"Z"')
                ),
                'organizationId', t.tenant_key,
                'assetId', a.asset_key,
                'assetType', aty.asset_type_key,
                'sourceDeviceId', d.device_key,
                'timestamp',
                to_char(wp.recorded_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"'),
                'metrics', wp.metrics,
                'healthScore', wp.health_score,
                'previousHealthScore', wp.previous_health_score,
                'batchId', p_batch_id
            ) as payload
        from with_previous as wp
        inner join telemetry.assets as a on wp.asset_id = a.asset_id
        inner join telemetry.asset_types as aty on a.asset_type_id = aty.asset_type_id
        inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
        inner join telemetry.devices as d on wp.source_device_id = d.device_id
    )

    insert into ingest.asset_event_outbox (
        event_key, batch_id, asset_id, source_device_id, recorded_at, subject, payload
    )
    select
        f.event_key,
        p_batch_id,
        f.asset_id,
        f.source_device_id,
        f.recorded_at,
        p_subject,
        f.payload
    from final as f
    order by f.recorded_at, f.asset_id, f.source_device_id
    on conflict (event_key) do nothing;
    get diagnostics v_count = row_count;
    return v_count;
end;
$$;

comment on function ingest.enqueue_asset_events(bigint, timestamptz, timestamptz, text) is
'Write one telemetry.asset.v1 event per (asset, source device, time) of a batch''s asset '
'readings into ingest.asset_event_outbox; call it in the batch''s transaction. Returns the count.';
grant execute on function ingest.enqueue_asset_events(
    bigint, timestamptz, timestamptz, text
) to tsfleet_ingest;


-- Unpublished events, oldest first, locked for this transaction: concurrent publishers
-- (several consumers) skip each other's rows instead of publishing them twice.
-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.claim_asset_events(p_limit integer default 1000)
returns table (event_id bigint, event_key text, subject text, payload jsonb)
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    select
        o.event_id,
        o.event_key,
        o.subject,
        o.payload
    from ingest.asset_event_outbox as o
    where o.published_at is null
    order by o.event_id
    limit p_limit
    for update skip locked;
$$;

comment on function ingest.claim_asset_events(integer) is
'Lock and return up to p_limit unpublished outbox events (skip locked); mark them published '
'with ingest.mark_asset_events_published() in the same transaction once NATS acked them.';
grant execute on function ingest.claim_asset_events(integer) to tsfleet_ingest;


-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.mark_asset_events_published(p_event_ids bigint[])
returns integer
language sql
security definer
set search_path = pg_catalog, pg_temp
as $$
    with
    marked as (
        update ingest.asset_event_outbox as o
        set published_at = clock_timestamp()
        where o.event_id = any(p_event_ids) and o.published_at is null
        returning o.event_id
    )

    select count(*)::integer from marked;
$$;

comment on function ingest.mark_asset_events_published(bigint[]) is
'Record that NATS acknowledged these outbox events; returns how many were still pending.';
grant execute on function ingest.mark_asset_events_published(bigint[]) to tsfleet_ingest;


-- The hook into the loaders' batch transaction: when a batch becomes committed (in
-- ingest.commit_batch, right after ingest.process_batch, before the transaction commits) and
-- the session asked for asset events (set tsfleet.asset_events_subject, as the stream
-- consumer does), its events are written to the outbox in that same transaction.
-- Couples with: ingest.commit_batch() (20_ingest.sql), loader/stream/sink.py.
create or replace function _tsfleet.enqueue_asset_events_on_commit()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_subject text := nullif(current_setting('tsfleet.asset_events_subject', true), '');
begin
    if v_subject is not null then
        perform ingest.enqueue_asset_events(
            new.batch_id, new.min_recorded_at, new.max_recorded_at, v_subject
        );
    end if;
    return null;
end;
$$;

comment on function _tsfleet.enqueue_asset_events_on_commit() is
'Trigger: when a batch turns committed and the session set tsfleet.asset_events_subject, '
'write its telemetry.asset.v1 events to the outbox in the same transaction.';
grant execute on function _tsfleet.enqueue_asset_events_on_commit() to tsfleet_ingest;

create or replace trigger batches_enqueue_asset_events_trigger
after update of status on ingest.batches
for each row
when (new.status = 'committed' and old.status is distinct from new.status)
execute function _tsfleet.enqueue_asset_events_on_commit();
