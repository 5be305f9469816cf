-- Silences with Alertmanager's matchers: a JSON array of
-- {"name": label, "value": text, "isRegex": bool, "isEqual": bool} (=, !=, =~, !~ on any
-- label), the shape Alertmanager's API and amtool use. Existing rows held a containment
-- object ({"device": "gh-01"}: every label equal); they become one equality matcher per key,
-- so they keep muting exactly what they muted. Matching lives in alerts.matching_silence()
-- (sql/functions/53_alerts_silences.sql).
alter table alerts.silences drop constraint silences_matchers_check;

update alerts.silences as s
set
    matchers = (
        select
            pg_catalog.jsonb_agg(
                pg_catalog.jsonb_build_object(
                    'name', kv.key,
                    'value', kv.value,
                    'isRegex', false,
                    'isEqual', true
                )
                order by kv.key
            )
        from pg_catalog.jsonb_each_text(s.matchers) as kv
    )
where pg_catalog.jsonb_typeof(s.matchers) = 'object';

alter table alerts.silences add constraint silences_matchers_check check (
    jsonb_typeof(matchers) = 'array' and jsonb_array_length(matchers) > 0
);

comment on column alerts.silences.matchers is
'Alertmanager matchers, all of which must match: [{"name": "device", "value": "gh-.*", '
'"isRegex": true, "isEqual": true}, ...]; isEqual false negates (!=, !~).';
comment on column alerts.silences.created_by is 'Who created the silence (amtool''s author).';
comment on column alerts.silences.note is 'Why (amtool''s comment).';
