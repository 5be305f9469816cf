-- Signals of the condition kinds that are judged on one evaluation time at a time (the
-- threshold family, stale devices and completeness are set-based functions over many steps:
-- sql/functions/51_alerts_signals.sql). Each view reads only what lies at or before
-- alerts.evaluation_time() (never a later reading), within a recent window, so its cost does
-- not grow with the stored history. Columns: rule_id, subject (device or asset key), metric,
-- tenant, fires (firing threshold crossed), holds (clear threshold crossed: an open alert
-- holds), value, is_low (lower is worse). No row where neither threshold is crossed.
-- Read through _tsfleet.alert_signals(), which alerts.evaluate(), alerts.backtest() and the
-- alerts.condition_* views share.
-- More signal views: 40_alerts_20_drift_signal.sql.

-- Repeated quality anomalies: `threshold` or more readings with a non-good quality flag in a
-- series' recent readings: the last `last_readings` nominal intervals of the device when it
-- has a nominal interval, else the last `window`. Reads only the small partial index of
-- non-good readings (migration 0067), never the good ones.
create or replace view _tsfleet.signal_quality_anomalies as
with
clock as materialized (
    select alerts.evaluation_time() as evaluated_at
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
    where rd.condition_kind = 'quality_anomalies'
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
        and r.recorded_at > alerts.evaluation_time()
        - (select coalesce(max(t.lookback), interval '0') from targets as t)
        and r.recorded_at <= alerts.evaluation_time()
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

comment on view _tsfleet.signal_quality_anomalies is
'quality_anomalies at alerts.evaluation_time(): series with at least clear_threshold non-good '
'quality flags among their recent readings.';
comment on column _tsfleet.signal_quality_anomalies.rule_id is 'The rule (alerts.rules).';
comment on column _tsfleet.signal_quality_anomalies.subject is 'Device key.';
comment on column _tsfleet.signal_quality_anomalies.metric is 'Metric name.';
comment on column _tsfleet.signal_quality_anomalies.tenant is 'Tenant key.';
comment on column _tsfleet.signal_quality_anomalies.fires is 'The firing threshold is crossed.';
comment on column _tsfleet.signal_quality_anomalies.holds is
'The clear threshold is crossed (an open alert holds).';
comment on column _tsfleet.signal_quality_anomalies.value is
'Non-good readings in the recent window.';
comment on column _tsfleet.signal_quality_anomalies.is_low is 'Always false: more flags are worse.';


-- High volume: readings per minute over the trailing `window` above `threshold`, per device
-- (params per = device) or summed over the rule's devices (per = fleet; device label *).
create or replace view _tsfleet.signal_high_volume as
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
    where rd.condition_kind = 'high_volume'
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
            r.recorded_at > alerts.evaluation_time() - w.rate_window
            and r.recorded_at <= alerts.evaluation_time()
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

comment on view _tsfleet.signal_high_volume is
'high_volume at alerts.evaluation_time(): readings per minute over the trailing window, per '
'device or fleet-wide (*).';
comment on column _tsfleet.signal_high_volume.rule_id is 'The rule (alerts.rules).';
comment on column _tsfleet.signal_high_volume.subject is 'Device key, or * fleet-wide.';
comment on column _tsfleet.signal_high_volume.metric is 'Always *.';
comment on column _tsfleet.signal_high_volume.tenant is 'Tenant key.';
comment on column _tsfleet.signal_high_volume.fires is 'The firing threshold is crossed.';
comment on column _tsfleet.signal_high_volume.holds is
'The clear threshold is crossed (an open alert holds).';
comment on column _tsfleet.signal_high_volume.value is 'Readings per minute.';
comment on column _tsfleet.signal_high_volume.is_low is 'Always false: more readings are worse.';


-- Low asset health: the asset's latest health score (telemetry.assets, kept by processing)
-- is below `threshold`; scores older than max_age are not trusted.
create or replace view _tsfleet.signal_low_asset_health as
with
clock as materialized (
    select alerts.evaluation_time() as evaluated_at
),

health_metric as materialized (
    select m.metric_id from telemetry.metrics as m
    where m.metric_name = 'health_score'
),

rules as (
    select
        ra.rule_id,
        ra.asset_id,
        ra.asset_key,
        ra.tenant_key,
        (ra.params ->> 'threshold')::double precision as threshold,
        coalesce(
            (ra.params ->> 'clear_threshold')::double precision,
            (ra.params ->> 'threshold')::double precision
        ) as clear_threshold,
        coalesce((ra.params ->> 'max_age')::interval, interval '30 days') as max_age
    from _tsfleet.alert_rule_assets as ra
    where ra.condition_kind = 'low_asset_health'
),

-- The newest health score at or before the evaluation time (asset-led index probe), never a
-- later one: telemetry.assets.latest_health_score would read the future when replaying.
targets as (
    select
        r.*,
        h.value as health_score
    from rules as r
    cross join clock as ck
    cross join lateral (
        select ar.value
        from telemetry.asset_readings as ar
        where
            ar.asset_id = r.asset_id
            and ar.metric_id = (select hm.metric_id from health_metric as hm)
            and ar.recorded_at <= ck.evaluated_at
            and ar.recorded_at > ck.evaluated_at - r.max_age
        order by ar.recorded_at desc
        limit 1
    ) as h
),

final as (
    select
        t.rule_id,
        t.asset_key as subject,
        'health_score'::text as metric,
        t.tenant_key as tenant,
        t.health_score < t.threshold as fires,
        t.health_score < t.clear_threshold as holds,
        t.health_score as value,
        true as is_low
    from targets as t
    where t.health_score < greatest(t.threshold, t.clear_threshold)
)

select * from final;

comment on view _tsfleet.signal_low_asset_health is
'low_asset_health at alerts.evaluation_time(): the newest health score at or before it, '
'within max_age (default 30 days).';
comment on column _tsfleet.signal_low_asset_health.rule_id is 'The rule (alerts.rules).';
comment on column _tsfleet.signal_low_asset_health.subject is 'Asset key.';
comment on column _tsfleet.signal_low_asset_health.metric is 'Always health_score.';
comment on column _tsfleet.signal_low_asset_health.tenant is 'Tenant key.';
comment on column _tsfleet.signal_low_asset_health.fires is 'The firing threshold is crossed.';
comment on column _tsfleet.signal_low_asset_health.holds is
'The clear threshold is crossed (an open alert holds).';
comment on column _tsfleet.signal_low_asset_health.value is 'Health score (0..100).';
comment on column _tsfleet.signal_low_asset_health.is_low is 'Always true: a lower score is worse.';
