-- What an operator does to alerts: acknowledge an episode, silence by labels, end a silence.
-- Couples with: `tsfleet alerts ack|silence|unsilence`, alerts.evaluate() (reads both).

create or replace function alerts.acknowledge(
    episode_id bigint, acknowledged_by text, note text default null
)
returns bigint
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    new_id bigint;
begin
    if not exists (
        select from alerts.episodes as e
        where e.episode_id = acknowledge.episode_id and e.ended_at is null
    ) then
        raise exception 'tsfleet: alert episode % is not open', acknowledge.episode_id
        using hint = 'List open alerts with `tsfleet alerts list` (alerts.active_alerts).';
    end if;
    insert into alerts.acknowledgements (episode_id, acknowledged_by, note)
    values (acknowledge.episode_id, acknowledge.acknowledged_by, acknowledge.note)
    returning acknowledgement_id into new_id;
    return new_id;
end;
$$;

comment on function alerts.acknowledge(bigint, text, text) is
'Acknowledge an open alert episode: no more repeat notifications for it. Returns the ack id.';

grant execute on function alerts.acknowledge(bigint, text, text) to tsfleet_ingest;

create or replace function alerts.silence(
    matchers jsonb,
    ends_at timestamptz,
    created_by text,
    note text default null,
    starts_at timestamptz default now()
)
returns bigint
language sql
set search_path = pg_catalog, pg_temp
as $$
    insert into alerts.silences as s (matchers, starts_at, ends_at, created_by, note)
    values (
        silence.matchers, silence.starts_at, silence.ends_at, silence.created_by, silence.note
    )
    returning s.silence_id
$$;

comment on function alerts.silence(jsonb, timestamptz, text, text, timestamptz) is
'Silence notifications of alerts whose labels contain all matchers, from starts_at to ends_at.';

grant execute on function alerts.silence(jsonb, timestamptz, text, text, timestamptz)
to tsfleet_ingest;

create or replace function alerts.expire_silence(silence_id bigint)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
    update alerts.silences as s
    set ends_at = greatest(pg_catalog.now(), s.starts_at + interval '1 microsecond')
    where s.silence_id = expire_silence.silence_id and s.ends_at > pg_catalog.now()
    returning true
$$;

comment on function alerts.expire_silence(bigint) is 'End a silence now; false if it had ended.';

grant execute on function alerts.expire_silence(bigint) to tsfleet_ingest;
