-- The alert lifecycle, in SQL. alerts.evaluate(t) reads every enabled rule's signals at t
-- (_tsfleet.alert_signals: the readings with recorded_at <= t, those since the rule's previous
-- evaluation included, so a spike between two evaluations is seen), applies one lifecycle
-- step (_tsfleet.alert_next) to each alert identity and records the transitions in
-- alerts.episodes. Firing, resolved and repeat transitions are queued in alerts.notifications
-- in the same transaction (the outbox). Live state only moves forward: a t earlier than a
-- rule's previous evaluation is refused (alerts.backtest replays the past without state).
-- One evaluation at a time: a transaction-level advisory lock, also taken by
-- alerts.claim_deliveries() so a sink's watermark never skips an uncommitted row.
-- Couples with: alerts.claim_deliveries() (same lock key), alerts.evaluation_time(),
-- alerts.backtest() (same signals and step).

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
-- JIT compiles hundreds of expressions of the condition queries (~0.4 s) to save microseconds.
set jit = off
as $$
#variable_conflict use_column
declare
    ahead record;
begin
    -- 7461 = 'ts', 1 = evaluation; shared with alerts.claim_deliveries().
    perform pg_catalog.pg_advisory_xact_lock(7461, 1);

    select r.rule_key, re.last_evaluated_at into ahead
    from alerts.rule_evaluations as re
    inner join alerts.rules as r on re.rule_id = r.rule_id
    where re.last_evaluated_at > evaluated_at
    order by re.last_evaluated_at desc
    limit 1;
    if found then
        raise exception
            'cannot evaluate alerts at %: rule % was already evaluated at %',
            evaluated_at, ahead.rule_key, ahead.last_evaluated_at
        using
            errcode = '22023',
            hint = 'Live alert state only moves forward. Replay the past with '
            || 'alerts.backtest() (tsfleet alerts backtest) instead.';
    end if;

    perform pg_catalog.set_config(
        'tsfleet.alerts_now', _tsfleet.alert_clock(evaluated_at), true
    );

    if pg_catalog.to_regclass('pg_temp.alert_current') is not null then
        drop table pg_temp.alert_current;
    end if;
    -- Signals of the enabled rules, each rule's window starting at its previous evaluation.
    create temporary table alert_current on commit drop as
    with
    windows as (
        select
            re.last_evaluated_at as since,
            array_agg(r.rule_id) as rule_ids
        from alerts.rules as r
        left join alerts.rule_evaluations as re on r.rule_id = re.rule_id
        where r.is_enabled
        group by re.last_evaluated_at
    )

    select
        s.rule_id,
        alerts.identity_hash(r.rule_key, s.subject, s.metric, r.severity, s.tenant)
            as identity_hash,
        pg_catalog.jsonb_build_object(
            'rule', r.rule_key, s.subject_label, s.subject, 'metric', s.metric,
            'severity', r.severity, 'tenant', s.tenant
        ) as labels,
        s.fires,
        s.holds,
        s.value,
        s.is_low
    from windows as w
    cross join lateral _tsfleet.alert_signals(
        w.rule_ids, evaluated_at, evaluated_at, interval '1 minute', w.since
    ) as s
    inner join alerts.rules as r on s.rule_id = r.rule_id;

    -- Open episodes are changed by this evaluation only.
    perform from alerts.episodes as e where e.ended_at is null for update;

    if pg_catalog.to_regclass('pg_temp.alert_decided') is not null then
        drop table pg_temp.alert_decided;
    end if;
    create temporary table alert_decided on commit drop as
    with
    open_episodes as (
        select e.*
        from alerts.episodes as e
        where e.ended_at is null
    ),

    joined as (
        select
            coalesce(e.rule_id, c.rule_id) as rule_id,
            coalesce(e.identity_hash, c.identity_hash) as identity_hash,
            e.episode_id,
            e.state,
            e.started_at,
            e.fired_at,
            e.cleared_at,
            e.last_notified_at,
            e.peak_value,
            coalesce(c.labels, e.labels) as labels,
            c.value,
            c.is_low,
            case
                when e.episode_id is null then coalesce(c.fires, false)
                else coalesce(c.fires or c.holds, false)
            end as held
        from open_episodes as e
        full join pg_temp.alert_current as c
            on e.rule_id = c.rule_id and e.identity_hash = c.identity_hash
        where e.episode_id is not null or c.fires
    )

    select
        j.*,
        n.state as next_state,
        n.started_at as next_started_at,
        n.fired_at as next_fired_at,
        n.cleared_at as next_cleared_at,
        n.ended_at as next_ended_at,
        case
            when n.transition is not null then n.transition
            when
                j.held
                and j.state = 'firing'
                and r.repeat_interval is not null
                and evaluated_at - coalesce(j.last_notified_at, j.fired_at)
                >= r.repeat_interval
                and not exists (
                    select from alerts.acknowledgements as a
                    where a.episode_id = j.episode_id
                )
                then 'repeat'
        end as transition
    from joined as j
    inner join alerts.rules as r on j.rule_id = r.rule_id
    cross join lateral _tsfleet.alert_next(
        j.state, j.started_at, j.fired_at, j.cleared_at, j.held, evaluated_at,
        r.for_interval, r.keep_firing_for
    ) as n;

    if pg_catalog.to_regclass('pg_temp.alert_transitions') is not null then
        drop table pg_temp.alert_transitions;
    end if;
    create temporary table alert_transitions (
        episode_id bigint not null,
        transition text not null
    ) on commit drop;

    with
    updated as (
        update alerts.episodes as e
        set
            state = d.next_state,
            fired_at = d.next_fired_at,
            cleared_at = d.next_cleared_at,
            ended_at = d.next_ended_at,
            last_evaluated_at = evaluated_at,
            value = case when d.held then d.value else e.value end,
            labels = d.labels,
            last_held_at = case when d.held then evaluated_at else e.last_held_at end,
            peak_value = case
                when not d.held then e.peak_value
                when d.is_low then least(e.peak_value, d.value)
                else greatest(e.peak_value, d.value)
            end,
            last_notified_at = case
                when d.transition in ('firing', 'repeat') then evaluated_at
                else e.last_notified_at
            end
        from pg_temp.alert_decided as d
        where e.episode_id = d.episode_id
        returning e.episode_id, d.transition
    ),

    inserted as (
        insert into alerts.episodes as e (
            rule_id, identity_hash, labels, state, value, peak_value, started_at, fired_at,
            last_held_at, last_evaluated_at, last_notified_at
        )
        select
            d.rule_id,
            d.identity_hash,
            d.labels,
            d.next_state,
            d.value,
            d.value,
            d.next_started_at,
            d.next_fired_at,
            evaluated_at,
            evaluated_at,
            case when d.next_state = 'firing' then evaluated_at end
        from pg_temp.alert_decided as d
        where d.episode_id is null and d.next_state is not null
        order by d.rule_id, d.identity_hash
        returning e.episode_id, e.state as transition
    )

    insert into pg_temp.alert_transitions (episode_id, transition)
    select u.episode_id, u.transition from updated as u where u.transition is not null
    union all
    select i.episode_id, i.transition from inserted as i;

    insert into alerts.rule_evaluations as re (rule_id, last_evaluated_at)
    select r.rule_id, evaluated_at
    from alerts.rules as r
    where r.is_enabled
    on conflict (rule_id) do update set last_evaluated_at = excluded.last_evaluated_at;

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
        (
            select s.silence_id
            from alerts.silences as s
            where
                s.starts_at <= evaluated_at
                and s.ends_at > evaluated_at
                and lb.labels @> s.matchers
            order by s.ends_at desc
            limit 1
        ),
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
'Evaluate every enabled rule at the given time (never earlier than a rule''s previous '
'evaluation) on the readings up to it, record lifecycle transitions in alerts.episodes and '
'queue notifications; returns the transitions (pending, firing, repeat, resolved, '
'cancelled).';

grant execute on function alerts.evaluate(timestamptz) to tsfleet_ingest;
