alter table ingest.batches drop column values_missing;
