-- What an operator does to alerts: acknowledge an episode (silences: 53_alerts_silences.sql).
-- Couples with: `tsfleet alerts ack`, alerts.evaluate() (no repeats once acknowledged).

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
