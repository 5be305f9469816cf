-- Back to containment objects. Only silences whose matchers are all plain equalities have
-- that form; the others (!=, =~, !~) cannot be expressed and are ended now rather than kept
-- muting the wrong alerts, then stored as their equality matchers only.
alter table alerts.silences drop constraint silences_matchers_check;

update alerts.silences as s
set ends_at = greatest(pg_catalog.now(), s.starts_at + interval '1 microsecond')
where
    s.ends_at > pg_catalog.now()
    and exists (
        select from pg_catalog.jsonb_array_elements(s.matchers) as m (matcher)
        where (m.matcher ->> 'isRegex')::boolean or not (m.matcher ->> 'isEqual')::boolean
    );

update alerts.silences as s
set matchers = coalesce((
    select pg_catalog.jsonb_object_agg(m.matcher ->> 'name', m.matcher ->> 'value')
    from pg_catalog.jsonb_array_elements(s.matchers) as m (matcher)
    where not (m.matcher ->> 'isRegex')::boolean and (m.matcher ->> 'isEqual')::boolean
), '{"silence": "not representable"}'::jsonb);

alter table alerts.silences add constraint silences_matchers_check check (
    jsonb_typeof(matchers) = 'object' and matchers <> '{}'
);

comment on column alerts.silences.matchers is
'Labels that must all be equal, e.g. {"device": "gh-01"} or {"rule": "stale_device"}.';
comment on column alerts.silences.created_by is null;
comment on column alerts.silences.note is null;
