-- Alert condition views: the Grafana contract. alerts.conditions has every condition holding at
-- alerts.evaluation_time() (now(), unless alerts.evaluate() set it), one row per label set;
-- alerts.condition_<kind> is the same for one kind in Grafana's numeric-table shape: text
-- labels (rule, device or asset, metric, severity, tenant) and exactly one numeric `value`.
-- They show the newest value of each series (a first evaluation's view; the runner's
-- alerts.evaluate() also sees every reading since its previous evaluation) and hold open
-- alerts until their clear threshold (hysteresis). One implementation: they read
-- _tsfleet.alert_signals(), as alerts.evaluate() and alerts.backtest() do.
-- Couples with: tests/test_alert_grafana.py, grafana/provisioning/alerting/tsfleet-alerts.yaml,
-- alerts.rules (condition kinds).

create or replace view alerts.conditions as
with
clock as materialized (
    select alerts.evaluation_time() as evaluated_at
),

enabled as materialized (
    select array_agg(r.rule_id) as rule_ids
    from alerts.rules as r
    where r.is_enabled
),

signals as (
    select s.*
    from clock as ck
    cross join enabled as e
    cross join lateral _tsfleet.alert_signals(
        e.rule_ids, ck.evaluated_at, ck.evaluated_at
    ) as s
),

final as (
    select
        r.rule_key as rule,  -- noqa: RF04
        r.condition_kind as kind,
        s.subject_label,
        s.subject,
        s.metric,
        r.severity,
        s.tenant,
        s.value
    from signals as s
    inner join alerts.rules as r on s.rule_id = r.rule_id
    where
        s.fires
        or (
            s.holds
            and _tsfleet.alert_is_open(
                s.rule_id,
                alerts.identity_hash(r.rule_key, s.subject, s.metric, r.severity, s.tenant)
            )
        )
)

select * from final;

comment on view alerts.conditions is
'Every alert condition holding now (at alerts.evaluation_time()), one row per label set.';
comment on column alerts.conditions.rule is 'Rule key (label).';
comment on column alerts.conditions.kind is 'Condition kind of the rule.';
comment on column alerts.conditions.subject_label is 'device or asset: what subject names.';
comment on column alerts.conditions.subject is 'Device or asset key (label).';
comment on column alerts.conditions.metric is 'Metric name, or * for all metrics (label).';
comment on column alerts.conditions.severity is 'Rule severity (label).';
comment on column alerts.conditions.tenant is 'Tenant key (label).';
comment on column alerts.conditions.value is 'Value of the condition (see docs/alerts.md).';

grant select on alerts.conditions to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

-- One view per condition kind, generated: the same query restricted to the kind's rules (so
-- Grafana's query for one kind evaluates only that kind).
do $do$
declare
    kind record;
begin
    for kind in
        select k.kind_name, k.subject_column, k.value_note
        from (
            values
            ('low_battery', 'device', 'Lowest state of charge, percent.'),
            ('temperature_range', 'device', 'Temperature outside the range, or the newest.'),
            ('threshold', 'device', 'Worst value past the threshold.'),
            ('humidity_drift', 'device', 'Trailing mean minus baseline mean, in points.'),
            ('quality_anomalies', 'device', 'Non-good readings in the recent window.'),
            ('stale_device', 'device', 'Seconds since the newest reading.'),
            ('high_volume', 'device', 'Readings per minute.'),
            ('poor_completeness', 'device', 'Received / expected readings, percent.'),
            ('low_asset_health', 'asset', 'Health score (0..100).')
        ) as k (kind_name, subject_column, value_note)
    loop
        execute format(
            $sql$
            create or replace view alerts.%1$I as
            with
            clock as materialized (
                select alerts.evaluation_time() as evaluated_at
            ),
            kind_rules as materialized (
                select array_agg(r.rule_id) as rule_ids
                from alerts.rules as r
                where r.is_enabled and r.condition_kind = %2$L
            ),
            signals as (
                select s.*
                from clock as ck
                cross join kind_rules as kr
                cross join lateral _tsfleet.alert_signals(
                    kr.rule_ids, ck.evaluated_at, ck.evaluated_at
                ) as s
                where kr.rule_ids is not null
            )
            select
                r.rule_key as rule,
                s.subject as %3$I,
                s.metric,
                r.severity,
                s.tenant,
                s.value
            from signals as s
            inner join alerts.rules as r on s.rule_id = r.rule_id
            where
                s.fires
                or (
                    s.holds
                    and _tsfleet.alert_is_open(
                        s.rule_id,
                        alerts.identity_hash(
                            r.rule_key, s.subject, s.metric, r.severity, s.tenant
                        )
                    )
                )
            $sql$,
            'condition_' || kind.kind_name, kind.kind_name, kind.subject_column
        );
        execute format(
            'comment on view alerts.%I is %L', 'condition_' || kind.kind_name,
            'Alerting now: ' || kind.kind_name || ' conditions (Grafana''s numeric-table shape).'
        );
        execute format(
            'comment on column alerts.%I.rule is %L', 'condition_' || kind.kind_name,
            'Rule key (label).'
        );
        execute format(
            'comment on column alerts.%I.%I is %L', 'condition_' || kind.kind_name,
            kind.subject_column, initcap(kind.subject_column) || ' key (label).'
        );
        execute format(
            'comment on column alerts.%I.metric is %L', 'condition_' || kind.kind_name,
            'Metric name, or * for all metrics (label).'
        );
        execute format(
            'comment on column alerts.%I.severity is %L', 'condition_' || kind.kind_name,
            'Rule severity (label).'
        );
        execute format(
            'comment on column alerts.%I.tenant is %L', 'condition_' || kind.kind_name,
            'Tenant key (label).'
        );
        execute format(
            'comment on column alerts.%I.value is %L', 'condition_' || kind.kind_name,
            kind.value_note
        );
        execute format(
            'grant select on alerts.%I to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest',
            'condition_' || kind.kind_name
        );
    end loop;
end;
$do$;
