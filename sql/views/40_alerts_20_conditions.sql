-- Alert condition views: the Grafana contract. One view per condition kind, named
-- alerts.condition_<kind>; columns: text labels (rule, device or asset, metric, severity,
-- tenant) and exactly one numeric `value`; one row per label set, present only while the
-- condition holds at alerts.evaluation_time(). Thresholds come from alerts.rules.params.
-- Hysteresis: an alert that is already open holds until its value crosses clear_threshold.
-- Every view reads only a recent window: time-range scans of readings (their time-first index,
-- or the partial index of non-good readings), recent hourly rollup buckets, or the devices and
-- assets tables, so its cost does not grow with the stored history. No view looks a series up
-- in readings one by one (readings keeps no device-led index, for ingest speed).
-- More condition views: 40_alerts_20_drift.sql, 40_alerts_20_latest.sql,
-- 40_alerts_21_completeness.sql (which also unions them all for alerts.evaluate()).
-- Couples with: tests/test_alert_grafana.py, grafana/provisioning/alerting/tsfleet-alerts.yaml.

-- Repeated quality anomalies: `threshold` or more readings with a non-good quality flag in a
-- series' recent readings: the last `last_readings` nominal intervals of the device when it
-- has a nominal interval, else the last `window`. Reads only the small partial index of
-- non-good readings (migration 0067), never the good ones.
create or replace view alerts.condition_quality_anomalies as
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

open_alerts as (
    select
        e.rule_id,
        e.identity_hash
    from alerts.episodes as e
    where e.ended_at is null
),

final as (
    select
        ct.rule_key as rule,  -- noqa: RF04
        ct.device_key as device,
        ct.metric_name as metric,
        ct.severity,
        ct.tenant_key as tenant,
        ct.flagged_count::double precision as value
    from counted as ct
    left join open_alerts as oa
        on
            ct.rule_id = oa.rule_id
            and oa.identity_hash = alerts.identity_hash(
                ct.rule_key, ct.device_key, ct.metric_name, ct.severity, ct.tenant_key
            )
    where
        ct.flagged_count >= ct.threshold
        or (ct.flagged_count >= ct.clear_threshold and oa.rule_id is not null)
)

select * from final;

comment on view alerts.condition_quality_anomalies is
'Alerting now: series with at least N non-good quality flags among their recent readings.';
comment on column alerts.condition_quality_anomalies.rule is 'Rule key (label).';
comment on column alerts.condition_quality_anomalies.device is 'Device key (label).';
comment on column alerts.condition_quality_anomalies.metric is 'Metric name (label).';
comment on column alerts.condition_quality_anomalies.severity is 'Rule severity (label).';
comment on column alerts.condition_quality_anomalies.tenant is 'Tenant key (label).';
comment on column alerts.condition_quality_anomalies.value is
'Non-good readings in the recent window (last_readings nominal intervals, or window).';

grant select on alerts.condition_quality_anomalies
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

-- Stale device: no reading for longer than max(max_age, interval_multiple x the device's
-- nominal interval); devices silent longer than ignore_after (retired) are left out.
-- Reads telemetry.devices.last_reading_at, kept by ingest: no readings scan at all.
create or replace view alerts.condition_stale_device as
with
targets as (
    select
        rd.rule_key,
        rd.severity,
        rd.device_key,
        rd.tenant_key,
        rd.last_reading_at,
        greatest(
            coalesce((rd.params ->> 'max_age')::interval, interval '5 minutes'),
            coalesce((rd.params ->> 'interval_multiple')::double precision, 0)
            * coalesce(rd.nominal_interval, interval '0')
        ) as max_age,
        (rd.params ->> 'ignore_after')::interval as ignore_after
    from _tsfleet.alert_rule_devices as rd
    where rd.condition_kind = 'stale_device' and rd.last_reading_at is not null
),

final as (
    select
        t.rule_key as rule,  -- noqa: RF04
        t.device_key as device,
        '*'::text as metric,
        t.severity,
        t.tenant_key as tenant,
        extract(epoch from alerts.evaluation_time() - t.last_reading_at)::double precision
            as value
    from targets as t
    where
        t.last_reading_at < alerts.evaluation_time() - t.max_age
        and (
            t.ignore_after is null
            or t.last_reading_at >= alerts.evaluation_time() - t.ignore_after
        )
)

