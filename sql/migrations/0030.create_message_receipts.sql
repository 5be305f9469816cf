-- Message-id idempotency for the JSON Lines loader and the stream consumer (issue 8): the
-- first batch that loads a message records its id here, in the same transaction as its
-- readings; a redelivered message finds its id and is counted as a duplicate.
-- Couples with: ingest.insert_staged_readings() (sql/functions/20_ingest.sql).
create table ingest.message_receipts (
    message_id text not null,
    batch_id bigint not null,
    received_at timestamptz not null default now(),
    constraint message_receipts_pkey primary key (message_id),
    constraint message_receipts_batch_id_fkey foreign key (batch_id)
    references ingest.batches (batch_id) on delete cascade,
    constraint message_receipts_message_id_check check (message_id <> '')
);
create index message_receipts_batch_id_idx on ingest.message_receipts (batch_id);
create index message_receipts_received_at_idx on ingest.message_receipts (received_at);
comment on table ingest.message_receipts is
'Ids of telemetry messages already loaded, with the batch that loaded them (exactly-once).';
comment on column ingest.message_receipts.message_id is
'The messageId of a normalized telemetry message.';
comment on column ingest.message_receipts.batch_id is 'Batch that loaded the message.';
comment on column ingest.message_receipts.received_at is
'When the message was first loaded; old receipts may be pruned by time.';

grant select, insert, delete on ingest.message_receipts to tsfleet_ingest;
