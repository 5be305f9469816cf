-- Silences for people and `tsfleet alerts silences`: Alertmanager's states (pending, active,
-- expired), matchers written as amtool writes them, and how many open alerts each mutes now.
-- Couples with: alerts.silences (0064, 0075), _tsfleet.label_matches() (53).

create or replace view alerts.silence_status as
with
open_alerts as (
    select r.labels || e.labels || jsonb_build_object('alertname', r.rule_key) as labels
    from alerts.episodes as e
    inner join alerts.rules as r on e.rule_id = r.rule_id
    where e.ended_at is null
),

rendered as (
    select
        s.silence_id,
        string_agg(
            format(
                '%s%s%s',
                m.matcher ->> 'name',
                case
                    when (m.matcher ->> 'isRegex')::boolean and (m.matcher ->> 'isEqual')::boolean
                        then '=~'
                    when (m.matcher ->> 'isRegex')::boolean then '!~'
                    when (m.matcher ->> 'isEqual')::boolean then '='
                    else '!='
                end,
                to_jsonb(m.matcher ->> 'value')::text
            ),
            ', '
            order by m.position
        ) as matchers_text
    from alerts.silences as s
    cross join lateral jsonb_array_elements(s.matchers) with ordinality as m (matcher, position)
    group by s.silence_id
),

final as (
    select
        s.silence_id,
        case
            when s.starts_at > now() then 'pending'
            when s.ends_at > now() then 'active'
            else 'expired'
        end as state,
        rd.matchers_text,
        s.matchers,
        s.starts_at,
        s.ends_at,
        s.created_by,
        s.note as comment,  -- noqa: RF04
        s.created_at,
        (
            select count(*)
            from open_alerts as oa
            where not exists (
                select from jsonb_array_elements(s.matchers) as m (matcher)
                where not _tsfleet.label_matches(oa.labels ->> (m.matcher ->> 'name'), m.matcher)
            )
        ) as matching_open_alerts
    from alerts.silences as s
    inner join rendered as rd on s.silence_id = rd.silence_id
)

select * from final;

comment on view alerts.silence_status is
'Every silence with its state (pending, active, expired), its matchers as amtool writes them '
'and the number of open alerts it matches.';
comment on column alerts.silence_status.silence_id is
'Silence id (for `tsfleet alerts unsilence`).';
comment on column alerts.silence_status.state is
'pending (starts later), active (mutes now) or expired.';
comment on column alerts.silence_status.matchers_text is
'The matchers, e.g. device="gh-01", rule=~"low_.*" (all must match).';
comment on column alerts.silence_status.matchers is 'The matchers in Alertmanager''s JSON shape.';
comment on column alerts.silence_status.starts_at is 'Start of the window.';
comment on column alerts.silence_status.ends_at is 'End of the window.';
comment on column alerts.silence_status.created_by is 'Who created it.';
comment on column alerts.silence_status.comment is 'Why.';
comment on column alerts.silence_status.created_at is 'When it was created.';
comment on column alerts.silence_status.matching_open_alerts is
'Open alerts (pending or firing) whose labels it matches.';

grant select on alerts.silence_status to tsfleet_analyst, tsfleet_grafana, tsfleet_ingest;
