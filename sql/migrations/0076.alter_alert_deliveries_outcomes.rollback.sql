-- The views over these columns (alerts.delivery_status) go with them (cascade); the
-- functions and views of the version rolled back to are re-applied by its own deploy.
-- Dead and superseded deliveries would look pending to the old code and be retried for
-- ever: they are parked (next attempt at infinity) before their outcome columns go.
update alerts.deliveries as d
set next_attempt_at = 'infinity'
where d.dead_at is not null or d.superseded_at is not null;

drop index alerts.deliveries_sink_name_notification_id_idx;
create index deliveries_sink_name_notification_id_idx
on alerts.deliveries (sink_name, notification_id)
where delivered_at is null;

alter table alerts.deliveries
drop constraint deliveries_dead_reason_check,
drop constraint deliveries_outcome_check,
drop column superseded_at cascade,
drop column dead_reason cascade,
drop column dead_at cascade,
drop column last_response cascade,
drop column last_status cascade,
drop column lease_token cascade;

comment on column alerts.deliveries.attempts is null;
comment on column alerts.deliveries.next_attempt_at is null;
comment on column alerts.deliveries.lease_until is null;
comment on column alerts.deliveries.last_error is null;
