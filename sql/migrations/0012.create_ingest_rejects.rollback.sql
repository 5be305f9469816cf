drop table ingest.rejects cascade;
