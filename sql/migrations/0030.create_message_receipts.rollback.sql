drop table ingest.message_receipts cascade;
