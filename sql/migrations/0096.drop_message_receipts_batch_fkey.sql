-- A receipt's batch is checked by construction, not per row: ingest.insert_staged_readings()
-- writes the receipts of a batch in the transaction that holds the batch row, no other writer
-- exists (migration 0095), and no function deletes a batch. The foreign key check ran once per
-- message and took half of a receipt's insert (0.95 s of 1.9 s for 100,000 messages, measured
-- on TimescaleDB 2.28.3): a tenth of a JSON Lines load and of a stream micro-batch.
-- Couples with: migration 0030 (the table), sql/functions/23_ingest_write.sql (the writer).
alter table ingest.message_receipts drop constraint message_receipts_batch_id_fkey;
comment on column ingest.message_receipts.batch_id is
'Batch that loaded the message (written in that batch''s transaction; no foreign key, '
'see migration 0096).';
