-- Latest-value conditions: low battery and temperature out of range. The latest value of a
-- series is value_last of its newest hourly bucket in rollups.device_metrics_hourly (issue 5)
-- that starts within `lookback` (rounded out to whole hours) and not after the evaluation
-- time: a handful of rows per series, whatever the history, and no per-series lookups in
-- telemetry.readings (which keeps only its time-first index, for ingest speed). The runner
-- refreshes the recent buckets before each evaluation (the current hour included). Without
-- that rollup, the latest reading comes from a time-range scan of the lookback window.
-- Couples with: rollups.device_metrics_hourly (bucket_start, device_id, metric_id,
-- value_last), migration 0006 (readings indexes), loader/alerts/runner.py (refresh).
do $do$
declare
    latest_sql text;
    view_sql text;
begin
    if (
        select count(*) from information_schema.columns as c
        where
            c.table_schema = 'rollups' and c.table_name = 'device_metrics_hourly'
            and c.column_name in ('bucket_start', 'device_id', 'metric_id', 'value_last')
    ) = 4 then
        latest_sql := $sql$
            select distinct on (h.device_id, h.metric_id)
                h.device_id,
                h.metric_id,
                h.bucket_start as latest_at,
                h.value_last as value
            from rollups.device_metrics_hourly as h
            cross join window_bounds as wb
            where
                h.metric_id = any(wb.metric_ids)
                and h.bucket_start >= pg_catalog.date_trunc('hour', wb.oldest)
                and h.bucket_start <= wb.evaluated_at
            order by h.device_id, h.metric_id, h.bucket_start desc
        $sql$;
    else
        latest_sql := $sql$
            select distinct on (r.device_id, r.metric_id)
                r.device_id,
                r.metric_id,
                r.recorded_at as latest_at,
                r.value
            from telemetry.readings as r
            cross join window_bounds as wb
            where
                r.metric_id = any(wb.metric_ids)
                and r.recorded_at > wb.oldest
                and r.recorded_at <= wb.evaluated_at
            order by r.device_id, r.metric_id, r.recorded_at desc
        $sql$;
    end if;

    -- %1$s: condition kind, %2$s: default metric, %3$s: default lookback,
    -- %4$s: threshold columns, %5$s: firing test, %6$s: holding test, %7$s: latest source.
    view_sql := $sql$
        create or replace view alerts.condition_%1$s as
        with
        clock as materialized (
            select alerts.evaluation_time() as evaluated_at
        ),
        targets as materialized (
            select
                rd.rule_id, rd.rule_key, rd.severity, rd.device_id, rd.device_key,
                rd.tenant_key, m.metric_id, m.metric_name, ck.evaluated_at,
                coalesce((rd.params ->> 'lookback')::interval, interval '%3$s') as lookback,
                %4$s
            from _tsfleet.alert_rule_devices as rd
            cross join clock as ck
            inner join telemetry.metrics as m
                on m.metric_name = coalesce(rd.params ->> 'metric', '%2$s')
            where rd.condition_kind = '%1$s'
        ),
        window_bounds as (
            select
                max(t.evaluated_at) as evaluated_at,
                min(t.evaluated_at - t.lookback) as oldest,
                array_agg(distinct t.metric_id) as metric_ids
            from targets as t
            having count(*) > 0
        ),
        latest as materialized (%7$s),
        valued as (
            select t.*, l.value
            from targets as t
            inner join latest as l
                on t.device_id = l.device_id and t.metric_id = l.metric_id
            where l.latest_at >= pg_catalog.date_trunc('hour', t.evaluated_at - t.lookback)
        ),
        final as (
            select
                v.rule_key as rule,
                v.device_key as device,
                v.metric_name as metric,
                v.severity,
                v.tenant_key as tenant,
                v.value
            from valued as v
            where
                (%5$s)
                or (
                    (%6$s)
                    and _tsfleet.alert_is_open(
                        v.rule_id,
                        alerts.identity_hash(
                            v.rule_key, v.device_key, v.metric_name, v.severity, v.tenant_key
                        )
                    )
                )
        )
        select * from final
    $sql$;

    execute format(
        view_sql, 'low_battery', 'StateOfChargePercentage', '1 hour',
        $sql$
        (rd.params ->> 'threshold')::double precision as threshold,
        coalesce(
            (rd.params ->> 'clear_threshold')::double precision,
            (rd.params ->> 'threshold')::double precision
        ) as clear_threshold
        $sql$,
        'v.value < v.threshold',
        'v.value < v.clear_threshold',
        latest_sql
    );
    execute format(
        view_sql, 'temperature_range', 'temperature_c', '2 hours',
        $sql$
        (rd.params ->> 'min')::double precision as min_value,
        (rd.params ->> 'max')::double precision as max_value,
        coalesce(
            (rd.params ->> 'clear_min')::double precision, (rd.params ->> 'min')::double precision
        ) as clear_min,
        coalesce(
            (rd.params ->> 'clear_max')::double precision, (rd.params ->> 'max')::double precision
        ) as clear_max
        $sql$,
        'v.value < v.min_value or v.value > v.max_value',
        'v.value < v.clear_min or v.value > v.clear_max',
        latest_sql
    );
end;
$do$;

comment on view alerts.condition_low_battery is
'Alerting now: devices whose latest state of charge is below the rule threshold.';
comment on column alerts.condition_low_battery.rule is 'Rule key (label).';
comment on column alerts.condition_low_battery.device is 'Device key (label).';
comment on column alerts.condition_low_battery.metric is 'Metric name (label).';
comment on column alerts.condition_low_battery.severity is 'Rule severity (label).';
comment on column alerts.condition_low_battery.tenant is 'Tenant key (label).';
comment on column alerts.condition_low_battery.value is 'Latest state of charge, percent.';

grant select on alerts.condition_low_battery
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

comment on view alerts.condition_temperature_range is
'Alerting now: devices whose latest temperature is outside the rule''s [min, max].';
comment on column alerts.condition_temperature_range.rule is 'Rule key (label).';
comment on column alerts.condition_temperature_range.device is 'Device key (label).';
comment on column alerts.condition_temperature_range.metric is 'Metric name (label).';
comment on column alerts.condition_temperature_range.severity is 'Rule severity (label).';
comment on column alerts.condition_temperature_range.tenant is 'Tenant key (label).';
comment on column alerts.condition_temperature_range.value is 'Latest temperature.';

grant select on alerts.condition_temperature_range
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;
