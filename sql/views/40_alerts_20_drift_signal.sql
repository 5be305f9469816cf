-- Humidity drift: the mean over the trailing `window` (1 hour) differs by more than
-- `threshold` points from the device's baseline, the mean over the same window
-- `baseline_offset` earlier (24 h by default: the same time yesterday, so the daily cycle does
-- not count as drift). Means come from rollups.device_metrics_hourly: complete hours before
-- the evaluation time only (never a reading after it), two rows per series instead of every
-- reading, which keeps a 1,000-device evaluation cheap; the runner calls rollups.refresh()
-- before each evaluation.
-- Couples with: rollups.device_metrics_hourly (bucket_start, device_id, metric_id, value_avg,
-- reading_count), tests/test_alert_conditions.py.
create or replace view _tsfleet.signal_humidity_drift as
with
clock as materialized (
    select pg_catalog.date_trunc('hour', alerts.evaluation_time()) as hour_end
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
    where rd.condition_kind = 'humidity_drift'
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

comment on view _tsfleet.signal_humidity_drift is
'humidity_drift at alerts.evaluation_time(): trailing mean minus the baseline mean of the '
'same window baseline_offset earlier, complete hours only.';
comment on column _tsfleet.signal_humidity_drift.rule_id is 'The rule (alerts.rules).';
comment on column _tsfleet.signal_humidity_drift.subject is 'Device key.';
comment on column _tsfleet.signal_humidity_drift.metric is 'Metric name.';
comment on column _tsfleet.signal_humidity_drift.tenant is 'Tenant key.';
comment on column _tsfleet.signal_humidity_drift.fires is 'The firing threshold is crossed.';
comment on column _tsfleet.signal_humidity_drift.holds is
'The clear threshold is crossed (an open alert holds).';
comment on column _tsfleet.signal_humidity_drift.value is
'Trailing mean minus baseline mean, in points (signed).';
comment on column _tsfleet.signal_humidity_drift.is_low is
'Always false: drift is judged by its size.';
