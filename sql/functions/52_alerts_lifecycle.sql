-- The alert lifecycle as one pure step: given an identity's open state and whether its
-- condition holds at time `at`, the next state. alerts.evaluate() applies it to every
-- identity once per evaluation; alerts.backtest() folds it over the steps of a range. Both
-- therefore agree by construction.
--   no episode, condition fires   -> pending (firing at once when `for` is 0)
--   pending, holds                -> firing once `for` has elapsed since started_at
--   pending, does not hold        -> cancelled (never notified)
--   firing, does not hold         -> cleared_at set; resolved once keep_firing_for has elapsed
--   firing, holds again           -> stays firing (cleared_at reset): flapping does not resolve
-- "Holds" for an open episode is "fires or holds under the clear threshold" (hysteresis); the
-- callers decide it from the signals.
-- plpgsql, not sql: backtests call it once per step from a loop, where a plpgsql call is a
-- fast expression (about 20 us) and a SQL-language one is planned each time (about 1 ms).
create or replace function _tsfleet.alert_next(
    p_state text,
    p_started_at timestamptz,
    p_fired_at timestamptz,
    p_cleared_at timestamptz,
    p_held boolean,
    p_at timestamptz,
    p_for interval,
    p_keep_firing_for interval,
    out state text,
    out started_at timestamptz,
    out fired_at timestamptz,
    out cleared_at timestamptz,
    out ended_at timestamptz,
    out transition text
)
language plpgsql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
    state := case
        when p_state is null then
            case
                when not p_held then null
                when p_for = interval '0' then 'firing'
                else 'pending'
            end
        when p_state = 'pending' then
            case
                when not p_held then 'cancelled'
                when p_at - p_started_at >= p_for then 'firing'
                else 'pending'
            end
        when p_held then 'firing'
        when p_at - coalesce(p_cleared_at, p_at) >= p_keep_firing_for then 'resolved'
        else 'firing'
    end;
    started_at := case when p_state is null then p_at else p_started_at end;
    fired_at := case
        when state = 'firing' and p_fired_at is null then p_at else p_fired_at
    end;
    cleared_at := case
        when p_state = 'firing' and not p_held then coalesce(p_cleared_at, p_at)
    end;
    ended_at := case when state in ('cancelled', 'resolved') then p_at end;
    transition := case
        when state is distinct from p_state and state is not null then state
    end;
end;
$$;

comment on function _tsfleet.alert_next(
    text, timestamptz, timestamptz, timestamptz, boolean, timestamptz, interval, interval
) is
'One lifecycle step of an alert identity: its state (null: no open episode), whether the '
'condition holds at p_at, the rule''s for and keep_firing_for; returns the next state, its '
'times and the transition (null when none).';

grant execute on function _tsfleet.alert_next(
    text, timestamptz, timestamptz, timestamptz, boolean, timestamptz, interval, interval
) to tsfleet_ingest;
