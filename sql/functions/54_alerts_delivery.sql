-- Outbox delivery for the runner: register a sink, claim due deliveries under a lease (two
-- runners never send the same notification at the same time), record the sink's answer.
-- At-least-once: a delivery is marked delivered only after the sink confirmed it; a failed
-- one is retried with exponential backoff. Notifications of one episode go out in order.
-- Couples with: loader/alerts/runner.py, alerts.evaluate() (advisory lock 7461, 1).

create or replace function alerts.register_sink(sink_name text, sink_kind text)
returns bigint
language sql
set search_path = pg_catalog, pg_temp
as $$
    insert into alerts.sinks as s (sink_name, sink_kind, first_notification_id, enqueued_through)
    select
        register_sink.sink_name,
        register_sink.sink_kind,
        coalesce(max(n.notification_id), 0) + 1,
        coalesce(max(n.notification_id), 0)
    from alerts.notifications as n
    on conflict on constraint sinks_pkey do update
        set sink_kind = excluded.sink_kind, last_seen_at = pg_catalog.now()
    returning s.first_notification_id
$$;

comment on function alerts.register_sink(text, text) is
'Register a notification sink (or touch it); it receives notifications queued from now on. '
'Returns the first notification id it will receive.';

grant execute on function alerts.register_sink(text, text) to tsfleet_ingest;

create or replace function alerts.claim_deliveries(
    sink_name text,
    runner_id text,
    max_count integer default 100,
    lease interval default interval '2 minutes'
)
returns table (
    notification_id bigint,
    episode_id bigint,
    transition text,
    payload jsonb,
    attempts integer
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    watermark bigint;
begin
    -- No evaluation in flight: every notification id up to max() is committed.
    perform pg_catalog.pg_advisory_xact_lock(7461, 1);
    select coalesce(max(n.notification_id), 0) into watermark from alerts.notifications as n;

    insert into alerts.deliveries (notification_id, sink_name)
    select n.notification_id, s.sink_name
    from alerts.sinks as s
    inner join alerts.notifications as n
        on
            n.notification_id > s.enqueued_through
            and n.notification_id >= s.first_notification_id
            and n.notification_id <= watermark
    where s.sink_name = claim_deliveries.sink_name and n.silence_id is null
    on conflict on constraint deliveries_pkey do nothing;

    update alerts.sinks as s
    set enqueued_through = greatest(s.enqueued_through, watermark), last_seen_at = pg_catalog.now()
    where s.sink_name = claim_deliveries.sink_name;

    return query
    with
    due as (
        select d.notification_id
        from alerts.deliveries as d
        inner join alerts.notifications as n on d.notification_id = n.notification_id
        where
            d.sink_name = claim_deliveries.sink_name
            and d.delivered_at is null
            and d.next_attempt_at <= pg_catalog.clock_timestamp()
            -- leased to nobody, an expired lease, or this runner's own (after a reconnect)
            and (
                d.lease_until is null
                or d.lease_until < pg_catalog.clock_timestamp()
                or d.leased_by = claim_deliveries.runner_id
            )
            -- an episode's notifications go out in order: wait for its earlier ones
            and not exists (
                select from alerts.deliveries as earlier
                inner join alerts.notifications as en
                    on earlier.notification_id = en.notification_id
                where
                    earlier.sink_name = d.sink_name
                    and earlier.delivered_at is null
                    and en.episode_id = n.episode_id
                    and earlier.notification_id < d.notification_id
            )
        order by d.notification_id
        limit max_count
        for update of d skip locked
    ),

    leased as (
        update alerts.deliveries as d
        set
            leased_by = claim_deliveries.runner_id,
            lease_until = pg_catalog.clock_timestamp() + claim_deliveries.lease,
            attempts = d.attempts + 1
        from due
        where d.notification_id = due.notification_id and d.sink_name = claim_deliveries.sink_name
        returning d.notification_id, d.attempts
    )

    select
        l.notification_id,
        n.episode_id,
        n.transition,
        n.payload,
        l.attempts
    from leased as l
    inner join alerts.notifications as n on l.notification_id = n.notification_id
    order by l.notification_id;
end;
$$;

comment on function alerts.claim_deliveries(text, text, integer, interval) is
'Queue new notifications for a sink and lease up to max_count due deliveries to one runner '
'(SKIP LOCKED + lease: no other runner sends them meanwhile).';

grant execute on function alerts.claim_deliveries(text, text, integer, interval)
to tsfleet_ingest;

create or replace function alerts.record_delivery(
    sink_name text,
    notification_id bigint,
    runner_id text,
    is_delivered boolean,
    error_message text default null,
    retry_base interval default interval '1 second',
    retry_max interval default interval '5 minutes'
)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
    update alerts.deliveries as d
    set
        delivered_at = case when record_delivery.is_delivered then pg_catalog.clock_timestamp() end,
        last_error = record_delivery.error_message,
        leased_by = null,
        lease_until = null,
        next_attempt_at = case
            when record_delivery.is_delivered then d.next_attempt_at
            else pg_catalog.clock_timestamp() + least(
                record_delivery.retry_base
                * pg_catalog.power(2, least(greatest(d.attempts - 1, 0), 30)),
                record_delivery.retry_max
            )
        end
    where
        d.sink_name = record_delivery.sink_name
        and d.notification_id = record_delivery.notification_id
        and d.delivered_at is null
        -- a success counts whoever holds the lease; a failure only from the lease holder
        and (record_delivery.is_delivered or d.leased_by = record_delivery.runner_id)
    returning true
$$;

comment on function alerts.record_delivery(
    text, bigint, text, boolean, text, interval, interval
) is
'Record a sink''s answer: delivered (after confirmation), or failed with the error and the '
'next attempt after exponential backoff (retry_base x 2^(attempts-1), at most retry_max).';

grant execute on function alerts.record_delivery(
    text, bigint, text, boolean, text, interval, interval
) to tsfleet_ingest;
