create unique index batches_source_kind_checksum_key
on ingest.batches (source_kind, checksum)
where status = 'committed' and checksum is not null;

drop index ingest.batches_source_kind_checksum_live_key;
