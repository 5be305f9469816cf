-- Which rule applies to which device or asset at alerts.evaluation_time(), enabled or not
-- (callers choose the rules: evaluate the enabled ones, backtest any). Private: the signals
-- (sql/functions/51_alerts_signals.sql, 40_alerts_20_*signal*.sql) read these. Within one
-- condition kind, severity, metric and variant (params per), the most specific matching rule
-- wins for a target: device > asset > device_type > asset_type > tenant > all.
-- Couples with: alerts.rules (scope_kind values), docs/alerts.md (scope precedence), the
-- default metric of each condition view (repeated in the partition below).

create or replace view _tsfleet.alert_rule_devices as
with
rules as (
    select
        r.rule_id,
        r.rule_key,
        r.condition_kind,
        r.scope_kind,
        r.scope_key,
        r.params,
        r.severity,
        r.is_enabled
    from alerts.rules as r
    where
        r.condition_kind in (
            'low_battery', 'temperature_range', 'humidity_drift', 'quality_anomalies',
            'stale_device', 'high_volume', 'poor_completeness', 'threshold'
        )
),

links as (
    select
        l.device_id,
        a.asset_key,
        aty.asset_type_key
    from telemetry.device_asset_links as l
    inner join telemetry.assets as a on l.asset_id = a.asset_id
    inner join telemetry.asset_types as aty on a.asset_type_id = aty.asset_type_id
    where
        (l.valid_from is null or l.valid_from <= alerts.evaluation_time())
        and (l.valid_until is null or l.valid_until > alerts.evaluation_time())
),

matches as (
    select
        r.rule_id,
        r.rule_key,
        r.condition_kind,
        r.params,
        r.severity,
        r.is_enabled,
        d.device_id,
        d.device_key,
        d.device_type,
        d.nominal_interval,
        t.tenant_key,
        case r.scope_kind
            when 'device' then 5
            when 'asset' then 4
            when 'device_type' then 3
            when 'asset_type' then 2
            when 'tenant' then 1
            else 0
        end as specificity
    from rules as r
    cross join telemetry.devices as d
    inner join telemetry.tenants as t on d.tenant_id = t.tenant_id
    where
        r.scope_kind = 'all'
        or (r.scope_kind = 'tenant' and t.tenant_key = r.scope_key)
        or (r.scope_kind = 'device_type' and d.device_type = r.scope_key)
        or (r.scope_kind = 'device' and d.device_key = r.scope_key)
        or (
            r.scope_kind = 'asset' and exists (
                select from links as l
                where l.device_id = d.device_id and l.asset_key = r.scope_key
            )
        )
        or (
            r.scope_kind = 'asset_type' and exists (
                select from links as l
                where l.device_id = d.device_id and l.asset_type_key = r.scope_key
            )
        )
),

ranked as (
    select
        m.*,
        rank() over (
            -- enabled rules outrank each other only; a disabled rule (backtested) likewise
            partition by
                m.is_enabled, m.condition_kind, m.severity, m.device_id,
                -- the metric as the condition view resolves it (its default when omitted)
                coalesce(
                    m.params ->> 'metric',
                    case m.condition_kind
                        when 'low_battery' then 'StateOfChargePercentage'
                        when 'temperature_range' then 'temperature_c'
                        when 'humidity_drift' then 'humidity_pct'
                        else ''
                    end
                ),
                coalesce(m.params ->> 'per', 'device')
            order by m.specificity desc
        ) as precedence
    from matches as m
)

select
    rk.rule_id,
    rk.rule_key,
    rk.condition_kind,
    rk.params,
    rk.severity,
    rk.device_id,
    rk.device_key,
    rk.device_type,
    rk.nominal_interval,
    rk.tenant_key
from ranked as rk
where rk.precedence = 1;

comment on view _tsfleet.alert_rule_devices is
'Device rules and the devices each one covers (most specific scope wins).';

create or replace view _tsfleet.alert_rule_assets as
with
rules as (
    select
        r.rule_id,
        r.rule_key,
        r.condition_kind,
        r.scope_kind,
        r.scope_key,
        r.params,
        r.severity,
        r.is_enabled
    from alerts.rules as r
    where r.condition_kind in ('low_asset_health')
),

matches as (
    select
        r.rule_id,
        r.rule_key,
        r.condition_kind,
        r.params,
        r.severity,
        r.is_enabled,
        a.asset_id,
        a.asset_key,
        t.tenant_key,
        case r.scope_kind
            when 'asset' then 5
            when 'asset_type' then 2
            when 'tenant' then 1
            else 0
        end as specificity
    from rules as r
    cross join telemetry.assets as a
    inner join telemetry.asset_types as aty on a.asset_type_id = aty.asset_type_id
    inner join telemetry.tenants as t on a.tenant_id = t.tenant_id
    where
        r.scope_kind = 'all'
        or (r.scope_kind = 'tenant' and t.tenant_key = r.scope_key)
        or (r.scope_kind = 'asset_type' and aty.asset_type_key = r.scope_key)
        or (r.scope_kind = 'asset' and a.asset_key = r.scope_key)
),

ranked as (
    select
        m.*,
        rank() over (
            partition by m.is_enabled, m.condition_kind, m.severity, m.asset_id
            order by m.specificity desc
        ) as precedence
    from matches as m
)

select
    rk.rule_id,
    rk.rule_key,
    rk.condition_kind,
    rk.params,
    rk.severity,
    rk.asset_id,
    rk.asset_key,
    rk.tenant_key
from ranked as rk
where rk.precedence = 1;

comment on view _tsfleet.alert_rule_assets is
'Asset rules and the assets each one covers (most specific scope wins).';
