-- Silences like Alertmanager's: a list of matchers (=, !=, =~, !~ on any label), a time
-- window, who created it and why. Matchers are Alertmanager's JSON shape
-- ({"name", "value", "isRegex", "isEqual"}), and match as Alertmanager matches them: a
-- missing label is the empty string, and a regular expression must match the whole value.
-- (PostgreSQL's regular expressions are close to Go's RE2 for what silences use: classes,
-- alternation, repetition; backreferences, which RE2 refuses, are refused here too.)
-- Couples with: alerts.evaluate() (52: the muted notification's silence_id),
-- alerts.active_alerts (is_silenced), alerts.silence_status, `tsfleet alerts silence|silences`.

create or replace function _tsfleet.label_matches(label_value text, matcher jsonb)
returns boolean
language sql
immutable
set search_path = pg_catalog, pg_temp
as $$
    select
        case
            when (matcher ->> 'isRegex')::boolean
                then coalesce(label_value, '') ~ ('^(?:' || (matcher ->> 'value') || ')$')
            else coalesce(label_value, '') = (matcher ->> 'value')
        end = (matcher ->> 'isEqual')::boolean
$$;

comment on function _tsfleet.label_matches(text, jsonb) is
'Whether one label value (NULL: the label is missing, matched as '''') satisfies one '
'Alertmanager matcher; regular expressions are anchored at both ends.';

grant execute on function _tsfleet.label_matches(text, jsonb)
to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;

create or replace function _tsfleet.silence_matchers(matchers jsonb)
returns jsonb
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    normalized jsonb;
    matcher jsonb;
begin
    -- The pre-0075 shape, {"label": "value", ...}: every label equal.
    if pg_catalog.jsonb_typeof(matchers) = 'object' then
        select
            pg_catalog.jsonb_agg(
                pg_catalog.jsonb_build_object(
                    'name', kv.key, 'value', kv.value, 'isRegex', false, 'isEqual', true
                )
                order by kv.key
            )
        into normalized
        from pg_catalog.jsonb_each_text(matchers) as kv;
    elsif pg_catalog.jsonb_typeof(matchers) = 'array' then
        normalized := matchers;
    end if;
    if normalized is null or pg_catalog.jsonb_array_length(normalized) = 0 then
        raise exception 'tsfleet: a silence needs at least one matcher, got %', matchers
        using hint = 'Give e.g. [{"name": "device", "value": "gh-01", "isRegex": false, '
        '"isEqual": true}] or `--match device=gh-01`.';
    end if;
    select
        pg_catalog.jsonb_agg(
            pg_catalog.jsonb_build_object(
                'name', m.matcher ->> 'name',
                'value', m.matcher ->> 'value',
                'isRegex', coalesce((m.matcher ->> 'isRegex')::boolean, false),
                'isEqual', coalesce((m.matcher ->> 'isEqual')::boolean, true)
            )
            order by m.position
        )
    into normalized
    from pg_catalog.jsonb_array_elements(normalized) with ordinality as m (matcher, position);
    for matcher in select m.value from pg_catalog.jsonb_array_elements(normalized) as m loop
        if coalesce(matcher ->> 'name', '') !~ '^[a-zA-Z_][a-zA-Z0-9_]*$' then
            raise exception 'tsfleet: silence matcher % has no valid label name', matcher
            using hint = 'Label names are letters, digits and _, not starting with a digit.';
        end if;
        if matcher ->> 'value' is null then
            raise exception 'tsfleet: silence matcher % has no value', matcher;
        end if;
        -- Compiles the expression now (invalid_regular_expression names it), not at the
        -- first evaluation that meets the silence.
        perform _tsfleet.label_matches('', matcher);
    end loop;
    -- Alertmanager's rule: a silence whose matchers all match the empty string would mute
    -- every alert lacking those labels, i.e. nearly everything.
    if not exists (
        select from pg_catalog.jsonb_array_elements(normalized) as m (matcher)
        where not _tsfleet.label_matches('', m.matcher)
    ) then
        raise exception 'tsfleet: silence matchers % all match the empty string', normalized
        using hint = 'At least one matcher must need a label value, e.g. device=gh-01.';
    end if;
    return normalized;
end;
$$;

comment on function _tsfleet.silence_matchers(jsonb) is
'Validate silence matchers and return them in Alertmanager''s JSON shape (a pre-0075 '
'{"label": "value"} object becomes equality matchers); raises with a hint when invalid.';

grant execute on function _tsfleet.silence_matchers(jsonb) to tsfleet_ingest;

create or replace function alerts.matching_silence(labels jsonb, at timestamptz)
returns bigint
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select s.silence_id
    from alerts.silences as s
    where
        s.starts_at <= matching_silence.at
        and s.ends_at > matching_silence.at
        and not exists (
            select from pg_catalog.jsonb_array_elements(s.matchers) as m (matcher)
            where not _tsfleet.label_matches(
                matching_silence.labels ->> (m.matcher ->> 'name'), m.matcher
            )
        )
    order by s.ends_at desc, s.silence_id desc
    limit 1
$$;

comment on function alerts.matching_silence(jsonb, timestamptz) is
'The silence (the one lasting longest) whose matchers all match these labels at this time, '
'or NULL.';

grant execute on function alerts.matching_silence(jsonb, timestamptz)
to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;

create or replace function alerts.silence(
    matchers jsonb,
    ends_at timestamptz,
    created_by text,
    note text default null,
    starts_at timestamptz default now()
)
returns bigint
language sql
set search_path = pg_catalog, pg_temp
as $$
    insert into alerts.silences as s (matchers, starts_at, ends_at, created_by, note)
    values (
        _tsfleet.silence_matchers(silence.matchers),
        silence.starts_at,
        silence.ends_at,
        silence.created_by,
        silence.note
    )
    returning s.silence_id
$$;

comment on function alerts.silence(jsonb, timestamptz, text, text, timestamptz) is
'Silence notifications of alerts matching all matchers (Alertmanager''s JSON matchers, or a '
'{"label": "value"} object) from starts_at to ends_at. Returns the silence id.';

grant execute on function alerts.silence(jsonb, timestamptz, text, text, timestamptz)
to tsfleet_ingest;

create or replace function alerts.expire_silence(silence_id bigint)
returns boolean
language sql
set search_path = pg_catalog, pg_temp
as $$
    update alerts.silences as s
    set ends_at = greatest(pg_catalog.now(), s.starts_at + interval '1 microsecond')
    where s.silence_id = expire_silence.silence_id and s.ends_at > pg_catalog.now()
    returning true
$$;

comment on function alerts.expire_silence(bigint) is 'End a silence now; false if it had ended.';

grant execute on function alerts.expire_silence(bigint) to tsfleet_ingest;
