-- Poor data completeness: a series delivered less than `threshold` percent of its expected
-- readings in the last complete hour before alerts.evaluation_time().
-- Sources, chosen per rule by params.source:
--   rollup (default): readings counted by rollups.device_metrics_hourly (issue 5; refreshed by
--     the runner before each evaluation) or, without that rollup, from raw readings of the
--     hour; expected = 1 hour / the device's nominal_interval (devices without one are not
--     judged). Cheap at fleet scale and follows the evaluation time.
--   quality: quality.completeness_hourly (issue 5's data-quality view: also learned
--     intervals). That view counts hours up to now(), so it ignores an explicit evaluation
--     time, and it costs more; it is read only when a rule asks for it (one-time filter).
-- Couples with: rollups.device_metrics_hourly (bucket_start, device_id, metric_id,
-- reading_count), quality.completeness_hourly (device_id, metric_name, hour_start,
-- completeness_pct).
do $do$
declare
    counted_sql text;
    quality_sql text := '';
begin
    if (
        select count(*) from information_schema.columns as c
        where
            c.table_schema = 'rollups' and c.table_name = 'device_metrics_hourly'
            and c.column_name in ('bucket_start', 'device_id', 'metric_id', 'reading_count')
    ) = 4 then
        counted_sql := $sql$
            select h.device_id, h.metric_id, h.reading_count::double precision as received
            from rollups.device_metrics_hourly as h
            where h.bucket_start = (select ck.hour_start from clock as ck)
        $sql$;
    else
        counted_sql := $sql$
            select r.device_id, r.metric_id, count(*)::double precision as received
            from telemetry.readings as r
            where
                r.recorded_at >= (select ck.hour_start from clock as ck)
                and r.recorded_at < (select ck.hour_start from clock as ck) + interval '1 hour'
            group by r.device_id, r.metric_id
        $sql$;
    end if;
    if (
        select count(*) from information_schema.columns as c
        where
            c.table_schema = 'quality' and c.table_name = 'completeness_hourly'
            and c.column_name in ('device_id', 'metric_name', 'hour_start', 'completeness_pct')
    ) = 4 then
        quality_sql := $sql$
            union all
            select
                t.rule_id, t.rule_key, t.severity, t.device_key, t.tenant_key,
                t.threshold, t.clear_threshold,
                q.metric_name,
                q.completeness_pct::double precision as completeness_pct
            from targets as t
            inner join quality.completeness_hourly as q on t.device_id = q.device_id
            where
                t.source = 'quality'
                and q.hour_start = (select ck.hour_start from clock as ck)
                and (select count(*) from targets as qt where qt.source = 'quality') > 0
        $sql$;
    end if;
    execute format(
        $sql$
        create or replace view alerts.condition_poor_completeness as
        with
        clock as materialized (
            select
                pg_catalog.date_trunc('hour', alerts.evaluation_time()) - interval '1 hour'
                    as hour_start
        ),
        targets as materialized (
            select
                rd.rule_id, rd.rule_key, rd.severity, rd.device_id, rd.device_key,
                rd.tenant_key, rd.nominal_interval,
                coalesce(rd.params ->> 'source', 'rollup') as source,
                (rd.params ->> 'threshold')::double precision as threshold,
                coalesce(
                    (rd.params ->> 'clear_threshold')::double precision,
                    (rd.params ->> 'threshold')::double precision
                ) as clear_threshold
            from _tsfleet.alert_rule_devices as rd
            where rd.condition_kind = 'poor_completeness'
        ),
        counted as materialized (%s),
        measured as (
            select
                t.rule_id, t.rule_key, t.severity, t.device_key, t.tenant_key,
                t.threshold, t.clear_threshold,
                m.metric_name,
                least(
                    100.0,
                    100.0 * c.received
                    / (extract(epoch from interval '1 hour') / extract(epoch from t.nominal_interval))
                ) as completeness_pct
            from targets as t
            inner join counted as c on t.device_id = c.device_id
            inner join telemetry.metrics as m on c.metric_id = m.metric_id
            where t.source = 'rollup' and t.nominal_interval is not null
            %s
        ),
        final as (
            select
                ms.rule_key as rule,
                ms.device_key as device,
                ms.metric_name as metric,
                ms.severity,
                ms.tenant_key as tenant,
                ms.completeness_pct as value
            from measured as ms
            where
                ms.completeness_pct < ms.threshold
                or (
                    ms.completeness_pct < ms.clear_threshold
                    and _tsfleet.alert_is_open(
                        ms.rule_id,
                        alerts.identity_hash(
                            ms.rule_key, ms.device_key, ms.metric_name, ms.severity,
                            ms.tenant_key
                        )
                    )
                )
        )
        select * from final
        $sql$,
        counted_sql,
        quality_sql
    );
end;
$do$;

comment on view alerts.condition_poor_completeness is
'Alerting now: series that delivered less than the threshold percent of expected readings '
'in the last complete hour.';
comment on column alerts.condition_poor_completeness.rule is 'Rule key (label).';
comment on column alerts.condition_poor_completeness.device is 'Device key (label).';
comment on column alerts.condition_poor_completeness.metric is 'Metric name (label).';
comment on column alerts.condition_poor_completeness.severity is 'Rule severity (label).';
comment on column alerts.condition_poor_completeness.tenant is 'Tenant key (label).';
comment on column alerts.condition_poor_completeness.value is
'Received / expected readings in the last complete hour, percent.';

grant select on alerts.condition_poor_completeness
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

-- Every condition with what alerts.evaluate() needs: rule id, identity and label set.
-- Couples with: every alerts.condition_* view (add a new one here too).
create or replace view _tsfleet.alert_conditions as
with
device_conditions as (
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_low_battery as c
    union all
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_temperature_range as c
    union all
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_humidity_drift as c
    union all
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_quality_anomalies as c
    union all
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_stale_device as c
    union all
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_high_volume as c
    union all
    select
        c.rule,
        c.device as subject,
        'device' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_poor_completeness as c
    union all
    select
        c.rule,
        c.asset as subject,
        'asset' as subject_label,
        c.metric,
        c.severity,
        c.tenant,
        c.value
    from alerts.condition_low_asset_health as c
),

final as (
    select
        r.rule_id,
        alerts.identity_hash(dc.rule, dc.subject, dc.metric, dc.severity, dc.tenant)
            as identity_hash,
        jsonb_build_object(
            'rule', dc.rule, dc.subject_label, dc.subject, 'metric', dc.metric,
            'severity', dc.severity, 'tenant', dc.tenant
        ) as labels,
        dc.value
    from device_conditions as dc
    inner join alerts.rules as r on dc.rule = r.rule_key
)

select * from final;

comment on view _tsfleet.alert_conditions is
'Every alert condition holding now, with rule id, identity hash and label set (for evaluate).';

-- alerts.evaluate() runs as its caller (the runner's role).
grant select on _tsfleet.alert_conditions to tsfleet_ingest;
