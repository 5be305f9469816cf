-- Backtest: replay one rule over a past range without touching live state (no episodes,
-- notifications, outbox rows or rule_evaluations written) and return the episodes it would
-- have produced. Same semantics as stepping alerts.evaluate() at p_from, p_from + p_step, ...:
-- the same signals (_tsfleet.alert_signals, computed for all steps at once) and the same
-- lifecycle step (_tsfleet.alert_next), folded per identity. Steps where the condition does
-- not hold are visited only where they change something (the first one after a held step,
-- and the one where keep_firing_for has elapsed), which is what stepping would find there.
-- Couples with: alerts.evaluate(), loader/commands/alerts.py (backtest), docs/alerts.md.
create or replace function alerts.backtest(
    p_rule_key text,
    p_from timestamptz,
    p_to timestamptz,
    p_step interval default interval '1 minute',
    p_device_key text default null
)
returns table (
    rule text,
    labels jsonb,
    started_at timestamptz,
    fired_at timestamptz,
    resolved_at timestamptz,
    peak_value double precision
)
language plpgsql
set search_path = pg_catalog, pg_temp
set jit = off
as $$
#variable_conflict use_column
declare
    target alerts.rules;
    last_step_at timestamptz;
    signal record;
    current_identity text;
    last_seen timestamptz;
    gap_at timestamptz;
    episode_labels jsonb;
    peak double precision;
    nxt record;
    st text;
    st_started timestamptz;
    st_fired timestamptz;
    st_cleared timestamptz;
begin
    select r.* into target from alerts.rules as r where r.rule_key = p_rule_key;
    if not found then
        raise exception 'no alert rule %', p_rule_key
        using errcode = '22023', hint = 'List the rules with: tsfleet alerts rules';
    end if;
    if p_step <= interval '0' then
        raise exception 'the step must be positive, not %', p_step using errcode = '22023';
    end if;
    if p_to < p_from then
        raise exception 'the range ends (%) before it starts (%)', p_to, p_from
        using errcode = '22023';
    end if;
    if extract(epoch from p_to - p_from) / extract(epoch from p_step) > 2000000 then
        raise exception 'the range holds more than 2,000,000 steps of %', p_step
        using errcode = '22023', hint = 'Choose a larger step or a shorter range.';
    end if;
    last_step_at := p_from
    + floor(extract(epoch from p_to - p_from) / extract(epoch from p_step)) * p_step;

    create temporary table if not exists backtest_signals (
        identity_hash text,
        labels jsonb,
        step_at timestamptz,
        fires boolean,
        holds boolean,
        value double precision,
        is_low boolean
    ) on commit drop;
    truncate pg_temp.backtest_signals;
    insert into pg_temp.backtest_signals
    select
        alerts.identity_hash(target.rule_key, s.subject, s.metric, target.severity, s.tenant),
        pg_catalog.jsonb_build_object(
            'rule', target.rule_key, s.subject_label, s.subject, 'metric', s.metric,
            'severity', target.severity, 'tenant', s.tenant
        ),
        s.step_at,
        s.fires,
        s.holds,
        s.value,
        s.is_low
    from _tsfleet.alert_signals(
        array[target.rule_id], p_from, p_to, p_step, null, p_device_key
    ) as s;

    create temporary table if not exists backtest_episodes (
        labels jsonb,
        started_at timestamptz,
        fired_at timestamptz,
        resolved_at timestamptz,
        peak_value double precision
    ) on commit drop;
    truncate pg_temp.backtest_episodes;

    -- One pass over the held steps, identity by identity, in time order. A sentinel row
    -- after the last one closes the final identity.
    for signal in
        select b.* from pg_temp.backtest_signals as b
        union all
        select null, null, null, null, null, null, null
        order by 1 nulls last, 3
    loop
        if signal.identity_hash is distinct from current_identity then
            -- Close the previous identity: the steps after its last held one hold nothing.
            if st is not null then
                gap_at := last_seen + p_step;
                for i in 1..2 loop
                    exit when st is null or st not in ('pending', 'firing')
                        or gap_at > last_step_at;
                    nxt := _tsfleet.alert_next(
                        st, st_started, st_fired, st_cleared, false, gap_at,
                        target.for_interval, target.keep_firing_for
                    );
                    st := nxt.state; st_started := nxt.started_at;
                    st_fired := nxt.fired_at; st_cleared := nxt.cleared_at;
                    if st = 'resolved' then
                        insert into pg_temp.backtest_episodes
                        values (episode_labels, st_started, st_fired, nxt.ended_at, peak);
                    end if;
                    gap_at := st_cleared + pg_catalog.ceil(
                        extract(epoch from target.keep_firing_for) / extract(epoch from p_step)
                    ) * p_step;
                end loop;
                if st = 'firing' then
                    insert into pg_temp.backtest_episodes
                    values (episode_labels, st_started, st_fired, null, peak);
                end if;
            end if;
            exit when signal.identity_hash is null;
            current_identity := signal.identity_hash;
            st := null; st_started := null; st_fired := null; st_cleared := null;
            last_seen := null;
        end if;

        -- The steps between the previous held step and this one hold nothing.
        if st is not null and signal.step_at > last_seen + p_step then
            gap_at := last_seen + p_step;
            for i in 1..2 loop
                exit when st is null or st not in ('pending', 'firing')
                    or gap_at >= signal.step_at;
                nxt := _tsfleet.alert_next(
                    st, st_started, st_fired, st_cleared, false, gap_at,
                    target.for_interval, target.keep_firing_for
                );
                st := nxt.state; st_started := nxt.started_at;
                st_fired := nxt.fired_at; st_cleared := nxt.cleared_at;
                if st = 'resolved' then
                    insert into pg_temp.backtest_episodes
                    values (episode_labels, st_started, st_fired, nxt.ended_at, peak);
                end if;
                gap_at := st_cleared + pg_catalog.ceil(
                    extract(epoch from target.keep_firing_for) / extract(epoch from p_step)
                ) * p_step;
            end loop;
            if st in ('cancelled', 'resolved') then
                st := null; st_started := null; st_fired := null; st_cleared := null;
            end if;
        end if;

        -- This step: an open episode holds on fires or holds; a new one needs fires.
        if st is null and not signal.fires then
            last_seen := signal.step_at;
            continue;
        end if;
        if st is null then
            episode_labels := signal.labels;
            peak := signal.value;
        elsif signal.is_low then
            peak := least(peak, signal.value);
        else
            peak := greatest(peak, signal.value);
        end if;
        nxt := _tsfleet.alert_next(
            st, st_started, st_fired, st_cleared, true, signal.step_at,
            target.for_interval, target.keep_firing_for
        );
        st := nxt.state; st_started := nxt.started_at;
        st_fired := nxt.fired_at; st_cleared := nxt.cleared_at;
        last_seen := signal.step_at;
    end loop;

    return query
    select target.rule_key, e.labels, e.started_at, e.fired_at, e.resolved_at, e.peak_value
    from pg_temp.backtest_episodes as e
    where e.fired_at is not null
    order by e.fired_at, e.labels::text;
end;
$$;

comment on function alerts.backtest(text, timestamptz, timestamptz, interval, text) is
'Replay one rule (enabled or not) at every step from p_from to p_to, optionally for one '
'device, without touching live state; returns the episodes that would have fired, with '
'their fired, resolved (null: still firing at p_to) times and peak value.';

grant execute on function alerts.backtest(text, timestamptz, timestamptz, interval, text)
to tsfleet_ingest, tsfleet_analyst;