select * from final;

comment on view alerts.condition_stale_device is
'Alerting now: devices that sent nothing for longer than the rule allows.';
comment on column alerts.condition_stale_device.rule is 'Rule key (label).';
comment on column alerts.condition_stale_device.device is 'Device key (label).';
comment on column alerts.condition_stale_device.metric is 'Always * (all metrics) (label).';
comment on column alerts.condition_stale_device.severity is 'Rule severity (label).';
comment on column alerts.condition_stale_device.tenant is 'Tenant key (label).';
comment on column alerts.condition_stale_device.value is 'Seconds since the last reading.';

grant select on alerts.condition_stale_device
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

-- High volume: readings per minute over the trailing `window` above `threshold`, per device
-- (params per = device) or summed over the rule's devices (per = fleet; device label *).
create or replace view alerts.condition_high_volume as
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
        rt.rule_key as rule,  -- noqa: RF04
        rt.device_key as device,
        '*'::text as metric,
        rt.severity,
        coalesce(rt.tenant_key, '*') as tenant,
        rt.per_minute as value
    from rates as rt
    where
        rt.per_minute > rt.threshold
        or (
            rt.per_minute > rt.clear_threshold
            and _tsfleet.alert_is_open(
                rt.rule_id,
                alerts.identity_hash(
                    rt.rule_key, rt.device_key, '*', rt.severity, coalesce(rt.tenant_key, '*')
                )
            )
        )
)

select * from final;

comment on view alerts.condition_high_volume is
'Alerting now: readings per minute above the rule threshold, per device or fleet-wide (*).';
comment on column alerts.condition_high_volume.rule is 'Rule key (label).';
comment on column alerts.condition_high_volume.device is 'Device key, or * fleet-wide (label).';
comment on column alerts.condition_high_volume.metric is 'Always * (all metrics) (label).';
comment on column alerts.condition_high_volume.severity is 'Rule severity (label).';
comment on column alerts.condition_high_volume.tenant is
'Tenant key; for fleet-wide rules the tenant of the rule''s devices, * when several (label).';
comment on column alerts.condition_high_volume.value is 'Readings per minute.';

grant select on alerts.condition_high_volume
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

-- Low asset health: the asset's latest health score (telemetry.assets, kept by processing)
-- is below `threshold`; scores older than max_age are not trusted.
create or replace view alerts.condition_low_asset_health as
with
targets as (
    select
        ra.rule_id,
        ra.rule_key,
        ra.severity,
        ra.asset_key,
        ra.tenant_key,
        ra.latest_health_score,
        (ra.params ->> 'threshold')::double precision as threshold,
        coalesce(
            (ra.params ->> 'clear_threshold')::double precision,
            (ra.params ->> 'threshold')::double precision
        ) as clear_threshold
    from _tsfleet.alert_rule_assets as ra
    where
        ra.condition_kind = 'low_asset_health'
        and ra.latest_health_score is not null
        and (
            ra.params ->> 'max_age' is null
            or ra.latest_health_at
            > alerts.evaluation_time() - (ra.params ->> 'max_age')::interval
        )
),

final as (
    select
        t.rule_key as rule,  -- noqa: RF04
        t.asset_key as asset,
        'health_score'::text as metric,
        t.severity,
        t.tenant_key as tenant,
        t.latest_health_score as value
    from targets as t
    where
        t.latest_health_score < t.threshold
        or (
            t.latest_health_score < t.clear_threshold
            and _tsfleet.alert_is_open(
                t.rule_id,
                alerts.identity_hash(
                    t.rule_key, t.asset_key, 'health_score', t.severity, t.tenant_key
                )
            )
        )
)

select * from final;

comment on view alerts.condition_low_asset_health is
'Alerting now: assets whose latest health score is below the rule threshold.';
comment on column alerts.condition_low_asset_health.rule is 'Rule key (label).';
comment on column alerts.condition_low_asset_health.asset is 'Asset key (label).';
comment on column alerts.condition_low_asset_health.metric is 'Always health_score (label).';
comment on column alerts.condition_low_asset_health.severity is 'Rule severity (label).';
comment on column alerts.condition_low_asset_health.tenant is 'Tenant key (label).';
comment on column alerts.condition_low_asset_health.value is 'Latest health score (0..100).';

grant select on alerts.condition_low_asset_health
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;
