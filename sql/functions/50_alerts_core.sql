-- Building blocks of the alert conditions, shared by the views in sql/views/40_alerts_*.sql
-- and by alerts.evaluate(). Couples with: alerts.evaluate() (sets tsfleet.alerts_now).

create or replace function alerts.evaluation_time()
returns timestamptz
language sql
stable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(
        nullif(pg_catalog.current_setting('tsfleet.alerts_now', true), '')::timestamptz,
        pg_catalog.now()
    )
$$;

comment on function alerts.evaluation_time() is
'The time the alert views evaluate at: the time given to alerts.evaluate() inside it, '
'else now() (what Grafana sees).';

grant execute on function alerts.evaluation_time()
to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;

create or replace function alerts.identity_hash(
    rule text, subject text, metric text, severity text, tenant text
)
returns text
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select pg_catalog.md5(pg_catalog.jsonb_build_object(
        'rule', rule, 'subject', subject, 'metric', metric, 'severity', severity,
        'tenant', tenant
    )::text)
$$;

comment on function alerts.identity_hash(text, text, text, text, text) is
'Hash of an alert''s label set (rule, device or asset, metric, severity, tenant): with the '
'rule, the identity of an alert episode.';

grant execute on function alerts.identity_hash(text, text, text, text, text)
to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;

-- Hysteresis: an alert that is already open (pending or firing) holds until its value crosses
-- the rule's clear threshold, not merely the firing threshold.
create or replace function _tsfleet.alert_is_open(rule_id integer, identity_hash text)
returns boolean
language sql
stable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select exists (
        select from alerts.episodes as e
        where
            e.rule_id = alert_is_open.rule_id
            and e.identity_hash = alert_is_open.identity_hash
            and e.ended_at is null
    )
$$;

comment on function _tsfleet.alert_is_open(integer, text) is
'Whether the alert identity has an open (pending or firing) episode; used for hysteresis.';

grant execute on function _tsfleet.alert_is_open(integer, text)
to tsfleet_ingest, tsfleet_analyst, tsfleet_grafana;

-- Substitutes {{label}} and {{value}} in annotation templates.
create or replace function _tsfleet.alert_render(
    template jsonb, labels jsonb, value double precision
)
returns jsonb
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    rendered jsonb := '{}';
    field record;
    label record;
    text_value text;
begin
    for field in select t.key, t.value from pg_catalog.jsonb_each_text(template) as t loop
        text_value := field.value;
        for label in select l.key, l.value from pg_catalog.jsonb_each_text(labels) as l loop
            text_value := pg_catalog.replace(
                text_value, '{{' || label.key || '}}', coalesce(label.value, '')
            );
        end loop;
        text_value := pg_catalog.replace(
            text_value, '{{value}}',
            coalesce(pg_catalog.trim_scale(pg_catalog.round(value::numeric, 2))::text, '')
        );
        rendered := rendered || pg_catalog.jsonb_build_object(field.key, text_value);
    end loop;
    return rendered;
end;
$$;

comment on function _tsfleet.alert_render(jsonb, jsonb, double precision) is
'Annotation templates with {{label}} and {{value}} replaced.';

grant execute on function _tsfleet.alert_render(jsonb, jsonb, double precision)
to tsfleet_ingest;
