drop table ingest.batches cascade;
