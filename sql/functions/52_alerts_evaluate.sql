-- The alert lifecycle, in SQL. alerts.evaluate(t) compares the conditions holding at t (the
-- alerts.condition_* views, read through _tsfleet.alert_conditions) with the open episodes
-- and records the transitions:
--   new identity            -> pending (firing at once when the rule's `for` is 0)
--   pending, still holding  -> firing once `for` has elapsed since started_at
--   pending, not holding    -> cancelled (never notified)
--   firing, not holding     -> cleared_at set; resolved once keep_firing_for has elapsed
--   firing, holding again   -> stays firing (cleared_at reset): flapping does not resolve
-- Hysteresis lives in the condition views (open alerts hold until clear_threshold).
-- Firing, resolved and repeat transitions are queued in alerts.notifications in the same
-- transaction (the outbox). One evaluation at a time: a transaction-level advisory lock, also
-- taken by alerts.claim_deliveries() so a sink's watermark never skips an uncommitted row.
-- Couples with: alerts.claim_deliveries() (same lock key), alerts.evaluation_time().

create or replace function alerts.evaluate(evaluated_at timestamptz default now())
returns table (
    episode_id bigint,
    rule text,
    transition text,
    labels jsonb,
    value double precision
)
language plpgsql
set search_path = pg_catalog, pg_temp
-- JIT compiles hundreds of expressions of the condition views (~0.4 s) to save microseconds.
set jit = off
as $$
#variable_conflict use_column
begin
    -- 7461 = 'ts', 1 = evaluation; shared with alerts.claim_deliveries().
    perform pg_catalog.pg_advisory_xact_lock(7461, 1);
    perform pg_catalog.set_config(
        'tsfleet.alerts_now',
        pg_catalog.to_char(
            evaluated_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"'
        ),
        true
    );

    if pg_catalog.to_regclass('pg_temp.alert_current') is not null then
        drop table pg_temp.alert_current;
    end if;
    create temporary table alert_current on commit drop as
    select ac.rule_id, ac.identity_hash, ac.labels, ac.value
    from _tsfleet.alert_conditions as ac;

    if pg_catalog.to_regclass('pg_temp.alert_transitions') is not null then
        drop table pg_temp.alert_transitions;
    end if;
    create temporary table alert_transitions (
        episode_id bigint not null,
        transition text not null
    ) on commit drop;

    -- Open episodes whose condition still holds.
    with
    open_holding as (
        select
            e.episode_id,
            e.state as old_state,
            c.value,
            c.labels,
            (e.state = 'pending' and evaluated_at - e.started_at >= r.for_interval)
                as fires_now,
            (
                e.state = 'firing'
                and r.repeat_interval is not null
                and evaluated_at - coalesce(e.last_notified_at, e.fired_at)
                >= r.repeat_interval
                and not exists (
                    select from alerts.acknowledgements as a
                    where a.episode_id = e.episode_id
                )
            ) as repeats_now
        from alerts.episodes as e
        inner join pg_temp.alert_current as c
            on e.rule_id = c.rule_id and e.identity_hash = c.identity_hash
        inner join alerts.rules as r on e.rule_id = r.rule_id
        where e.ended_at is null
        for update of e
    ),

    updated as (
        update alerts.episodes as e
        set
            value = oh.value,
            labels = oh.labels,
            last_held_at = evaluated_at,
            last_evaluated_at = evaluated_at,
            cleared_at = null,
            state = case when oh.fires_now then 'firing' else e.state end,
            fired_at = case when oh.fires_now then evaluated_at else e.fired_at end,
            last_notified_at = case
                when oh.fires_now or oh.repeats_now then evaluated_at
                else e.last_notified_at
            end
        from open_holding as oh
        where e.episode_id = oh.episode_id
        returning e.episode_id, oh.fires_now, oh.repeats_now
    )

    insert into pg_temp.alert_transitions (episode_id, transition)
    select
        u.episode_id,
        case when u.fires_now then 'firing' else 'repeat' end
    from updated as u
    where u.fires_now or u.repeats_now;

    -- Open episodes whose condition no longer holds.
    with
    open_clear as (
        select
            e.episode_id,
            e.state as old_state,
            coalesce(e.cleared_at, evaluated_at) as cleared_since,
            r.keep_firing_for
        from alerts.episodes as e
        inner join alerts.rules as r on e.rule_id = r.rule_id
        where
            e.ended_at is null
            and not exists (
                select from pg_temp.alert_current as c
                where c.rule_id = e.rule_id and c.identity_hash = e.identity_hash
            )
        for update of e
    ),

    decided as (
        select
            oc.episode_id,
            oc.cleared_since,
            case
                when oc.old_state = 'pending' then 'cancelled'
                when evaluated_at - oc.cleared_since >= oc.keep_firing_for then 'resolved'
                else 'firing'
            end as new_state
        from open_clear as oc
    ),

    updated as (
        update alerts.episodes as e
        set
            state = d.new_state,
            cleared_at = d.cleared_since,
            ended_at = case when d.new_state <> 'firing' then evaluated_at end,
            last_evaluated_at = evaluated_at
        from decided as d
        where e.episode_id = d.episode_id
        returning e.episode_id, d.new_state
    )

    insert into pg_temp.alert_transitions (episode_id, transition)
    select u.episode_id, u.new_state
    from updated as u
    where u.new_state in ('cancelled', 'resolved');

    -- New identities.
    with
    inserted as (
        insert into alerts.episodes as e (
            rule_id, identity_hash, labels, state, value, started_at, fired_at,
            last_held_at, last_evaluated_at, last_notified_at
        )
        select
            c.rule_id,
            c.identity_hash,
            c.labels,
            case when r.for_interval = interval '0' then 'firing' else 'pending' end,
            c.value,
            evaluated_at,
            case when r.for_interval = interval '0' then evaluated_at end,
            evaluated_at,
            evaluated_at,
            case when r.for_interval = interval '0' then evaluated_at end
        from pg_temp.alert_current as c
        inner join alerts.rules as r on c.rule_id = r.rule_id
        where not exists (
            select from alerts.episodes as o
            where
                o.rule_id = c.rule_id
                and o.identity_hash = c.identity_hash
                and o.ended_at is null
        )
        on conflict (rule_id, identity_hash) where ended_at is null do nothing
        returning e.episode_id, e.state
    )

    insert into pg_temp.alert_transitions (episode_id, transition)
    select i.episode_id, i.state
    from inserted as i;

    -- The outbox: one notification per firing, resolved (if the rule sends it) and repeat.
    insert into alerts.notifications (
        episode_id, rule_id, transition, payload, silence_id, created_at
    )
    select
        e.episode_id,
        e.rule_id,
        t.transition,
        pg_catalog.jsonb_build_object(
            'status', case when t.transition = 'resolved' then 'resolved' else 'firing' end,
            'transition', t.transition,
            'episode_id', e.episode_id,
            'labels', lb.labels,
            'annotations', _tsfleet.alert_render(r.annotations, lb.labels, e.value),
            'value', e.value,
            'startsAt', e.fired_at,
            'endsAt', case when t.transition = 'resolved' then e.ended_at end,
            'evaluatedAt', evaluated_at
        ),
        alerts.matching_silence(lb.labels, evaluated_at),
        evaluated_at
    from pg_temp.alert_transitions as t
    inner join alerts.episodes as e on t.episode_id = e.episode_id
    inner join alerts.rules as r on e.rule_id = r.rule_id
    cross join lateral (
        select r.labels || e.labels || pg_catalog.jsonb_build_object('alertname', r.rule_key)
            as labels
    ) as lb
    where
        t.transition in ('firing', 'repeat')
        or (t.transition = 'resolved' and r.send_resolved)
    order by e.episode_id, t.transition;

    perform pg_catalog.set_config('tsfleet.alerts_now', '', true);

    return query
    select
        e.episode_id,
        r.rule_key,
        t.transition,
        e.labels,
        e.value
    from pg_temp.alert_transitions as t
    inner join alerts.episodes as e on t.episode_id = e.episode_id
    inner join alerts.rules as r on e.rule_id = r.rule_id
    order by e.episode_id;
end;
$$;

comment on function alerts.evaluate(timestamptz) is
'Evaluate every alert condition at the given time, record lifecycle transitions in '
'alerts.episodes and queue notifications; returns the transitions (pending, firing, repeat, '
'resolved, cancelled).';

grant execute on function alerts.evaluate(timestamptz) to tsfleet_ingest;
