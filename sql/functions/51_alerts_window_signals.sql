-- Signals of the condition kinds judged at one evaluation time at a time (alerts.backtest
-- calls them once per step): readings or complete rollup hours up to p_at, never later, within
-- a recent window whose bounds are constants of the plan (so only that window's chunks are
-- planned and read, whatever the stored history). Same columns as the set-based signals in
-- 51_alerts_signals.sql; read through _tsfleet.alert_signals().

-- Repeated quality anomalies: `threshold` or more readings with a non-good quality flag in a
-- series' recent readings: the last `last_readings` nominal intervals of the device when it
-- has a nominal interval, else the last `window`. Reads only the small partial index of
-- non-good readings (migration 0067), never the good ones.
create or replace function _tsfleet.quality_anomalies_signals(
    p_rule_ids integer[],
    p_at timestamptz,
    p_device_key text default null
)
returns table (
    rule_id integer,
    subject text,
    metric text,
    tenant text,
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
    max_lookback interval;
begin
    select
        max(greatest(
            coalesce((r.params ->> 'last_readings')::integer, 0)
            * (select max(d.nominal_interval) from telemetry.devices as d),
            coalesce((r.params ->> 'window')::interval, interval '6 hours')
        ))
    into max_lookback
    from alerts.rules as r
    where r.rule_id = any(p_rule_ids) and r.condition_kind = 'quality_anomalies';
    if max_lookback is null then
        return;
    end if;
    return query
    with
    clock as materialized (
        select p_at as evaluated_at
    ),

    targets as materialized (
        select
            ck.evaluated_at,
            rd.rule_id,
            rd.rule_key,
            rd.severity,
            rd.device_id,
            rd.device_key,
            rd.tenant_key,
            (rd.params ->> 'threshold')::integer as threshold,
            coalesce(
                (rd.params ->> 'clear_threshold')::integer, (rd.params ->> 'threshold')::integer
            ) as clear_threshold,
            coalesce(
                (rd.params ->> 'last_readings')::integer * rd.nominal_interval,
                (rd.params ->> 'window')::interval,
                interval '6 hours'
            ) as lookback
        from _tsfleet.alert_rule_devices as rd
        cross join clock as ck
        where
            rd.condition_kind = 'quality_anomalies'
            and rd.rule_id = any(p_rule_ids)
            and (p_device_key is null or rd.device_key = p_device_key)
    ),

    -- Materialized: read the partial index of non-good readings once, then hash-join.
    flagged as materialized (
        select
            r.device_id,
            r.metric_id,
            r.recorded_at
        from telemetry.readings as r
        where
            r.quality <> 'good'
            and r.recorded_at > p_at - max_lookback
            and r.recorded_at <= p_at
    ),

    counted as (
        select
            t.rule_id,
            t.rule_key,
            t.severity,
            t.device_key,
            t.tenant_key,
            t.threshold,
            t.clear_threshold,
            m.metric_name,
            count(*) as flagged_count
        from targets as t
        inner join flagged as f
            on
                t.device_id = f.device_id
                and f.recorded_at > t.evaluated_at - t.lookback
        inner join telemetry.metrics as m on f.metric_id = m.metric_id
        group by
            t.rule_id, t.rule_key, t.severity, t.device_key, t.tenant_key, t.threshold,
            t.clear_threshold, m.metric_name
    ),

    final as (
        select
            ct.rule_id,
            ct.device_key as subject,
            ct.metric_name as metric,
            ct.tenant_key as tenant,
            ct.flagged_count >= ct.threshold as fires,
            ct.flagged_count >= ct.clear_threshold as holds,
            ct.flagged_count::double precision as value,
            false as is_low
        from counted as ct
        where ct.flagged_count >= least(ct.threshold, ct.clear_threshold)
    )

    select * from final;
end;
$$;

comment on function _tsfleet.quality_anomalies_signals(integer[], timestamptz, text) is
'quality_anomalies signals at p_at (see the note above the function): rule, subject, metric, '
'tenant, fires, holds, value, is_low.';

-- High volume: readings per minute over the trailing `window` above `threshold`, per device
-- (params per = device) or summed over the rule's devices (per = fleet; device label *).
create or replace function _tsfleet.high_volume_signals(
    p_rule_ids integer[],
    p_at timestamptz,
    p_device_key text default null
)
returns table (
    rule_id integer,
    subject text,
    metric text,
    tenant text,
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
    max_window interval;
begin
    select max(coalesce((r.params ->> 'window')::interval, interval '1 minute'))
    into max_window
    from alerts.rules as r
    where r.rule_id = any(p_rule_ids) and r.condition_kind = 'high_volume';
    if max_window is null then
        return;
    end if;
    return query
    with
    targets as (
        select
            rd.rule_id,
            rd.rule_key,
            rd.severity,
            rd.device_id,
            rd.device_key,
            rd.tenant_key,
            coalesce(rd.params ->> 'per', 'device') as per,
            (rd.params ->> 'threshold')::double precision as threshold,
            coalesce(
                (rd.params ->> 'clear_threshold')::double precision,
                (rd.params ->> 'threshold')::double precision
            ) as clear_threshold,
            coalesce((rd.params ->> 'window')::interval, interval '1 minute') as rate_window
        from _tsfleet.alert_rule_devices as rd
        where
            rd.condition_kind = 'high_volume'
            and rd.rule_id = any(p_rule_ids)
            and (p_device_key is null or rd.device_key = p_device_key)
    ),

    windows as (
        select distinct t.rate_window from targets as t
    ),

    counts as (
        select
            w.rate_window,
            r.device_id,
            count(*) as reading_count
        from windows as w
        inner join telemetry.readings as r
            on
                r.recorded_at > p_at - w.rate_window
                and r.recorded_at <= p_at
        where r.recorded_at > p_at - max_window
        group by w.rate_window, r.device_id
    ),

    rates as (
        select
            t.rule_id,
            t.rule_key,
            t.severity,
            case when t.per = 'fleet' then '*' else t.device_key end as device_key,
            case
                when t.per = 'fleet' then (array_agg(distinct t.tenant_key))[1]
                else min(t.tenant_key)
            end as tenant_key,
            min(t.threshold) as threshold,
            min(t.clear_threshold) as clear_threshold,
            sum(c.reading_count)::double precision
            / (extract(epoch from min(t.rate_window)) / 60.0) as per_minute
        from targets as t
        inner join counts as c on t.device_id = c.device_id and t.rate_window = c.rate_window
        group by
            t.rule_id, t.rule_key, t.severity,
            case when t.per = 'fleet' then '*' else t.device_key end, t.per
    ),

    final as (
        select
            rt.rule_id,
            rt.device_key as subject,
            '*'::text as metric,
            coalesce(rt.tenant_key, '*') as tenant,
            rt.per_minute > rt.threshold as fires,
            rt.per_minute > rt.clear_threshold as holds,
            rt.per_minute as value,
            false as is_low
        from rates as rt
        where rt.per_minute > least(rt.threshold, rt.clear_threshold)
    )

    select * from final;
end;
$$;

comment on function _tsfleet.high_volume_signals(integer[], timestamptz, text) is
'high_volume signals at p_at (see the note above the function): rule, subject, metric, tenant, '
'fires, holds, value, is_low.';

-- Humidity drift: the mean over the trailing `window` (1 hour) differs by more than
-- `threshold` points from the device's baseline, the mean over the same window
-- `baseline_offset` earlier (24 h by default: the same time yesterday, so the daily cycle does
-- not count as drift). Means come from rollups.device_metrics_hourly: complete hours before
-- the evaluation time only (never a reading after it), two rows per series instead of every
-- reading, which keeps a 1,000-device evaluation cheap; the runner calls rollups.refresh()
-- before each evaluation.
-- Couples with: rollups.device_metrics_hourly (bucket_start, device_id, metric_id, value_avg,
-- reading_count), tests/test_alert_conditions.py.
create or replace function _tsfleet.humidity_drift_signals(
    p_rule_ids integer[],
    p_at timestamptz,
    p_device_key text default null
)
returns table (
    rule_id integer,
    subject text,
    metric text,
    tenant text,
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
    newest_hour timestamptz := pg_catalog.date_trunc('hour', p_at);
    oldest_hour timestamptz;
begin
    select
        newest_hour - max(
            coalesce((r.params ->> 'baseline_offset')::interval, interval '24 hours')
            + coalesce((r.params ->> 'window')::interval, interval '1 hour')
        )
    into oldest_hour
    from alerts.rules as r
    where r.rule_id = any(p_rule_ids) and r.condition_kind = 'humidity_drift';
    if oldest_hour is null then
        return;
    end if;
    return query
    with
    clock as materialized (
        select pg_catalog.date_trunc('hour', p_at) as hour_end
    ),

    targets as (
        select
            rd.rule_id,
            rd.rule_key,
            rd.severity,
            rd.device_id,
            rd.device_key,
            rd.tenant_key,
            m.metric_id,
            m.metric_name,
            (rd.params ->> 'threshold')::double precision as threshold,
            coalesce(
                (rd.params ->> 'clear_threshold')::double precision,
                (rd.params ->> 'threshold')::double precision
            ) as clear_threshold,
            coalesce((rd.params ->> 'window')::interval, interval '1 hour')
                as trailing_window,
            coalesce((rd.params ->> 'baseline_offset')::interval, interval '24 hours')
                as baseline_offset
        from _tsfleet.alert_rule_devices as rd
        inner join telemetry.metrics as m
            on m.metric_name = coalesce(rd.params ->> 'metric', 'humidity_pct')
        where
            rd.condition_kind = 'humidity_drift'
            and rd.rule_id = any(p_rule_ids)
            and (p_device_key is null or rd.device_key = p_device_key)
    ),

    windows as materialized (
        select distinct
            t.trailing_window,
            t.baseline_offset,
            ck.hour_end
        from targets as t
        cross join clock as ck
    ),

    recent_means as materialized (
        select
            w.trailing_window,
            w.baseline_offset,
            h.device_id,
            h.metric_id,
            sum(h.value_avg * h.reading_count) / nullif(sum(h.reading_count), 0)
                as mean_value
        from windows as w
        inner join rollups.device_metrics_hourly as h
            on
                h.bucket_start >= w.hour_end - w.trailing_window
                and w.hour_end > h.bucket_start
        where h.bucket_start >= oldest_hour and h.bucket_start < newest_hour
        group by w.trailing_window, w.baseline_offset, h.device_id, h.metric_id
    ),

    baseline_means as materialized (
        select
            w.trailing_window,
            w.baseline_offset,
            h.device_id,
            h.metric_id,
            sum(h.value_avg * h.reading_count) / nullif(sum(h.reading_count), 0)
                as mean_value
        from windows as w
        inner join rollups.device_metrics_hourly as h
            on
                h.bucket_start >= w.hour_end - w.baseline_offset - w.trailing_window
                and h.bucket_start < w.hour_end - w.baseline_offset
        where h.bucket_start >= oldest_hour and h.bucket_start < newest_hour
        group by w.trailing_window, w.baseline_offset, h.device_id, h.metric_id
    ),

    means as (
        select
            t.*,
            tr.mean_value as trailing_mean,
            bl.mean_value as baseline_mean
        from targets as t
        inner join recent_means as tr
            on
                t.device_id = tr.device_id and t.metric_id = tr.metric_id
                and t.trailing_window = tr.trailing_window
                and t.baseline_offset = tr.baseline_offset
        inner join baseline_means as bl
            on
                t.device_id = bl.device_id and t.metric_id = bl.metric_id
                and t.trailing_window = bl.trailing_window
                and t.baseline_offset = bl.baseline_offset
    ),

    final as (
        select
            mn.rule_id,
            mn.device_key as subject,
            mn.metric_name as metric,
            mn.tenant_key as tenant,
            abs(mn.trailing_mean - mn.baseline_mean) > mn.threshold as fires,
            abs(mn.trailing_mean - mn.baseline_mean) > mn.clear_threshold as holds,
            mn.trailing_mean - mn.baseline_mean as value,
            false as is_low
        from means as mn
        where abs(mn.trailing_mean - mn.baseline_mean) > least(mn.threshold, mn.clear_threshold)
    )

    select * from final;
end;
$$;

comment on function _tsfleet.humidity_drift_signals(integer[], timestamptz, text) is
'humidity_drift signals at p_at (see the note above the function): rule, subject, metric, '
'tenant, fires, holds, value, is_low.';
