-- Poison messages of the stream consumer (issue 8): recorded in ingest.rejects under a batch
-- row of their own, before the message goes to the dead-letter subject and is terminated.
-- Couples with: migrations 0011/0012 (ingest.batches, ingest.rejects), loader/stream/deadletter.py.

-- security definer: the ingest API is the only door to the tables it writes;
-- tsfleet_ingest holds EXECUTE on it and no INSERT/UPDATE/DELETE (migration 0095).
-- Runs as the owner, search_path pinned.
create or replace function ingest.record_stream_rejects(
    p_source_name text,
    p_rejects jsonb
)
returns bigint
language plpgsql
security definer
set search_path = pg_catalog, pg_temp
as $$
declare
    v_batch_id bigint;
    v_new jsonb;
    v_count integer;
begin
    if jsonb_typeof(p_rejects) is distinct from 'array' then
        raise exception 'tsfleet: p_rejects must be a JSON array, got %', jsonb_typeof(p_rejects)
        using hint = 'Pass [{"sequence", "field", "reason", "raw"}, ...].';
    end if;
    -- A redelivered poison message (the consumer died before terminating it) is recorded once:
    -- its stream sequence is its line number within the stream, and the reason is the same.
    select coalesce(jsonb_agg(r.item), '[]'::jsonb) into v_new
    from jsonb_array_elements(p_rejects) as r (item)
    where not exists (
        select from ingest.rejects as rj
        where
            rj.source_name = p_source_name
            and rj.line_number = (r.item ->> 'sequence')::bigint
            and rj.reason = coalesce(r.item ->> 'reason', 'rejected')
    );
    v_count := jsonb_array_length(v_new);
    if v_count = 0 then
        return null;
    end if;
    insert into ingest.batches (
        source_kind, source_name, status, rows_read, rows_rejected, finished_at
    )
    values (
        'nats', p_source_name, 'committed', v_count, v_count, clock_timestamp()
    )
    returning batch_id into v_batch_id;
    insert into ingest.rejects (
        batch_id, source_name, line_number, field_name, raw_text, reason
    )
    select
        v_batch_id,
        p_source_name,
        (r.item ->> 'sequence')::bigint,
        r.item ->> 'field',
        r.item ->> 'raw',
        coalesce(r.item ->> 'reason', 'rejected')
    from jsonb_array_elements(v_new) as r (item);
    return v_batch_id;
end;
$$;

comment on function ingest.record_stream_rejects(text, jsonb) is
'Record poison stream messages [{sequence, field, reason, raw}] in ingest.rejects under a new '
'nats batch (line_number = stream sequence); a sequence already recorded with the same reason '
'is skipped. '
'Returns the batch id, or NULL when there was nothing new.';
grant execute on function ingest.record_stream_rejects(text, jsonb) to tsfleet_ingest;
