-- Humidity drift: the mean over the trailing `window` (1 hour) differs by more than
-- `threshold` points from the device's baseline, the mean over the same window
-- `baseline_offset` earlier (24 h by default: the same time yesterday, so the daily cycle does
-- not count as drift). Means come from rollups.device_metrics_hourly (issue 5) when it exists:
-- complete hours, two rows per series instead of every reading, which keeps a 1,000-device
-- evaluation cheap; the runner calls rollups.refresh() before each evaluation. Without that
-- rollup the same means are computed from raw readings.
-- Couples with: rollups.device_metrics_hourly (bucket_start, device_id, metric_id, value_avg,
-- reading_count), tests/test_alert_conditions.py.
do $do$
begin
    if (
        select count(*) from information_schema.columns as c
        where
            c.table_schema = 'rollups' and c.table_name = 'device_metrics_hourly'
            and c.column_name in ('bucket_start', 'device_id', 'metric_id', 'value_avg',
                                  'reading_count')
    ) = 5 then
        create or replace view alerts.condition_humidity_drift as
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
                    and h.bucket_start < w.hour_end
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
                mn.rule_key as rule,
                mn.device_key as device,
                mn.metric_name as metric,
                mn.severity,
                mn.tenant_key as tenant,
                mn.trailing_mean - mn.baseline_mean as value
            from means as mn
            where
                abs(mn.trailing_mean - mn.baseline_mean) > mn.threshold
                or (
                    abs(mn.trailing_mean - mn.baseline_mean) > mn.clear_threshold
                    and _tsfleet.alert_is_open(
                        mn.rule_id,
                        alerts.identity_hash(
                            mn.rule_key, mn.device_key, mn.metric_name, mn.severity,
                            mn.tenant_key
                        )
                    )
                )
        )

        select * from final;
    else
        create or replace view alerts.condition_humidity_drift as
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
            cross join clock as ck
            inner join telemetry.metrics as m
                on m.metric_name = coalesce(rd.params ->> 'metric', 'humidity_pct')
            where rd.condition_kind = 'humidity_drift'
        ),

        windows as materialized (
            select distinct
                t.evaluated_at,
                t.trailing_window,
                t.baseline_offset,
                t.metric_id
            from targets as t
        ),

        -- Time-range scans of the two windows (readings' time-first index), then per series.
        recent_means as materialized (
            select
                w.trailing_window,
                w.baseline_offset,
                r.device_id,
                r.metric_id,
                avg(r.value) as mean_value
            from windows as w
            inner join telemetry.readings as r
                on
                    r.metric_id = w.metric_id
                    and r.recorded_at > w.evaluated_at - w.trailing_window
                    and r.recorded_at <= w.evaluated_at
            group by w.trailing_window, w.baseline_offset, r.device_id, r.metric_id
        ),

        baseline_means as materialized (
            select
                w.trailing_window,
                w.baseline_offset,
                r.device_id,
                r.metric_id,
                avg(r.value) as mean_value
            from windows as w
            inner join telemetry.readings as r
                on
                    r.metric_id = w.metric_id
                    and r.recorded_at > w.evaluated_at - w.baseline_offset - w.trailing_window
                    and r.recorded_at <= w.evaluated_at - w.baseline_offset
            group by w.trailing_window, w.baseline_offset, r.device_id, r.metric_id
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
                mn.rule_key as rule,
                mn.device_key as device,
                mn.metric_name as metric,
                mn.severity,
                mn.tenant_key as tenant,
                mn.trailing_mean - mn.baseline_mean as value
            from means as mn
            where
                abs(mn.trailing_mean - mn.baseline_mean) > mn.threshold
                or (
                    abs(mn.trailing_mean - mn.baseline_mean) > mn.clear_threshold
                    and _tsfleet.alert_is_open(
                        mn.rule_id,
                        alerts.identity_hash(
                            mn.rule_key, mn.device_key, mn.metric_name, mn.severity,
                            mn.tenant_key
                        )
                    )
                )
        )

        select * from final;
    end if;
end;
$do$;


comment on view alerts.condition_humidity_drift is
'Alerting now: devices whose trailing mean humidity moved more than the threshold from baseline.';
comment on column alerts.condition_humidity_drift.rule is 'Rule key (label).';
comment on column alerts.condition_humidity_drift.device is 'Device key (label).';
comment on column alerts.condition_humidity_drift.metric is 'Metric name (label).';
comment on column alerts.condition_humidity_drift.severity is 'Rule severity (label).';
comment on column alerts.condition_humidity_drift.tenant is 'Tenant key (label).';
comment on column alerts.condition_humidity_drift.value is
'Trailing mean minus baseline mean, in points (signed).';

grant select on alerts.condition_humidity_drift
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;
