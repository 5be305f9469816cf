-- Alert state for people: what is open now, and the history of every episode (who, what,
-- when, how long). Couples with: alerts.episodes, alerts.acknowledgements, alerts.silences,
-- `tsfleet alerts list|history`, the Grafana fleet dashboard.

create or replace view alerts.active_alerts as
with
acks as (
    select distinct on (a.episode_id)
        a.episode_id,
        a.acknowledged_by,
        a.acknowledged_at
    from alerts.acknowledgements as a
    order by a.episode_id asc, a.acknowledged_at desc
),

final as (
    select
        e.episode_id,
        r.rule_key as rule,  -- noqa: RF04
        e.labels ->> 'severity' as severity,
        e.state,
        coalesce(e.labels ->> 'device', e.labels ->> 'asset') as subject,
        e.labels ->> 'metric' as metric,
        e.labels ->> 'tenant' as tenant,
        e.value,
        e.started_at,
        e.fired_at,
        e.cleared_at,
        e.last_evaluated_at,
        ak.acknowledged_by,
        ak.acknowledged_at,
        alerts.matching_silence(
            r.labels || e.labels || jsonb_build_object('alertname', r.rule_key), now()
        ) is not null as is_silenced,
        e.labels
    from alerts.episodes as e
    inner join alerts.rules as r on e.rule_id = r.rule_id
    left join acks as ak on e.episode_id = ak.episode_id
    where e.ended_at is null
)

select * from final;

comment on view alerts.active_alerts is
'Open alert episodes (pending and firing) with acknowledgement and silence status.';
comment on column alerts.active_alerts.episode_id is 'Episode id (for `tsfleet alerts ack`).';
comment on column alerts.active_alerts.rule is 'Rule key.';
comment on column alerts.active_alerts.severity is 'critical, warning or info.';
comment on column alerts.active_alerts.state is 'pending or firing.';
comment on column alerts.active_alerts.subject is 'Device or asset key (* for fleet-wide).';
comment on column alerts.active_alerts.metric is 'Metric (* when the rule spans metrics).';
comment on column alerts.active_alerts.tenant is 'Tenant key.';
comment on column alerts.active_alerts.value is 'Value at the last evaluation.';
comment on column alerts.active_alerts.started_at is 'When the condition started to hold.';
comment on column alerts.active_alerts.fired_at is 'When the alert fired (NULL while pending).';
comment on column alerts.active_alerts.cleared_at is
'When the condition cleared while firing (keep_firing_for running), else NULL.';
comment on column alerts.active_alerts.last_evaluated_at is 'Last evaluation time.';
comment on column alerts.active_alerts.acknowledged_by is 'Who acknowledged it last, if anyone.';
comment on column alerts.active_alerts.acknowledged_at is 'When it was last acknowledged.';
comment on column alerts.active_alerts.is_silenced is 'A silence mutes it now.';
comment on column alerts.active_alerts.labels is 'The full label set.';

grant select on alerts.active_alerts to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

create or replace view alerts.episode_history as
with
acks as (
    select
        a.episode_id,
        string_agg(a.acknowledged_by, ', ' order by a.acknowledged_at) as acknowledged_by,
        min(a.acknowledged_at) as first_acknowledged_at
    from alerts.acknowledgements as a
    group by a.episode_id
),

sent as (
    select
        n.episode_id,
        count(*) as notification_count
    from alerts.notifications as n
    group by n.episode_id
),

final as (
    select
        e.episode_id,
        r.rule_key as rule,  -- noqa: RF04
        r.condition_kind,
        e.labels ->> 'severity' as severity,
        coalesce(e.labels ->> 'device', e.labels ->> 'asset') as subject,
        e.labels ->> 'metric' as metric,
        e.labels ->> 'tenant' as tenant,
        e.state,
        e.value as last_value,
        e.started_at,
        e.fired_at,
        e.ended_at,
        case when e.fired_at is not null then coalesce(e.ended_at, now()) - e.fired_at end
            as firing_duration,
        coalesce(e.ended_at, now()) - e.started_at as total_duration,
        ak.acknowledged_by,
        ak.first_acknowledged_at,
        coalesce(st.notification_count, 0) as notification_count
    from alerts.episodes as e
    inner join alerts.rules as r on e.rule_id = r.rule_id
    left join acks as ak on e.episode_id = ak.episode_id
    left join sent as st on e.episode_id = st.episode_id
)

select * from final;

comment on view alerts.episode_history is
'Every alert episode: rule, subject, when it started, fired and ended, for how long, who '
'acknowledged it and how many notifications it queued. Filter on started_at.';
comment on column alerts.episode_history.episode_id is 'Episode id.';
comment on column alerts.episode_history.rule is 'Rule key.';
comment on column alerts.episode_history.condition_kind is 'Condition kind of the rule.';
comment on column alerts.episode_history.severity is 'critical, warning or info.';
comment on column alerts.episode_history.subject is 'Device or asset key (* fleet-wide).';
comment on column alerts.episode_history.metric is 'Metric (* when the rule spans metrics).';
comment on column alerts.episode_history.tenant is 'Tenant key.';
comment on column alerts.episode_history.state is 'pending, firing, resolved or cancelled.';
comment on column alerts.episode_history.last_value is 'Value at the last evaluation.';
comment on column alerts.episode_history.started_at is 'When the condition started to hold.';
comment on column alerts.episode_history.fired_at is 'When it fired (NULL if it never did).';
comment on column alerts.episode_history.ended_at is 'When it resolved or was cancelled.';
comment on column alerts.episode_history.firing_duration is 'How long it fired (so far).';
comment on column alerts.episode_history.total_duration is 'From start to end (so far).';
comment on column alerts.episode_history.acknowledged_by is 'Who acknowledged it.';
comment on column alerts.episode_history.first_acknowledged_at is 'First acknowledgement.';
comment on column alerts.episode_history.notification_count is 'Notifications queued.';

grant select on alerts.episode_history to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;
