drop table ingest.collisions;
