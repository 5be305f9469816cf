-- What `tsfleet alerts list`, `alerts history` and `alerts rules` print, column by column and
-- in their order (issue 15: no business SQL in Python strings). The command only selects from
-- these. Couples with: loader/commands/alerts.py (prints every column, in this order; --json
-- uses the names), alerts.active_alerts and alerts.episode_history (40_alerts_40_episodes.sql),
-- alerts.rules (migration 0060).

create or replace view alerts.open_alert_summaries as
with
final as (
    select
        aa.episode_id,
        aa.rule,
        aa.severity,
        aa.state,
        aa.subject,
        aa.metric,
        aa.tenant,
        aa.value,
        aa.started_at,
        aa.fired_at,
        aa.acknowledged_by,
        aa.is_silenced
    from alerts.active_alerts as aa
)

select * from final
order by started_at desc, episode_id desc;

comment on view alerts.open_alert_summaries is
'One line per open alert (pending or firing), newest first: what `tsfleet alerts list` '
'prints. alerts.active_alerts has every column.';
comment on column alerts.open_alert_summaries.episode_id is
'Episode id (for `tsfleet alerts ack`).';
comment on column alerts.open_alert_summaries.rule is 'Rule key.';
comment on column alerts.open_alert_summaries.severity is 'critical, warning or info.';
comment on column alerts.open_alert_summaries.state is 'pending or firing.';
comment on column alerts.open_alert_summaries.subject is
'Device or asset key (* for fleet-wide).';
comment on column alerts.open_alert_summaries.metric is
'Metric (* when the rule spans metrics).';
comment on column alerts.open_alert_summaries.tenant is 'Tenant key.';
comment on column alerts.open_alert_summaries.value is 'Value at the last evaluation.';
comment on column alerts.open_alert_summaries.started_at is
'When the condition started to hold.';
comment on column alerts.open_alert_summaries.fired_at is
'When the alert fired (NULL while pending).';
comment on column alerts.open_alert_summaries.acknowledged_by is
'Who acknowledged it last, if anyone.';
comment on column alerts.open_alert_summaries.is_silenced is 'A silence mutes it now.';

grant select on alerts.open_alert_summaries to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;


-- Here, not in sql/functions: a SQL function's body is checked when it is created, and
-- alerts.episode_history (a view) does not exist yet while sql/functions is applied.
-- Runs as the caller (no security definer): whoever may read alerts.episode_history may call it.
create or replace function alerts.list_episodes(
    p_since interval,
    p_rule_key text default null
)
returns table (
    episode_id bigint,
    rule text,
    severity text,
    subject text,
    metric text,
    state text,
    started_at timestamptz,
    fired_at timestamptz,
    ended_at timestamptz,
    firing_duration interval,
    acknowledged_by text,
    notification_count bigint
)
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select
        eh.episode_id,
        eh.rule,
        eh.severity,
        eh.subject,
        eh.metric,
        eh.state,
        eh.started_at,
        eh.fired_at,
        eh.ended_at,
        eh.firing_duration,
        eh.acknowledged_by,
        eh.notification_count
    from alerts.episode_history as eh
    where
        eh.started_at >= pg_catalog.now() - p_since
        and (p_rule_key is null or eh.rule = p_rule_key)
    order by eh.started_at desc, eh.episode_id desc;
$$;

comment on function alerts.list_episodes(interval, text) is
'Alert episodes that started within p_since of now (of rule p_rule_key only, when given), '
'newest first: what `tsfleet alerts history` prints. alerts.episode_history has every column.';

grant execute on function alerts.list_episodes(interval, text)
to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;


create or replace view alerts.rule_settings as
with
final as (
    select
        r.rule_key,
        r.condition_kind,
        r.scope_kind,
        r.scope_key,
        r.severity,
        r.for_interval,
        r.keep_firing_for,
        r.is_enabled,
        r.params
    from alerts.rules as r
)

select * from final
order by rule_key asc;

comment on view alerts.rule_settings is
'The alert rules'' settings, by rule key: what `tsfleet alerts rules` prints (change them in '
'alerts.rules).';
comment on column alerts.rule_settings.rule_key is
'Stable rule name; the `rule` label of every alert the rule raises.';
comment on column alerts.rule_settings.condition_kind is
'Which condition view evaluates the rule (alerts.condition_<kind>).';
comment on column alerts.rule_settings.scope_kind is
'What the rule covers: all, tenant, device_type, device, asset_type or asset.';
comment on column alerts.rule_settings.scope_key is
'tenant_key, device_type, device_key, asset_type_key or asset_key; NULL for scope all.';
comment on column alerts.rule_settings.severity is 'critical, warning or info.';
comment on column alerts.rule_settings.for_interval is
'Pending period: the condition must hold this long before the alert fires.';
comment on column alerts.rule_settings.keep_firing_for is
'A firing alert resolves only after its condition has been clear for this long.';
comment on column alerts.rule_settings.is_enabled is 'The rule is evaluated.';
comment on column alerts.rule_settings.params is
'Thresholds and windows of the condition (keys per condition kind: docs/alerts.md).';

-- As alerts.rules itself (migration 0060): not Grafana.
grant select on alerts.rule_settings to tsfleet_analyst, tsfleet_ingest;
