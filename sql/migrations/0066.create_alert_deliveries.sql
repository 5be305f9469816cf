-- Sinks registered by runners, and per-sink delivery state of every notification. A sink
-- receives the notifications queued after it was registered (first_notification_id).
create table alerts.sinks (
    sink_name text not null,
    sink_kind text not null,
    first_notification_id bigint not null,
    enqueued_through bigint not null,
    registered_at timestamptz not null default now(),
    last_seen_at timestamptz not null default now(),
    constraint sinks_pkey primary key (sink_name),
    constraint sinks_sink_kind_check check (sink_kind in ('stdout', 'webhook', 'alertmanager')),
    constraint sinks_sink_name_check check (sink_name <> '')
);
comment on table alerts.sinks is
'Notification sinks known to the runners, and how far notifications were queued for each.';

create table alerts.deliveries (
    notification_id bigint not null,
    sink_name text not null,
    attempts integer not null default 0,
    next_attempt_at timestamptz not null default now(),
    leased_by text,
    lease_until timestamptz,
    delivered_at timestamptz,
    last_error text,
    created_at timestamptz not null default now(),
    constraint deliveries_pkey primary key (notification_id, sink_name),
    constraint deliveries_notification_id_fkey foreign key (notification_id)
    references alerts.notifications (notification_id) on delete cascade,
    constraint deliveries_sink_name_fkey foreign key (sink_name)
    references alerts.sinks (sink_name) on delete cascade
);
create index deliveries_sink_name_notification_id_idx
on alerts.deliveries (sink_name, notification_id)
where delivered_at is null;
comment on table alerts.deliveries is
'Delivery of each notification to each sink: attempts, backoff, lease, delivered_at.';
comment on column alerts.deliveries.leased_by is
'Runner that claimed the delivery; others skip it until lease_until (no double send).';
comment on column alerts.deliveries.delivered_at is
'Set only after the sink confirmed the notification.';

grant select, insert, update on alerts.sinks, alerts.deliveries to tsfleet_ingest;
