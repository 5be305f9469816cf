-- Health scores from telemetry.health_rules (migration 0020).
-- One compiler, _tsfleet.health_expression, turns an asset type's rules into one SQL
-- expression; telemetry.health_score() (psql) and ingest.process_batch() (set-based) both use it,
-- so the two always agree.
-- Choice (docs/processing.md): a rule whose metric is absent from the reading set does not
-- match (unless its comparison is 'missing'), so a reading set with none of the rule metrics
-- scores 100 under the default pump rules; an asset type without rules has no score (NULL).
-- Couples with: 30_formulas.sql (derived metrics feed the rules), 32_process_readings.sql.

create or replace function _tsfleet.health_expression(
    p_asset_type_id integer,
    p_refs jsonb
)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    with
    rules as (
        select
            hr.rule_group,
            hr.tier,
            coalesce(p_refs ->> hr.metric_name, 'null::double precision') as metric_sql,
            -- Operators come from this fixed list, never from the row's text.
            case hr.comparison
                when '>' then '>' when '>=' then '>=' when '<' then '<' when '<=' then '<='
                when '=' then '=' when '<>' then '<>'
            end as operator_sql,
            hr.comparison = 'missing' as is_missing_rule,
            hr.threshold,
            hr.penalty
        from telemetry.health_rules as hr
        where hr.asset_type_id = p_asset_type_id
    ),

    conditions as (
        select
            r.rule_group,
            r.tier,
            r.penalty,
            case
                when r.is_missing_rule then pg_catalog.format('%s is null', r.metric_sql)
                else pg_catalog.format(
                    '%s %s %L::double precision', r.metric_sql, r.operator_sql, r.threshold
                )
            end as condition_sql
        from rules as r
    ),

    groups as (
        select
            c.rule_group,
            'case '
            || pg_catalog.string_agg(
                pg_catalog.format(
                    'when %s then %L::double precision', c.condition_sql, c.penalty
                ),
                ' ' order by c.tier
            )
            || ' else 0::double precision end' as penalty_sql
        from conditions as c
        group by c.rule_group
    )

    select
        'greatest(0::double precision, least(100::double precision, 100::double precision - ('
        || pg_catalog.string_agg(g.penalty_sql, ' + ' order by g.rule_group)
        || ')))' as score_sql
    from groups as g
    having pg_catalog.count(*) > 0
$$;

comment on function _tsfleet.health_expression(integer, jsonb) is
'The health rules of an asset type compiled into one SQL expression over p_refs (metric name '
'-> SQL); NULL when the type has no rules.';

grant execute on function _tsfleet.health_expression(integer, jsonb)
to tsfleet_ingest, tsfleet_analyst;

create or replace function telemetry.health_score(asset_type text, metrics jsonb)
returns double precision
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_asset_type_id integer;
    v_refs jsonb;
    v_all_refs jsonb;
    v_numbers jsonb;
    v_safe boolean := false;
    v_derived record;
    v_expression text;
    v_score double precision;
begin
    select aty.asset_type_id into v_asset_type_id
    from telemetry.asset_types as aty
    where aty.asset_type_key = health_score.asset_type;
    if v_asset_type_id is null then
        raise exception 'tsfleet: unknown asset type "%"', health_score.asset_type
        using errcode = 'invalid_parameter_value',
        hint = 'See select asset_type_key from telemetry.asset_types.';
    end if;
    -- Every name the program can read: declared metrics, rule metrics, derived names and the
    -- keys given. Values are read from $1 (numbers only); anything else is a missing input.
    select coalesce(
        pg_catalog.jsonb_object_agg(
            n.metric_name, pg_catalog.format('($1 ->> %L)::double precision', n.metric_name)
        ),
        '{}'
    )
    into v_refs
    from (
        select e.key as metric_name
        from pg_catalog.jsonb_each(coalesce(health_score.metrics, '{}')) as e
        union
        select m.value #>> '{}'
        from telemetry.asset_types as aty
        cross join lateral pg_catalog.jsonb_array_elements(
            coalesce(aty.telemetry_schema -> 'metrics', '[]')
        ) as m
        where aty.asset_type_id = v_asset_type_id
        union
        select hr.metric_name
        from telemetry.health_rules as hr
        where hr.asset_type_id = v_asset_type_id
    ) as n;
    select coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}')
    into v_numbers
    from pg_catalog.jsonb_each(coalesce(health_score.metrics, '{}')) as e
    where pg_catalog.jsonb_typeof(e.value) = 'number';
    -- Plain expressions first; after an overflow, overflow-checked ones (30_formulas.sql).
    loop
        v_all_refs := v_refs;
        for v_derived in
            select de.metric_name, de.value_sql
            from _tsfleet.derived_expressions(v_asset_type_id, v_refs, v_safe) as de
            order by de.derived_position
        loop
            v_all_refs := v_all_refs || pg_catalog.jsonb_build_object(
                v_derived.metric_name, v_derived.value_sql
            );
        end loop;
        v_expression := _tsfleet.health_expression(v_asset_type_id, v_all_refs);
        if v_expression is null then
            return null;
        end if;
        begin
            -- Derived metrics once each, in steps the rules read (derived_steps_sql).
            execute 'select ' || v_expression || ' from (select) as reading_set'
                || _tsfleet.derived_steps_sql(v_asset_type_id, v_refs, v_safe)
            into v_score using v_numbers;
            return v_score;
        exception when numeric_value_out_of_range then
            if v_safe then
                raise;
            end if;
            v_safe := true;
        end;
    end loop;
end;
$$;

comment on function telemetry.health_score(text, jsonb) is
'Health score 0..100 of one reading set, e.g. select telemetry.health_score(''pump'', '
'''{"motor_temperature": 75, "power_input": 12.3, "power_current": 2.5}''): 100 minus the '
'penalties of telemetry.health_rules (first matching tier per group), derived metrics computed '
'first. A metric absent from the set matches no rule except ''missing'' rules, so a set with '
'none of the rule metrics scores 100 for the default pump. NULL if the type has no rules.';

grant execute on function telemetry.health_score(text, jsonb) to tsfleet_ingest, tsfleet_analyst;

-- For consumers that publish "previous health score" next to a new one (stream events).
create or replace function telemetry.health_score_before(
    p_asset_id integer,
    p_before timestamptz
)
returns double precision
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select ar.value
    from telemetry.asset_readings as ar
    inner join telemetry.metrics as m on ar.metric_id = m.metric_id
    where
        m.metric_name = 'health_score'
        and ar.asset_id = p_asset_id
        and ar.recorded_at < p_before
    order by ar.recorded_at desc, ar.source_device_id asc
    limit 1
$$;

comment on function telemetry.health_score_before(integer, timestamptz) is
'The asset''s newest health score recorded strictly before p_before (NULL if none): the '
'previous score of a health_score written at p_before.';

grant execute on function telemetry.health_score_before(integer, timestamptz)
to tsfleet_ingest, tsfleet_analyst;
