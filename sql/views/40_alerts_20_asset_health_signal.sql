-- The low_asset_health signal: the newest health score of each asset at or before
-- alerts.evaluation_time(), never a later one (asset-led index probe). The other kinds' signals
-- are functions: sql/functions/51_alerts_signals.sql, 51_alerts_window_signals.sql. Columns:
-- rule_id, subject (asset key), metric, tenant, fires (firing threshold crossed), holds (clear
-- threshold crossed: an open alert holds), value, is_low (lower is worse). Read through
-- _tsfleet.alert_signals().
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
