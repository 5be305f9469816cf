-- Alert signals: what each condition says at each evaluation step, from the readings
-- themselves. One implementation serves live evaluation (alerts.evaluate: one step, the
-- window since the rule's previous evaluation) and replay (alerts.backtest: every step of a
-- range at once, set-based).
--
-- Steps are p_from, p_from + p_step, ... up to p_to. Step k sees exactly the readings with
-- recorded_at <= its time, never later ones:
--   - its window: the readings in (step k-1, step k]; for the first step, (p_since, p_from],
--     or nothing when p_since is null (a first evaluation sees only the newest value);
--   - the newest reading at or before the step (within the rule's lookback), which carries a
--     value forward across steps without readings.
-- A row per (rule, subject, metric, step) where the condition is breached:
--   fires: the firing threshold is crossed (a new alert starts);
--   holds: the clear threshold is crossed (an open alert stays open: hysteresis);
--   value: the worst value of the step (the lowest for below-threshold conditions);
--   is_low: lower is worse (how an episode's peak is kept).
-- The rules' scope (_tsfleet.alert_rule_devices) is resolved at alerts.evaluation_time(),
-- which the callers set.
-- Couples with: alerts.evaluate(), alerts.backtest(), the alerts.condition_* views,
-- migration 0068 (the per-series index these probes use), docs/alerts.md (semantics).

-- The series a threshold-family rule covers, with its thresholds resolved per kind.
create or replace function _tsfleet.threshold_targets(
    p_rule_ids integer[],
    p_device_key text default null
)
returns table (
    rule_id integer,
    device_id integer,
    device_key text,
    tenant_key text,
    metric_id integer,
    metric_name text,
    lookback interval,
    below_fire double precision,
    below_clear double precision,
    above_fire double precision,
    above_clear double precision
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
    return query
select
    rd.rule_id,
    rd.device_id,
    rd.device_key,
    rd.tenant_key,
    m.metric_id,
    m.metric_name,
    coalesce(
        (rd.params ->> 'lookback')::interval,
        case rd.condition_kind
            when 'temperature_range' then interval '2 hours' else interval '1 hour'
        end
    ),
    th.below_fire,
    coalesce(th.below_clear, th.below_fire),
    th.above_fire,
    coalesce(th.above_clear, th.above_fire)
from _tsfleet.alert_rule_devices as rd
cross join lateral (
    select
        case rd.condition_kind
            when 'threshold' then (rd.params ->> 'below')::double precision
            when 'low_battery' then (rd.params ->> 'threshold')::double precision
            when 'temperature_range' then (rd.params ->> 'min')::double precision
        end as below_fire,
        case rd.condition_kind
            when 'threshold' then
                case
                    when rd.params ? 'below'
                        then (rd.params ->> 'clear_threshold')::double precision
                end
            when 'low_battery' then (rd.params ->> 'clear_threshold')::double precision
            when 'temperature_range' then (rd.params ->> 'clear_min')::double precision
        end as below_clear,
        case rd.condition_kind
            when 'threshold' then (rd.params ->> 'above')::double precision
            when 'temperature_range' then (rd.params ->> 'max')::double precision
        end as above_fire,
        case rd.condition_kind
            when 'threshold' then
                case
                    when rd.params ? 'above'
                        then (rd.params ->> 'clear_threshold')::double precision
                end
            when 'temperature_range' then (rd.params ->> 'clear_max')::double precision
        end as above_clear
) as th
inner join telemetry.metrics as m
    on m.metric_name = coalesce(
        rd.params ->> 'metric',
        case rd.condition_kind
            when 'low_battery' then 'StateOfChargePercentage'
            when 'temperature_range' then 'temperature_c'
        end
    )
where
    rd.rule_id = any(threshold_targets.p_rule_ids)
    and rd.condition_kind in ('threshold', 'low_battery', 'temperature_range')
    and (
        threshold_targets.p_device_key is null
        or rd.device_key = threshold_targets.p_device_key
    );
end;
$$;

comment on function _tsfleet.threshold_targets(integer[], text) is
'The (rule, device, metric) series of threshold, low_battery and temperature_range rules, '
'with firing and clear thresholds below and above, and the lookback.';

-- Threshold family: threshold (above/below), low_battery (below), temperature_range (both).
create or replace function _tsfleet.threshold_signals(
    p_rule_ids integer[],
    p_from timestamptz,
    p_to timestamptz,
    p_step interval,
    p_since timestamptz,
    p_device_key text default null
)
returns table (
    rule_id integer,
    step_at timestamptz,
    device_key text,
    metric_name text,
    tenant_key text,
    fires boolean,
    holds boolean,
    value double precision,
    is_low boolean
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
-- JIT compiles these plans' expressions for longer than the queries run.
set jit = off
-- Plan with the actual bounds, so that only the chunks of the window are planned and read.
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
declare
    step_seconds numeric := extract(epoch from p_step);
    last_step bigint := floor(extract(epoch from p_to - p_from) / extract(epoch from p_step));
    max_lookback interval;
    window_start timestamptz;
    window_end timestamptz;
begin
    if pg_catalog.cardinality(p_rule_ids) = 0 then
        return;
    end if;
    window_end := p_from + last_step * p_step;

    select
        max(coalesce(
            (r.params ->> 'lookback')::interval,
            case r.condition_kind
                when 'temperature_range' then interval '2 hours' else interval '1 hour'
            end
        ))
    into max_lookback
    from alerts.rules as r
    where
        r.rule_id = any(p_rule_ids)
        and r.condition_kind in ('threshold', 'low_battery', 'temperature_range');
    if max_lookback is null then
        return;
    end if;
    -- A window never reaches further back than the lookback (a runner down for a day does
    -- not replay the whole day at once).
    window_start := greatest(coalesce(p_since, p_from), p_from - max_lookback);

    return query
    with
    targets as (
        select t.* from _tsfleet.threshold_targets(p_rule_ids, p_device_key) as t
    ),

    -- The newest reading of each series at or before the first window (one index probe).
    carried_in as (
        select
            t.rule_id,
            t.device_id,
            t.metric_id,
            p.recorded_at,
            p.value
        from targets as t
        cross join lateral (
            select
                r.recorded_at,
                r.value
            from telemetry.readings as r
            where
                r.device_id = t.device_id
                and r.metric_id = t.metric_id
                and r.recorded_at <= window_start
                and r.recorded_at > p_from - max_lookback
            order by r.recorded_at desc
            limit 1
        ) as p
    ),

    -- Every reading of the windows, with the step whose window holds it.
    windowed as (
        select
            t.rule_id,
            t.device_id,
            t.metric_id,
            greatest(
                0, ceil(extract(epoch from r.recorded_at - p_from) / step_seconds)
            )::bigint as k,
            r.recorded_at,
            r.value
        from targets as t
        inner join telemetry.readings as r
            on t.device_id = r.device_id and t.metric_id = r.metric_id
        where r.recorded_at > window_start and r.recorded_at <= window_end
    ),

    per_step as (
        select
            w.rule_id,
            w.device_id,
            w.metric_id,
            w.k,
            min(w.value) as low,
            max(w.value) as high,
            max(w.recorded_at) as newest_at,
            (array_agg(w.value order by w.recorded_at desc))[1] as newest_value
        from windowed as w
        group by w.rule_id, w.device_id, w.metric_id, w.k
    ),

    -- Steps of each series: the live case is one step; a backtest every step of its range.
    grid as (
        select
            t.rule_id,
            t.device_id,
            t.metric_id,
            g.k,
            ps.low,
            ps.high,
            ps.newest_at,
            ps.newest_value,
            count(ps.newest_at) over (
                partition by t.rule_id, t.device_id, t.metric_id order by g.k
            ) as carry_group
        from targets as t
        cross join generate_series(0::bigint, last_step) as g (k)
        left join per_step as ps
            on
                t.rule_id = ps.rule_id
                and t.device_id = ps.device_id
                and t.metric_id = ps.metric_id
                and g.k = ps.k
    ),

    carried as (
        select
            g.rule_id,
            g.device_id,
            g.metric_id,
            g.k,
            g.low,
            g.high,
            case
                when g.carry_group = 0 then ci.recorded_at
                else first_value(g.newest_at) over carry
            end as latest_at,
            case
                when g.carry_group = 0 then ci.value
                else first_value(g.newest_value) over carry
            end as latest_value
        from grid as g
        left join carried_in as ci
            on
                g.rule_id = ci.rule_id
                and g.device_id = ci.device_id
                and g.metric_id = ci.metric_id
        window carry as (
            partition by g.rule_id, g.device_id, g.metric_id, g.carry_group order by g.k
        )
    ),

    measured as (
        select
            t.*,
            p_from + c.k * p_step as at,
            least(c.low, lv.latest_value) as low,
            greatest(c.high, lv.latest_value) as high,
            lv.latest_value
        from carried as c
        inner join targets as t
            on
                c.rule_id = t.rule_id
                and c.device_id = t.device_id
                and c.metric_id = t.metric_id
        cross join lateral (
            select
                case
                    when c.latest_at > p_from + c.k * p_step - t.lookback
                        then c.latest_value
                end as latest_value
        ) as lv
        where c.low is not null or lv.latest_value is not null
    ),

    judged as (
        select
            m.*,
            (m.above_clear is not null and m.high > m.above_clear) as above_breach,
            (m.below_clear is not null and m.low < m.below_clear) as below_breach,
            coalesce(m.above_fire is not null and m.high > m.above_fire, false)
            or coalesce(m.below_fire is not null and m.low < m.below_fire, false) as fires
        from measured as m
    ),

    final as (
        select
            j.rule_id,
            j.at as step_at,
            j.device_key,
            j.metric_name,
            j.tenant_key,
            j.fires,
            coalesce(j.above_breach, false) or coalesce(j.below_breach, false) as holds,
            case
                when j.above_breach then j.high
                when j.below_breach then j.low
                when j.above_fire is not null and j.below_fire is null then j.high
                when j.below_fire is not null and j.above_fire is null then j.low
                else j.latest_value
            end as value,
            not coalesce(j.above_breach, false)
            and (j.below_breach or j.above_fire is null) as is_low
        from judged as j
    )

    select
        f.rule_id,
        f.step_at,
        f.device_key,
        f.metric_name,
        f.tenant_key,
        f.fires,
        f.holds,
        f.value,
        coalesce(f.is_low, false)
    from final as f
    where f.fires or f.holds;
end;
$$;

comment on function _tsfleet.threshold_signals(
    integer[], timestamptz, timestamptz, interval, timestamptz, text
) is
'Threshold, low_battery and temperature_range conditions at every step from p_from to p_to: '
'each step sees its window of readings (since the previous step; since p_since for the first) '
'and the newest reading at or before it; rows where a threshold is crossed.';

-- Stale devices: at step t a device is stale when it has no reading (of any metric) in
-- (t - stale_after, t]; stale_after is the rule's stale_after (or max_age), at least
-- interval_multiple x the device's nominal interval. A device with no reading at or before t
-- within ignore_after (default 30 days) is not judged: it is new or retired.
create or replace function _tsfleet.stale_signals(
    p_rule_ids integer[],
    p_from timestamptz,
    p_to timestamptz,
    p_step interval,
    p_device_key text default null
)
returns table (
    rule_id integer,
    step_at timestamptz,
    device_key text,
    metric_name text,
    tenant_key text,
    fires boolean,
    holds boolean,
    value double precision,
    is_low boolean
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
-- JIT compiles these plans' expressions for longer than the queries run.
set jit = off
-- Plan with the actual bounds, so that only the chunks of the window are planned and read.
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
declare
    step_seconds numeric := extract(epoch from p_step);
    last_step bigint := floor(extract(epoch from p_to - p_from) / extract(epoch from p_step));
    window_end timestamptz := p_from + last_step * p_step;
    max_ignore interval;
begin
    select max(coalesce((r.params ->> 'ignore_after')::interval, interval '30 days'))
    into max_ignore
    from alerts.rules as r
    where r.rule_id = any(p_rule_ids) and r.condition_kind = 'stale_device';
    if max_ignore is null then
        return;
    end if;

    return query
    with
    targets as (
        select t.* from _tsfleet.stale_targets(p_rule_ids, p_device_key) as t
    ),

    -- The newest reading of each device at or before the first step (one index probe).
    carried_in as (
        select
            t.rule_id,
            t.device_id,
            p.recorded_at
        from targets as t
        cross join lateral (
            select r.recorded_at
            from telemetry.readings as r
            where
                r.device_id = t.device_id
                and r.recorded_at <= p_from
                and r.recorded_at > p_from - max_ignore
            order by r.recorded_at desc
            limit 1
        ) as p
    ),

    -- The newest reading of each device in each step's window.
    per_step as (
        select
            t.rule_id,
            t.device_id,
            ceil(extract(epoch from r.recorded_at - p_from) / step_seconds)::bigint as k,
            max(r.recorded_at) as newest_at
        from targets as t
        inner join telemetry.readings as r on t.device_id = r.device_id
        where r.recorded_at > p_from and r.recorded_at <= window_end
        group by 1, 2, 3
    ),

    grid as (
        select
            t.rule_id,
            t.device_id,
            g.k,
            ps.newest_at,
            count(ps.newest_at) over (
                partition by t.rule_id, t.device_id order by g.k
            ) as carry_group
        from targets as t
        cross join generate_series(0::bigint, last_step) as g (k)
        left join per_step as ps
            on t.rule_id = ps.rule_id and t.device_id = ps.device_id and g.k = ps.k
    ),

    carried as (
        select
            g.rule_id,
            g.device_id,
            g.k,
            case
                when g.carry_group = 0 then ci.recorded_at
                else first_value(g.newest_at) over carry
            end as latest_at
        from grid as g
        left join carried_in as ci
            on g.rule_id = ci.rule_id and g.device_id = ci.device_id
        window carry as (
            partition by g.rule_id, g.device_id, g.carry_group order by g.k
        )
    ),

    final as (
        select
            t.rule_id,
            p_from + c.k * p_step as step_at,
            t.device_key,
            '*'::text as metric_name,
            t.tenant_key,
            extract(epoch from p_from + c.k * p_step - c.latest_at)::double precision
                as silent_seconds,
            c.latest_at <= p_from + c.k * p_step - t.stale_after as is_stale
        from carried as c
        inner join targets as t on c.rule_id = t.rule_id and c.device_id = t.device_id
        where c.latest_at > p_from + c.k * p_step - t.ignore_after
    )

    select
        f.rule_id,
        f.step_at,
        f.device_key,
        f.metric_name,
        f.tenant_key,
        true,
        true,
        f.silent_seconds,
        false
    from final as f
    where f.is_stale;
end;
$$;

comment on function _tsfleet.stale_signals(
    integer[], timestamptz, timestamptz, interval, text
) is
'Stale-device conditions at every step from p_from to p_to: devices with no reading in '
'(step - stale_after, step]; value is the seconds since the newest reading at or before it.';

-- The devices a stale_device rule covers, with their silence limits.
create or replace function _tsfleet.stale_targets(
    p_rule_ids integer[],
    p_device_key text default null
)
returns table (
    rule_id integer,
    device_id integer,
    device_key text,
    tenant_key text,
    stale_after interval,
    ignore_after interval
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
    return query
    select
        rd.rule_id,
        rd.device_id,
        rd.device_key,
        rd.tenant_key,
        greatest(
            coalesce(
                (rd.params ->> 'stale_after')::interval,
                (rd.params ->> 'max_age')::interval,
                interval '5 minutes'
            ),
            coalesce((rd.params ->> 'interval_multiple')::double precision, 0)
            * coalesce(rd.nominal_interval, interval '0')
        ),
        coalesce((rd.params ->> 'ignore_after')::interval, interval '30 days')
    from _tsfleet.alert_rule_devices as rd
    where
        rd.rule_id = any(stale_targets.p_rule_ids)
        and rd.condition_kind = 'stale_device'
        and (
            stale_targets.p_device_key is null
            or rd.device_key = stale_targets.p_device_key
        );
end;
$$;

comment on function _tsfleet.stale_targets(integer[], text) is
'The devices of stale_device rules with stale_after (at least interval_multiple nominal '
'intervals) and ignore_after (default 30 days).';

-- Poor completeness: at step t, a series delivered less than `threshold` percent of its
-- expected readings (1 hour / the device's nominal interval) in the last complete hour
-- before t. An hour without any reading counts as 0 %: a series is expected while it has
-- delivered anything in the `expect_window` (default 6 hours) up to that hour. Counts come
-- from rollups.device_metrics_hourly (complete hours only, so never a reading after t).
-- Devices without a nominal interval are not judged.
create or replace function _tsfleet.completeness_signals(
    p_rule_ids integer[],
    p_from timestamptz,
    p_to timestamptz,
    p_step interval,
    p_device_key text default null
)
returns table (
    rule_id integer,
    step_at timestamptz,
    device_key text,
    metric_name text,
    tenant_key text,
    fires boolean,
    holds boolean,
    value double precision,
    is_low boolean
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
-- JIT compiles these plans' expressions for longer than the queries run.
set jit = off
-- Plan with the actual bounds, so that only the chunks of the window are planned and read.
set plan_cache_mode = force_custom_plan
as $$
#variable_conflict use_column
declare
    last_step bigint := floor(extract(epoch from p_to - p_from) / extract(epoch from p_step));
    first_hour timestamptz := pg_catalog.date_trunc('hour', p_from) - interval '1 hour';
    last_hour timestamptz := pg_catalog.date_trunc('hour', p_from + last_step * p_step)
    - interval '1 hour';
    max_expect interval;
begin
    select max(coalesce((r.params ->> 'expect_window')::interval, interval '6 hours'))
    into max_expect
    from alerts.rules as r
    where r.rule_id = any(p_rule_ids) and r.condition_kind = 'poor_completeness';
    if max_expect is null then
        return;
    end if;

    return query
    with
    targets as (
        select t.* from _tsfleet.completeness_targets(p_rule_ids, p_device_key) as t
    ),

    counted as (
        select
            t.rule_id,
            h.device_id,
            h.metric_id,
            h.bucket_start,
            h.reading_count
        from targets as t
        inner join rollups.device_metrics_hourly as h on t.device_id = h.device_id
        where
            h.bucket_start >= first_hour - max_expect
            and h.bucket_start <= last_hour
            and h.reading_count > 0
    ),

    series as (
        select distinct
            c.rule_id,
            c.device_id,
            c.metric_id
        from counted as c
    ),

    -- The hours to judge, interleaved with the hours that have data (data first within an
    -- hour): one ordered pass gives each judged hour its count and the newest data hour.
    marks as (
        select
            c.rule_id,
            c.device_id,
            c.metric_id,
            c.bucket_start as hour_start,
            c.reading_count,
            false as is_judged
        from counted as c
        union all
        select
            s.rule_id,
            s.device_id,
            s.metric_id,
            g.hour_start,
            null,
            true
        from series as s
        cross join generate_series(first_hour, last_hour, interval '1 hour') as g (hour_start)
    ),

    hours as (
        select
            m.rule_id,
            m.device_id,
            m.metric_id,
            m.hour_start,
            m.is_judged,
            case
                when lag(m.hour_start) over series_time = m.hour_start
                    then lag(m.reading_count) over series_time
                else 0
            end as reading_count,
            max(m.hour_start) filter (where not m.is_judged) over (
                series_time rows between unbounded preceding and current row
            ) as last_data_hour
        from marks as m
        window series_time as (
            partition by m.rule_id, m.device_id, m.metric_id
            order by m.hour_start, m.is_judged
        )
    ),

    judged as (
        select
            h.rule_id,
            h.hour_start,
            t.device_key,
            m.metric_name,
            t.tenant_key,
            t.threshold,
            t.clear_threshold,
            least(
                100.0,
                100.0 * h.reading_count
                / (3600.0 / extract(epoch from t.nominal_interval))
            )::double precision as completeness_pct
        from hours as h
        inner join targets as t on h.rule_id = t.rule_id and h.device_id = t.device_id
        inner join telemetry.metrics as m on h.metric_id = m.metric_id
        where
            h.is_judged
            and h.last_data_hour >= h.hour_start - t.expect_window
    ),

    steps as (
        select
            p_from + g.k * p_step as step_at,
            pg_catalog.date_trunc('hour', p_from + g.k * p_step) - interval '1 hour'
                as hour_start
        from generate_series(0::bigint, last_step) as g (k)
    )

    select
        j.rule_id,
        s.step_at,
        j.device_key,
        j.metric_name,
        j.tenant_key,
        j.completeness_pct < j.threshold,
        j.completeness_pct < j.clear_threshold,
        j.completeness_pct,
        true
    from judged as j
    inner join steps as s on j.hour_start = s.hour_start
    where j.completeness_pct < greatest(j.threshold, j.clear_threshold);
end;
$$;

comment on function _tsfleet.completeness_signals(
    integer[], timestamptz, timestamptz, interval, text
) is
'Poor-completeness conditions at every step from p_from to p_to: series whose last complete '
'hour before the step holds less than the threshold percent of expected readings (empty '
'hours count as 0 %).';

-- The devices of poor_completeness rules, with thresholds and the expect window.
create or replace function _tsfleet.completeness_targets(
    p_rule_ids integer[],
    p_device_key text default null
)
returns table (
    rule_id integer,
    device_id integer,
    device_key text,
    tenant_key text,
    nominal_interval interval,
    threshold double precision,
    clear_threshold double precision,
    expect_window interval
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
begin
    return query
    select
        rd.rule_id,
        rd.device_id,
        rd.device_key,
        rd.tenant_key,
        rd.nominal_interval,
        (rd.params ->> 'threshold')::double precision,
        coalesce(
            (rd.params ->> 'clear_threshold')::double precision,
            (rd.params ->> 'threshold')::double precision
        ),
        coalesce((rd.params ->> 'expect_window')::interval, interval '6 hours')
    from _tsfleet.alert_rule_devices as rd
    where
        rd.rule_id = any(completeness_targets.p_rule_ids)
        and rd.condition_kind = 'poor_completeness'
        and rd.nominal_interval is not null
        and (
            completeness_targets.p_device_key is null
            or rd.device_key = completeness_targets.p_device_key
        );
end;
$$;

comment on function _tsfleet.completeness_targets(integer[], text) is
'The devices (with a nominal interval) of poor_completeness rules, with thresholds and the '
'window in which a series that delivered anything is expected to deliver.';

-- Every condition kind's signals, with the label that names the subject. The set-based
-- kinds answer all steps at once; the others are judged once per step
-- (51_alerts_window_signals.sql, _tsfleet.signal_low_asset_health).
-- security definer: Grafana and analysts read the alerts.condition_* views, which evaluate
-- through this function; it reads readings, rollups and assets that those roles may not read
-- themselves, and returns only condition rows. It writes nothing but a transaction-local
-- setting, which it restores.
create or replace function _tsfleet.alert_signals(
    p_rule_ids integer[],
    p_from timestamptz,
    p_to timestamptz,
    p_step interval default interval '1 minute',
    p_since timestamptz default null,
    p_device_key text default null
)
returns table (
    rule_id integer,
    step_at timestamptz,
    subject_label text,
    subject text,
    metric text,
    tenant text,
    fires boolean,
    holds boolean,
    value double precision,
    is_low boolean
)
language plpgsql
volatile
security definer
set search_path = pg_catalog, pg_temp
set jit = off
as $$
#variable_conflict use_column
declare
    saved_now text := pg_catalog.current_setting('tsfleet.alerts_now', true);
    last_step bigint;
    view_rule_ids integer [];
    k bigint;
    step_now timestamptz;
begin
    if p_step <= interval '0' then
        raise exception 'the evaluation step must be positive, not %', p_step
        using errcode = '22023';
    end if;
    if p_to < p_from then
        raise exception 'the range ends (%) before it starts (%)', p_to, p_from
        using errcode = '22023';
    end if;
    last_step := floor(extract(epoch from p_to - p_from) / extract(epoch from p_step));
    perform pg_catalog.set_config('tsfleet.alerts_now', _tsfleet.alert_clock(p_to), true);

    return query
    select s.rule_id, s.step_at, 'device', s.device_key, s.metric_name, s.tenant_key,
        s.fires, s.holds, s.value, s.is_low
    from _tsfleet.threshold_signals(p_rule_ids, p_from, p_to, p_step, p_since, p_device_key)
        as s;
    return query
    select s.rule_id, s.step_at, 'device', s.device_key, s.metric_name, s.tenant_key,
        s.fires, s.holds, s.value, s.is_low
    from _tsfleet.stale_signals(p_rule_ids, p_from, p_to, p_step, p_device_key) as s;
    return query
    select s.rule_id, s.step_at, 'device', s.device_key, s.metric_name, s.tenant_key,
        s.fires, s.holds, s.value, s.is_low
    from _tsfleet.completeness_signals(p_rule_ids, p_from, p_to, p_step, p_device_key) as s;

    select array_agg(r.rule_id) into view_rule_ids
    from alerts.rules as r
    where
        r.rule_id = any(p_rule_ids)
        and r.condition_kind in (
            'humidity_drift', 'quality_anomalies', 'high_volume', 'low_asset_health'
        );
    if view_rule_ids is not null then
        for k in 0..last_step loop
            step_now := p_from + k * p_step;
            perform pg_catalog.set_config(
                'tsfleet.alerts_now', _tsfleet.alert_clock(step_now), true
            );
            return query
            with
            signals as (
                select v.*, 'device' as subject_label
                from _tsfleet.humidity_drift_signals(view_rule_ids, step_now, p_device_key) as v
                union all
                select v.*, 'device'
                from _tsfleet.quality_anomalies_signals(view_rule_ids, step_now, p_device_key)
                    as v
                union all
                select v.*, 'device'
                from _tsfleet.high_volume_signals(view_rule_ids, step_now, p_device_key) as v
                union all
                select v.*, 'asset' from _tsfleet.signal_low_asset_health as v
                where v.rule_id = any(view_rule_ids)
            )

            select s.rule_id, step_now, s.subject_label, s.subject, s.metric,
                s.tenant, s.fires, s.holds, s.value, s.is_low
            from signals as s
            where p_device_key is null or s.subject = p_device_key;
        end loop;
    end if;

    perform pg_catalog.set_config('tsfleet.alerts_now', coalesce(saved_now, ''), true);
end;
$$;

comment on function _tsfleet.alert_signals(
    integer[], timestamptz, timestamptz, interval, timestamptz, text
) is
'Signals of the given rules at every step from p_from to p_to (p_since: where the first '
'step''s window of readings starts; null for a first evaluation), optionally of one device.';

grant execute on function _tsfleet.alert_signals(
    integer[], timestamptz, timestamptz, interval, timestamptz, text
) to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;

-- The text form of an evaluation time that alerts.evaluation_time() reads back.
create or replace function _tsfleet.alert_clock(at timestamptz)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select pg_catalog.to_char(at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"')
$$;

comment on function _tsfleet.alert_clock(timestamptz) is
'An evaluation time as the tsfleet.alerts_now setting holds it (UTC, microseconds).';

grant execute on function _tsfleet.alert_clock(timestamptz)
to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;
