-- Outbox delivery for the runner: register a sink, claim due deliveries under a lease with a
-- token, renew the lease while sending, record the sink's answer fenced by that token (two
-- runners never send the same notification, and a runner whose lease was taken over cannot
-- record over the new holder).
-- At-least-once: a delivery is marked delivered only after the sink confirmed it. A retryable
-- failure (408, 429, 5xx, timeout, no connection) is retried with jittered exponential
-- backoff until max_age, then dead-lettered; a permanent one (other 4xx) is dead-lettered at
-- once. An episode's notifications go out in order, but only an earlier one being sent right
-- now holds a later one back: a retrying or dead notification never does, and once a later
-- notification of the episode reached the sink, the earlier ones left are superseded.
-- Couples with: loader/alerts/runner.py and sinks.py (outcome classes),
-- alerts.delivery_status, alerts.evaluate() (advisory lock 7461, 1).

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
    attempts integer,
    lease_token uuid
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
#variable_conflict use_column
declare
    watermark bigint;
    token uuid := pg_catalog.gen_random_uuid();
begin
    -- No evaluation in flight: every notification id up to max() is committed. Claims are
    -- serialized by the same lock, so each sees the leases the previous one committed.
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
            and d.dead_at is null
            and d.superseded_at is null
            and d.next_attempt_at <= pg_catalog.clock_timestamp()
            -- leased to nobody, an expired lease, or this runner's own (after a reconnect)
            and (
                d.lease_until is null
                or d.lease_until < pg_catalog.clock_timestamp()
                or d.leased_by = claim_deliveries.runner_id
            )
            -- in order within an episode: wait only for an earlier one being sent now
            and not exists (
                select from alerts.deliveries as earlier
                inner join alerts.notifications as en
                    on earlier.notification_id = en.notification_id
                where
                    earlier.sink_name = d.sink_name
                    and en.episode_id = n.episode_id
                    and earlier.notification_id < d.notification_id
                    and earlier.delivered_at is null
                    and earlier.dead_at is null
                    and earlier.superseded_at is null
                    and earlier.lease_until >= pg_catalog.clock_timestamp()
                    and earlier.leased_by <> claim_deliveries.runner_id
            )
        order by d.notification_id
        limit max_count
        for update of d skip locked
    ),

    leased as (
        update alerts.deliveries as d
        set
            leased_by = claim_deliveries.runner_id,
            lease_token = token,
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
        l.attempts,
        token
    from leased as l
    inner join alerts.notifications as n on l.notification_id = n.notification_id
    order by l.notification_id;
end;
$$;

comment on function alerts.claim_deliveries(text, text, integer, interval) is
'Queue new notifications for a sink and lease up to max_count due deliveries to one runner '
'under a new lease token (SKIP LOCKED + lease: no other runner sends them meanwhile).';

grant execute on function alerts.claim_deliveries(text, text, integer, interval)
to tsfleet_ingest;

create or replace function alerts.renew_deliveries(
    sink_name text,
    lease_token uuid,
    lease interval
)
returns setof bigint
language sql
set search_path = pg_catalog, pg_temp
as $$
    update alerts.deliveries as d
    set lease_until = pg_catalog.clock_timestamp() + renew_deliveries.lease
    where
        d.sink_name = renew_deliveries.sink_name
        and d.lease_token = renew_deliveries.lease_token
        and d.delivered_at is null
        and d.dead_at is null
        and d.superseded_at is null
    returning d.notification_id
$$;

comment on function alerts.renew_deliveries(text, uuid, interval) is
'Extend the lease of a claim''s deliveries that have no outcome yet; returns the notification '
'ids the claim still holds (one taken over by another runner is not among them).';

grant execute on function alerts.renew_deliveries(text, uuid, interval) to tsfleet_ingest;

create or replace function alerts.record_delivery(
    sink_name text,
    notification_id bigint,
    lease_token uuid,
    outcome text,
    http_status integer default null,
    error_message text default null,
    response_excerpt text default null,
    retry_base interval default interval '1 second',
    retry_max interval default interval '5 minutes',
    max_age interval default interval '1 hour'
)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    new_state text;
    found_episode bigint;
begin
    if outcome not in ('delivered', 'retry', 'permanent') then
        raise exception 'tsfleet: delivery outcome % is not delivered, retry or permanent',
            outcome;
    end if;
    update alerts.deliveries as d
    set
        delivered_at = case
            when record_delivery.outcome = 'delivered' then pg_catalog.clock_timestamp()
        end,
        dead_at = case
            when
                record_delivery.outcome = 'permanent'
                or (
                    record_delivery.outcome = 'retry'
                    and pg_catalog.clock_timestamp() - d.created_at >= record_delivery.max_age
                )
                then pg_catalog.clock_timestamp()
        end,
        dead_reason = case
            when record_delivery.outcome = 'permanent' then 'permanent'
            when
                record_delivery.outcome = 'retry'
                and pg_catalog.clock_timestamp() - d.created_at >= record_delivery.max_age
                then 'max_age'
        end,
        last_status = record_delivery.http_status,
        last_error = record_delivery.error_message,
        last_response = pg_catalog.left(record_delivery.response_excerpt, 500),
        leased_by = null,
        lease_until = null,
        lease_token = null,
        -- Equal jitter: half the exponential delay, plus up to as much again at random, so
        -- the deliveries that failed together do not all come back at the same moment.
        next_attempt_at = case
            when record_delivery.outcome <> 'retry' then d.next_attempt_at
            else pg_catalog.clock_timestamp() + least(
                record_delivery.retry_base
                * pg_catalog.power(2, least(greatest(d.attempts - 1, 0), 30)),
                record_delivery.retry_max
            ) * (0.5 + 0.5 * pg_catalog.random())
        end
    from alerts.notifications as n
    where
        d.sink_name = record_delivery.sink_name
        and d.notification_id = record_delivery.notification_id
        and n.notification_id = d.notification_id
        and d.delivered_at is null
        and d.dead_at is null
        and d.superseded_at is null
        -- fencing: only the claim that holds the delivery records its outcome
        and d.lease_token = record_delivery.lease_token
    returning
        case
            when d.delivered_at is not null then 'delivered'
            when d.dead_at is not null then 'dead'
            else 'retrying'
        end,
        n.episode_id
    into new_state, found_episode;

    if new_state = 'delivered' then
        -- Earlier notifications of the episode still waiting for this sink are stale now
        -- (a firing after its resolution would re-open the alert at the receiver).
        update alerts.deliveries as d
        set superseded_at = pg_catalog.clock_timestamp(), lease_until = null, leased_by = null,
            lease_token = null
        from alerts.notifications as n
        where
            d.sink_name = record_delivery.sink_name
            and d.notification_id = n.notification_id
            and n.episode_id = found_episode
            and d.notification_id < record_delivery.notification_id
            and d.delivered_at is null
            and d.dead_at is null
            and d.superseded_at is null
            and (d.lease_until is null or d.lease_until < pg_catalog.clock_timestamp());
    end if;
    return new_state;
end;
$$;

comment on function alerts.record_delivery(
    text, bigint, uuid, text, integer, text, text, interval, interval, interval
) is
'Record a sink''s answer for a claim (fenced by its lease token; NULL when the claim no longer '
'holds the delivery): delivered; retry after jittered exponential backoff '
'(retry_base x 2^(attempts-1), at most retry_max, x 0.5-1), dead once older than max_age; '
'permanent: dead at once. Returns delivered, retrying or dead.';

grant execute on function alerts.record_delivery(
    text, bigint, uuid, text, integer, text, text, interval, interval, interval
) to tsfleet_ingest;
