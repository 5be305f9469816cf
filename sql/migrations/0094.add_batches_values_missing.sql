-- Cells a source marks as missing (--na-value codes, empty cells of wide files): counted, never
-- stored nor rejected (issue 14).
alter table ingest.batches add column values_missing bigint not null default 0;

comment on column ingest.batches.values_missing is
'Cells given as missing (empty wide cells, --na-value codes): neither stored nor rejected.';
