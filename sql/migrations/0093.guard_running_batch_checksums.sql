-- The checksum registry without a lock (issue 15): a running batch holds its (kind, checksum)
-- in this unique index from ingest.begin_batch() on, so a second load of the same content
-- waits for the first one's transaction and then finds it committed (skipped), or rolled back
-- (it loads). Replaces the committed-only index of migration 0011 and the advisory lock.
create unique index batches_source_kind_checksum_live_key
on ingest.batches (source_kind, checksum)
where status in ('running', 'committed') and checksum is not null;

drop index ingest.batches_source_kind_checksum_key;
