-- Delivery of every notification to every sink, with one state per row, for operators and
-- `tsfleet alerts deliveries [--failed]`: what is queued, being sent, retrying, delivered,
-- superseded or dead (a dead letter, with the receiver's status and answer).
-- Couples with: alerts.deliveries (0066, 0076), sql/functions/54_alerts_delivery.sql.

create or replace view alerts.delivery_status as
with
final as (
    select
        d.notification_id,
        d.sink_name,
        n.episode_id,
        r.rule_key as rule,  -- noqa: RF04
        n.transition,
        case
            when d.delivered_at is not null then 'delivered'
            when d.dead_at is not null then 'dead'
            when d.superseded_at is not null then 'superseded'
            when d.lease_until >= clock_timestamp() then 'sending'
            when d.attempts > 0 then 'retrying'
            else 'queued'
        end as state,
        d.attempts,
        d.last_status,
        d.last_error,
        d.last_response,
        d.dead_reason,
        d.created_at,
        d.next_attempt_at,
        d.delivered_at,
        d.dead_at,
        d.superseded_at,
        n.payload -> 'labels' as labels
    from alerts.deliveries as d
    inner join alerts.notifications as n on d.notification_id = n.notification_id
    inner join alerts.rules as r on n.rule_id = r.rule_id
)

select * from final;

comment on view alerts.delivery_status is
'Each notification''s delivery to each sink: state (queued, sending, retrying, delivered, '
'superseded, dead), attempts, the last HTTP status, error and answer. Dead letters: state '
'= ''dead''.';
comment on column alerts.delivery_status.notification_id is 'Notification id.';
comment on column alerts.delivery_status.sink_name is 'Sink (e.g. webhook http://...).';
comment on column alerts.delivery_status.episode_id is 'Alert episode.';
comment on column alerts.delivery_status.rule is 'Rule key.';
comment on column alerts.delivery_status.transition is 'firing, resolved or repeat.';
comment on column alerts.delivery_status.state is
'queued, sending (leased now), retrying, delivered, superseded (a later notification of the '
'episode was delivered first) or dead (given up).';
comment on column alerts.delivery_status.attempts is 'Send attempts so far.';
comment on column alerts.delivery_status.last_status is 'HTTP status of the last answer.';
comment on column alerts.delivery_status.last_error is 'Error of the last failed attempt.';
comment on column alerts.delivery_status.last_response is 'Excerpt of the last answer body.';
comment on column alerts.delivery_status.dead_reason is 'permanent or max_age (dead only).';
comment on column alerts.delivery_status.created_at is 'When it was queued for the sink.';
comment on column alerts.delivery_status.next_attempt_at is 'Earliest next attempt.';
comment on column alerts.delivery_status.delivered_at is 'When the sink confirmed it.';
comment on column alerts.delivery_status.dead_at is 'When it was given up.';
comment on column alerts.delivery_status.superseded_at is 'When it was superseded.';
comment on column alerts.delivery_status.labels is 'Labels of the notification.';

grant select on alerts.delivery_status to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;

-- What the runner re-sends to Alertmanager every --resend-interval (as Prometheus re-sends
-- its firing alerts): the newest firing or repeat payload of every firing episode that no
-- silence mutes now. Couples with: loader/alerts/runner.py (_resend_firing).
create or replace view alerts.firing_payloads as
with
newest as (
    select distinct on (n.episode_id)
        n.episode_id,
        n.notification_id,
        n.payload,
        n.silence_id
    from alerts.notifications as n
    inner join alerts.episodes as e on n.episode_id = e.episode_id
    where e.state = 'firing' and n.transition in ('firing', 'repeat')
    order by n.episode_id asc, n.notification_id desc
),

final as (
    select
        nw.episode_id,
        nw.notification_id,
        nw.payload
    from newest as nw
    where
        nw.silence_id is null
        and alerts.matching_silence(nw.payload -> 'labels', now()) is null
)

select * from final;

comment on view alerts.firing_payloads is
'Newest notification payload of every firing, unsilenced episode (re-sent to Alertmanager).';
comment on column alerts.firing_payloads.episode_id is 'Alert episode.';
comment on column alerts.firing_payloads.notification_id is 'Its newest firing/repeat.';
comment on column alerts.firing_payloads.payload is 'The notification payload.';

grant select on alerts.firing_payloads to tsfleet_analyst, tsfleet_ingest;
