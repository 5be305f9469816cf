comment on column ingest.message_receipts.batch_id is 'Batch that loaded the message.';
alter table ingest.message_receipts add constraint message_receipts_batch_id_fkey
foreign key (batch_id) references ingest.batches (batch_id) on delete cascade;
