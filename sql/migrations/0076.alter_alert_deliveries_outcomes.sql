-- Delivery outcomes beyond "delivered" (issue 17): a lease token that fences the outcome of
-- a claim (a runner whose lease was taken over cannot record over the new holder), dead
-- letters (a permanent refusal, or retries past their maximum age) with the receiver's HTTP
-- status and an excerpt of its answer, and superseded deliveries (a later notification of the
-- same episode reached the sink first, so the stale one is never sent after it).
-- Written only by sql/functions/54_alerts_delivery.sql.
alter table alerts.deliveries
add column lease_token uuid,
add column last_status integer,
add column last_response text,
add column dead_at timestamptz,
add column dead_reason text,
add column superseded_at timestamptz,
add constraint deliveries_outcome_check check (
    num_nonnulls(delivered_at, dead_at, superseded_at) <= 1
),
add constraint deliveries_dead_reason_check check (
    (dead_at is null) = (dead_reason is null)
    and dead_reason in ('permanent', 'max_age')
);

-- The runner's queue: deliveries with no outcome yet.
drop index alerts.deliveries_sink_name_notification_id_idx;
create index deliveries_sink_name_notification_id_idx
on alerts.deliveries (sink_name, notification_id)
where delivered_at is null and dead_at is null and superseded_at is null;

comment on column alerts.deliveries.lease_token is
'Token of the claim holding the lease; an outcome is recorded only with the current token.';
comment on column alerts.deliveries.last_status is
'HTTP status of the last answer (NULL: no answer, e.g. a timeout or a refused connection).';
comment on column alerts.deliveries.last_response is
'First 500 characters of the receiver''s last answer body (for dead letters: why).';
comment on column alerts.deliveries.dead_at is
'When the delivery was given up (dead letter); it is never sent again.';
comment on column alerts.deliveries.dead_reason is
'permanent (a 4xx other than 408/429) or max_age (retried longer than the maximum age).';
comment on column alerts.deliveries.superseded_at is
'When a later notification of the same episode was delivered to this sink first; this one '
'is then never sent.';
comment on column alerts.deliveries.attempts is 'Send attempts so far (claims).';
comment on column alerts.deliveries.next_attempt_at is 'Earliest time of the next attempt.';
comment on column alerts.deliveries.lease_until is 'End of the current lease.';
comment on column alerts.deliveries.last_error is 'Error of the last failed attempt.';
