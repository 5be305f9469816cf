-- Derived-metric formulas: tokenizer, recursive-descent compiler to a safe SQL expression,
-- validation of telemetry.asset_types.telemetry_schema (trigger) and a psql evaluator.
--
-- Grammar (docs/processing.md):
--   expr    := term (("+" | "-") term)*
--   term    := unary (("*" | "/") unary)*
--   unary   := "-" unary | primary
--   primary := number | metric | function "(" expr ("," expr)* ")" | "(" expr ")"
--   number  := 12 | 1.5 | .5 | 1e3 | 2.5E-2 (no sign; use unary minus)
--   metric  := [A-Za-z_][A-Za-z0-9_]* naming a declared metric or an earlier derived metric
--   function:= abs(x) | sqrt(x) | round(x) | round(x, digits 0..15) | least(x, y, ...)
--              | greatest(x, y, ...)
-- The compiler emits SQL only from its own fixed fragments, numbers re-quoted with %L after a
-- successful cast, and metric references taken from the caller's p_refs map (built with
-- format('%I'/%L) by the caller): nothing of the formula text reaches EXECUTE otherwise.
-- Semantics: a missing input (NULL) gives NULL; x / 0 gives NULL; sqrt of a negative gives
-- NULL; least/greatest give NULL when any argument is NULL; round rounds half away from zero.
-- An arithmetic overflow or underflow of double precision gives NULL too: callers run the plain
-- expression and, only if it raises numeric_value_out_of_range, recompile with p_safe, which
-- routes + - * / through _tsfleet.formula_checked.
-- Couples with: 31_health.sql and 32_process_readings.sql (callers), tests/test_formulas.py
-- (a Python reference implementation of this grammar).

create or replace function _tsfleet.formula_tokenize(
    p_formula text,
    out token_kinds text[],
    out token_texts text[],
    out token_positions integer[]
)
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_length integer := pg_catalog.length(p_formula);
    v_pos integer := 1;
    v_rest text;
    v_match text[];
    v_space text;
    v_kind text;
    v_text text;
begin
    token_kinds := '{}';
    token_texts := '{}';
    token_positions := '{}';
    if p_formula is null or p_formula ~ '^\s*$' then
        raise exception 'tsfleet: formula is empty'
        using errcode = 'invalid_parameter_value';
    end if;
    if v_length > 2000 then
        raise exception 'tsfleet: formula is longer than 2000 characters'
        using errcode = 'invalid_parameter_value';
    end if;
    while v_pos <= v_length loop
        v_rest := pg_catalog.substr(p_formula, v_pos);
        v_match := pg_catalog.regexp_match(
            v_rest,
            '^(\s*)(?:([0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|\.[0-9]+(?:[eE][-+]?[0-9]+)?)'
            '|([A-Za-z_][A-Za-z0-9_]*)|([-+*/(),]))'
        );
        if v_match is null then
            v_space := pg_catalog.substring(v_rest, '^\s*');
            exit when pg_catalog.length(v_space) = pg_catalog.length(v_rest);
            raise exception 'tsfleet: invalid formula %: unexpected character "%" at position %',
            pg_catalog.quote_literal(p_formula),
            pg_catalog.substr(v_rest, pg_catalog.length(v_space) + 1, 1),
            v_pos + pg_catalog.length(v_space)
            using errcode = 'invalid_parameter_value',
            hint = 'Formulas allow numbers, metric names, + - * /, parentheses, commas and the '
            'functions abs, sqrt, round, least, greatest.';
        end if;
        if v_match[2] is not null then
            v_kind := 'number';
            v_text := v_match[2];
        elsif v_match[3] is not null then
            v_kind := 'name';
            v_text := v_match[3];
        else
            v_kind := v_match[4];
            v_text := v_match[4];
        end if;
        token_kinds := token_kinds || v_kind;
        token_texts := token_texts || v_text;
        token_positions := token_positions || (v_pos + pg_catalog.length(v_match[1]));
        v_pos := v_pos + pg_catalog.length(v_match[1]) + pg_catalog.length(v_text);
    end loop;
end;
$$;

comment on function _tsfleet.formula_tokenize(text) is
'Splits a derived-metric formula into tokens (number, name, + - * / ( ) ,) with 1-based '
'positions; raises naming the first character outside the grammar.';

grant execute on function _tsfleet.formula_tokenize(text) to tsfleet_ingest, tsfleet_analyst;

-- p_level: 0 expr, 1 term, 2 unary, 3 primary. p_index points at the next token and is
-- advanced past what was parsed.
create or replace function _tsfleet.formula_parse(
    p_formula text,
    p_kinds text[],
    p_texts text[],
    p_positions integer[],
    p_refs jsonb,
    p_level integer,
    p_depth integer,
    inout p_index integer,
    out p_sql text
)
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_count integer := coalesce(pg_catalog.array_length(p_kinds, 1), 0);
    v_right text;
    v_op text;
    v_name text;
    v_args text[];
    v_digits integer;
    v_number double precision;
    v_where text;
begin
    if p_depth > 100 then
        raise exception 'tsfleet: invalid formula %: nested more than 100 levels deep',
        pg_catalog.quote_literal(p_formula)
        using errcode = 'invalid_parameter_value';
    end if;
    if p_level in (0, 1) then
        select f.p_index, f.p_sql into p_index, p_sql
        from _tsfleet.formula_parse(
            p_formula, p_kinds, p_texts, p_positions, p_refs, p_level + 1, p_depth, p_index
        ) as f;
        while p_index <= v_count
            and p_kinds[p_index] = any(
                case when p_level = 0 then array['+', '-'] else array['*', '/'] end
            ) loop
            v_op := p_kinds[p_index];
            select f.p_index, f.p_sql into p_index, v_right
            from _tsfleet.formula_parse(
                p_formula, p_kinds, p_texts, p_positions, p_refs, p_level + 1, p_depth,
                p_index + 1
            ) as f;
            if p_refs ? '#safe' then
                -- '#safe' cannot be a metric name: compile_formula's flag for checked operators.
                p_sql := pg_catalog.format(
                    '_tsfleet.formula_checked(%L, %s, %s)', v_op, p_sql, v_right
                );
            elsif v_op = '/' then
                p_sql := '(' || p_sql || ' / nullif(' || v_right
                    || ', 0::double precision))';
            else
                p_sql := '(' || p_sql || ' ' || v_op || ' ' || v_right || ')';
            end if;
        end loop;
        return;
    end if;

    if p_index > v_count then
        raise exception 'tsfleet: invalid formula %: unexpected end of formula',
        pg_catalog.quote_literal(p_formula)
        using errcode = 'invalid_parameter_value';
    end if;
    v_where := pg_catalog.format(
        'at position %s', p_positions[p_index]
    );

    if p_level = 2 then
        if p_kinds[p_index] = '-' then
            select f.p_index, f.p_sql into p_index, p_sql
            from _tsfleet.formula_parse(
                p_formula, p_kinds, p_texts, p_positions, p_refs, 2, p_depth + 1, p_index + 1
            ) as f;
            p_sql := '(-' || p_sql || ')';
        else
            select f.p_index, f.p_sql into p_index, p_sql
            from _tsfleet.formula_parse(
                p_formula, p_kinds, p_texts, p_positions, p_refs, 3, p_depth, p_index
            ) as f;
        end if;
        return;
    end if;

    -- p_level = 3: primary
    if p_kinds[p_index] = 'number' then
        begin
            v_number := p_texts[p_index]::double precision;
        exception when numeric_value_out_of_range or invalid_text_representation then
            raise exception 'tsfleet: invalid formula %: number "%" % is out of range',
            pg_catalog.quote_literal(p_formula), p_texts[p_index], v_where
            using errcode = 'invalid_parameter_value';
        end;
        p_sql := pg_catalog.format('%L::double precision', p_texts[p_index]);
        p_index := p_index + 1;
        return;
    end if;

    if p_kinds[p_index] = '(' then
        select f.p_index, f.p_sql into p_index, p_sql
        from _tsfleet.formula_parse(
            p_formula, p_kinds, p_texts, p_positions, p_refs, 0, p_depth + 1, p_index + 1
        ) as f;
        if p_index > v_count or p_kinds[p_index] <> ')' then
            raise exception 'tsfleet: invalid formula %: expected ")" %',
            pg_catalog.quote_literal(p_formula),
            case
                when p_index > v_count then 'at the end'
                else pg_catalog.format(
                    'but found "%s" at position %s', p_texts[p_index], p_positions[p_index]
                )
            end
            using errcode = 'invalid_parameter_value';
        end if;
        p_sql := '(' || p_sql || ')';
        p_index := p_index + 1;
        return;
    end if;

    if p_kinds[p_index] <> 'name' then
        raise exception 'tsfleet: invalid formula %: unexpected "%" %',
        pg_catalog.quote_literal(p_formula), p_texts[p_index], v_where
        using errcode = 'invalid_parameter_value';
    end if;

    v_name := p_texts[p_index];
    if p_index < v_count and p_kinds[p_index + 1] = '(' then
        if pg_catalog.lower(v_name) not in ('abs', 'sqrt', 'round', 'least', 'greatest') then
            raise exception 'tsfleet: invalid formula %: unknown function "%" %',
            pg_catalog.quote_literal(p_formula), v_name, v_where
            using errcode = 'invalid_parameter_value',
            hint = 'Allowed functions: abs, sqrt, round, least, greatest.';
        end if;
        v_name := pg_catalog.lower(v_name);
        v_args := '{}';
        p_index := p_index + 2;
        loop
            if v_name = 'round' and pg_catalog.cardinality(v_args) = 1 then
                -- round's digits: an integer literal 0..15, not an expression.
                if p_index > v_count or p_kinds[p_index] <> 'number'
                    or p_texts[p_index] !~ '^[0-9]{1,2}$'
                    or p_texts[p_index]::integer > 15 then
                    raise exception 'tsfleet: invalid formula %: round() digits must be an '
                    'integer 0..15, found "%" %',
                    pg_catalog.quote_literal(p_formula),
                    coalesce(p_texts[p_index], 'end of formula'),
                    pg_catalog.format('at position %s', p_positions[p_index])
                    using errcode = 'invalid_parameter_value';
                end if;
                v_args := v_args || p_texts[p_index];
                p_index := p_index + 1;
            else
                select f.p_index, f.p_sql into p_index, v_right
                from _tsfleet.formula_parse(
                    p_formula, p_kinds, p_texts, p_positions, p_refs, 0, p_depth + 1, p_index
                ) as f;
                v_args := v_args || v_right;
            end if;
            exit when p_index > v_count or p_kinds[p_index] <> ',';
            p_index := p_index + 1;
        end loop;
        if p_index > v_count or p_kinds[p_index] <> ')' then
            raise exception 'tsfleet: invalid formula %: expected "," or ")" in %() %',
            pg_catalog.quote_literal(p_formula), v_name,
            case
                when p_index > v_count then 'at the end'
                else pg_catalog.format(
                    'but found "%s" at position %s', p_texts[p_index], p_positions[p_index]
                )
            end
            using errcode = 'invalid_parameter_value';
        end if;
        p_index := p_index + 1;
        if v_name in ('abs', 'sqrt') and pg_catalog.cardinality(v_args) <> 1
            or v_name = 'round' and pg_catalog.cardinality(v_args) not in (1, 2)
            or v_name in ('least', 'greatest') and pg_catalog.cardinality(v_args) < 2 then
            raise exception 'tsfleet: invalid formula %: %() takes % argument(s), got % %',
            pg_catalog.quote_literal(p_formula), v_name,
            case v_name when 'round' then '1 or 2' when 'abs' then '1' when 'sqrt' then '1'
                else '2 or more' end,
            pg_catalog.cardinality(v_args), v_where
            using errcode = 'invalid_parameter_value';
        end if;
        -- Every argument appears once in the SQL, so the output grows linearly with the
        -- formula however deeply calls nest (a "case when x >= 0 then sqrt(x) end" doubled x
        -- at every level: 20 nested sqrt() were megabytes of SQL). No helper functions: a
        -- function call with a pinned search_path costs ~10 us a row, these builtins nothing.
        if v_name = 'abs' then
            p_sql := 'pg_catalog.abs(' || v_args[1] || ')';
        elsif v_name = 'sqrt' then
            -- sqrt of a negative is NULL: greatest() lifts every negative number to the
            -- negative number closest to zero, which nullif() then turns into NULL.
            -- (nullif and greatest are SQL syntax, not functions: no schema to qualify.)
            p_sql := 'pg_catalog.sqrt(nullif(greatest(' || v_args[1]
                || ', ''-5e-324''::double precision), ''-5e-324''::double precision))';
        elsif v_name = 'round' then
            p_sql := '(pg_catalog.round((' || v_args[1] || ')::numeric, '
                || coalesce(v_args[2], '0') || ')::double precision)';
        else
            -- least/greatest are NULL when any argument is: float8smaller/float8larger (the
            -- min/max aggregates' strict transition functions, same ordering as least and
            -- greatest) folded left to right, the earlier argument winning a tie as in least().
            p_sql := v_args[1];
            for i in 2..pg_catalog.cardinality(v_args) loop
                p_sql := pg_catalog.format(
                    'pg_catalog.%s(%s, %s)',
                    case v_name when 'least' then 'float8smaller' else 'float8larger' end,
                    v_args[i], p_sql
                );
            end loop;
        end if;
        return;
    end if;

    if pg_catalog.lower(v_name) in ('abs', 'sqrt', 'round', 'least', 'greatest') then
        raise exception 'tsfleet: invalid formula %: function "%" % needs arguments: %(...)',
        pg_catalog.quote_literal(p_formula), v_name, v_where, v_name
        using errcode = 'invalid_parameter_value';
    end if;
    if not p_refs ? v_name then
        raise exception 'tsfleet: invalid formula %: unknown metric "%" %',
        pg_catalog.quote_literal(p_formula), v_name, v_where
        using errcode = 'invalid_parameter_value',
        hint = 'A formula may use the metrics listed in telemetry_schema.metrics and derived '
        'metrics defined earlier in derived_metrics.';
    end if;
    p_sql := p_refs ->> v_name;
    p_index := p_index + 1;
end;
$$;

comment on function _tsfleet.formula_parse(
    text, text[], text[], integer[], jsonb, integer, integer, integer
) is
'Recursive-descent step of the formula compiler (one grammar level); see '
'_tsfleet.compile_formula.';

grant execute on function _tsfleet.formula_parse(
    text, text[], text[], integer[], jsonb, integer, integer, integer
) to tsfleet_ingest, tsfleet_analyst;

create or replace function _tsfleet.formula_checked(
    p_operator text,
    p_left double precision,
    p_right double precision
)
returns double precision
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
begin
    return case p_operator
        when '+' then p_left + p_right
        when '-' then p_left - p_right
        when '*' then p_left * p_right
        when '/' then p_left / nullif(p_right, 0::double precision)
    end;
exception when numeric_value_out_of_range then
    return null;
end;
$$;

comment on function _tsfleet.formula_checked(text, double precision, double precision) is
'One formula operator (+ - * /) that gives NULL instead of an overflow or underflow error.';

grant execute on function _tsfleet.formula_checked(text, double precision, double precision)
to tsfleet_ingest, tsfleet_analyst;

create or replace function _tsfleet.compile_formula(
    p_formula text,
    p_refs jsonb,
    p_safe boolean default false
)
returns text
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_tokens record;
    v_index integer;
    v_sql text;
begin
    v_tokens := _tsfleet.formula_tokenize(p_formula);
    select f.p_index, f.p_sql into v_index, v_sql
    from _tsfleet.formula_parse(
        p_formula, v_tokens.token_kinds, v_tokens.token_texts, v_tokens.token_positions,
        coalesce(p_refs, '{}') - '#safe'
        || case when p_safe then '{"#safe": ""}'::jsonb else '{}'::jsonb end,
        0, 0, 1
    ) as f;
    if v_index <= pg_catalog.cardinality(v_tokens.token_kinds) then
        raise exception 'tsfleet: invalid formula %: unexpected "%" at position %',
        pg_catalog.quote_literal(p_formula), v_tokens.token_texts[v_index],
        v_tokens.token_positions[v_index]
        using errcode = 'invalid_parameter_value';
    end if;
    return v_sql;
end;
$$;

comment on function _tsfleet.compile_formula(text, jsonb, boolean) is
'Compiles a validated formula into a SQL expression; p_refs maps each allowed metric name to '
'the SQL that reads it (built by the caller with format). Raises naming the offending token. '
'p_safe: overflow-checked operators (slower; for the retry after an overflow).';

grant execute on function _tsfleet.compile_formula(text, jsonb, boolean)
to tsfleet_ingest, tsfleet_analyst;

-- Couples with: telemetry.asset_types.telemetry_schema (migration 0007) and docs/processing.md.
create or replace function _tsfleet.check_telemetry_schema(
    p_asset_type_key text,
    p_schema jsonb
)
returns void
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_refs jsonb := '{}';
    v_metric jsonb;
    v_item jsonb;
    v_name text;
    v_position bigint;
    v_message text;
begin
    if pg_catalog.jsonb_typeof(p_schema) is distinct from 'object' then
        raise exception 'tsfleet: asset type %: telemetry_schema must be a JSON object',
        p_asset_type_key
        using errcode = 'invalid_parameter_value';
    end if;
    if p_schema ? 'metrics' then
        if pg_catalog.jsonb_typeof(p_schema -> 'metrics') <> 'array' then
            raise exception 'tsfleet: asset type %: telemetry_schema.metrics must be an array '
            'of metric names', p_asset_type_key
            using errcode = 'invalid_parameter_value';
        end if;
        for v_metric in
            select e.value from pg_catalog.jsonb_array_elements(p_schema -> 'metrics') as e
        loop
            if pg_catalog.jsonb_typeof(v_metric) <> 'string' or v_metric #>> '{}' = '' then
                raise exception 'tsfleet: asset type %: telemetry_schema.metrics: % is not a '
                'metric name', p_asset_type_key, v_metric
                using errcode = 'invalid_parameter_value';
            end if;
            v_refs := v_refs || pg_catalog.jsonb_build_object(v_metric #>> '{}', 'x');
        end loop;
    end if;
    if not p_schema ? 'derived_metrics' then
        return;
    end if;
    if pg_catalog.jsonb_typeof(p_schema -> 'derived_metrics') <> 'array' then
        raise exception 'tsfleet: asset type %: telemetry_schema.derived_metrics must be an '
        'array of {name, formula, unit}', p_asset_type_key
        using errcode = 'invalid_parameter_value';
    end if;
    -- With formulas of at most 2000 characters, 100 derived metrics bound what one reading
    -- set computes (each derived metric is computed once: derived_steps_sql).
    if pg_catalog.jsonb_array_length(p_schema -> 'derived_metrics') > 100 then
        raise exception 'tsfleet: asset type %: telemetry_schema.derived_metrics has % '
        'entries; at most 100 are allowed', p_asset_type_key,
        pg_catalog.jsonb_array_length(p_schema -> 'derived_metrics')
        using errcode = 'invalid_parameter_value';
    end if;
    for v_item, v_position in
        select e.value, e.ordinality
        from pg_catalog.jsonb_array_elements(p_schema -> 'derived_metrics') with ordinality as e
    loop
        if pg_catalog.jsonb_typeof(v_item) <> 'object'
            or pg_catalog.jsonb_typeof(v_item -> 'name') is distinct from 'string'
            or pg_catalog.jsonb_typeof(v_item -> 'formula') is distinct from 'string'
            or pg_catalog.jsonb_typeof(v_item -> 'unit') not in ('string', 'null')
            or exists (
                select from pg_catalog.jsonb_object_keys(v_item) as k (key_name)
                where k.key_name not in ('name', 'formula', 'unit', 'description')
            ) then
            raise exception 'tsfleet: asset type %: derived_metrics[%] must be an object '
            '{"name": text, "formula": text, "unit": text or null, "description": text}, got %',
            p_asset_type_key, v_position, v_item
            using errcode = 'invalid_parameter_value';
        end if;
        v_name := v_item ->> 'name';
        if v_name !~ '^[A-Za-z_][A-Za-z0-9_]*$'
            or pg_catalog.lower(v_name) in ('abs', 'sqrt', 'round', 'least', 'greatest')
            or v_name = 'health_score' then
            raise exception 'tsfleet: asset type %: derived metric name "%" is not allowed',
            p_asset_type_key, v_name
            using errcode = 'invalid_parameter_value',
            hint = 'Use letters, digits and _ (not first), not a function name nor health_score.';
        end if;
        if v_refs ? v_name then
            raise exception 'tsfleet: asset type %: derived metric "%" is defined twice or '
            'shadows a metric of telemetry_schema.metrics', p_asset_type_key, v_name
            using errcode = 'invalid_parameter_value';
        end if;
        begin
            perform _tsfleet.compile_formula(v_item ->> 'formula', v_refs);
        exception when invalid_parameter_value then
            get stacked diagnostics v_message = message_text;
            raise exception 'tsfleet: asset type %: derived metric "%": %', p_asset_type_key,
            v_name, pg_catalog.regexp_replace(v_message, '^tsfleet: ', '')
            using errcode = 'invalid_parameter_value',
            hint = 'Formulas allow numbers, metrics of telemetry_schema.metrics, earlier '
            'derived metrics, + - * /, parentheses and abs, sqrt, round, least, greatest.';
        end;
        v_refs := v_refs || pg_catalog.jsonb_build_object(v_name, 'x');
    end loop;
end;
$$;

comment on function _tsfleet.check_telemetry_schema(text, jsonb) is
'Validates an asset type''s telemetry_schema: metrics (names), derived_metrics [{name, '
'formula, unit}] with formulas over declared metrics and earlier derived metrics.';

-- Called by the asset_types trigger as the role that writes asset types.
grant execute on function _tsfleet.check_telemetry_schema(text, jsonb) to tsfleet_owner;

create or replace function _tsfleet.asset_types_check_telemetry_schema()
returns trigger
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    perform _tsfleet.check_telemetry_schema(new.asset_type_key, new.telemetry_schema);
    return new;
end;
$$;

comment on function _tsfleet.asset_types_check_telemetry_schema() is
'Trigger: rejects an insert or update of telemetry.asset_types whose telemetry_schema or '
'formulas are invalid, naming the offending token.';

create or replace trigger asset_types_check_telemetry_schema
before insert or update of telemetry_schema, asset_type_key on telemetry.asset_types
for each row execute function _tsfleet.asset_types_check_telemetry_schema();

-- The derived metrics of an asset type, in list order, each compiled against p_refs (metric
-- name -> SQL) plus the derived metrics before it. A derived metric whose name is also in
-- p_refs (a value that arrived as such) keeps the arrived value: coalesce(arrived, computed).
-- An earlier derived metric is referred to, not copied: as <p_alias><position>.value, the
-- column of the caller's step `cross join lateral (select <expression> as value offset 0) as
-- <p_alias><position>` (derived_steps_sql builds them). Inlined, a chain of 20 derived metrics
-- that each used the previous one twice compiled to an 11.5 MB expression.
create or replace function _tsfleet.derived_expressions(
    p_asset_type_id integer,
    p_refs jsonb,
    p_safe boolean default false,
    p_alias text default 'tsfleet_derived_'
)
returns table (
    derived_position bigint,
    metric_name text,
    unit text,
    formula text,
    expression text,
    value_sql text
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_refs jsonb := coalesce(p_refs, '{}');
    v_item jsonb;
begin
    for v_item, derived_position in
        select e.value, e.ordinality
        from telemetry.asset_types as aty
        cross join lateral pg_catalog.jsonb_array_elements(
            coalesce(aty.telemetry_schema -> 'derived_metrics', '[]')
        ) with ordinality as e
        where aty.asset_type_id = p_asset_type_id
        order by e.ordinality
    loop
        metric_name := v_item ->> 'name';
        unit := v_item ->> 'unit';
        formula := v_item ->> 'formula';
        expression := _tsfleet.compile_formula(formula, v_refs, p_safe);
        if v_refs ? metric_name then
            expression := pg_catalog.format(
                'coalesce(%s, %s)', v_refs ->> metric_name, expression
            );
        end if;
        value_sql := pg_catalog.format('%I.value', p_alias || derived_position);
        v_refs := v_refs || pg_catalog.jsonb_build_object(metric_name, value_sql);
        return next;
    end loop;
end;
$$;

comment on function _tsfleet.derived_expressions(integer, jsonb, boolean, text) is
'Derived metrics of an asset type in list order, compiled to SQL over p_refs (name -> SQL); '
'value_sql names the column of the step that computes each (see derived_steps_sql).';

grant execute on function _tsfleet.derived_expressions(integer, jsonb, boolean, text)
to tsfleet_ingest, tsfleet_analyst;

-- The FROM steps that compute an asset type's derived metrics, each once per row: `cross join
-- lateral (select <expression> as value offset 0) as <p_alias><position>`, in list order, so a
-- later step reads an earlier one's value. OFFSET 0 keeps the planner from pulling the step up
-- into the query, which would copy its expression into every reference again.
create or replace function _tsfleet.derived_steps_sql(
    p_asset_type_id integer,
    p_refs jsonb,
    p_safe boolean default false,
    p_alias text default 'tsfleet_derived_'
)
returns text
language sql
stable
set search_path = pg_catalog, pg_temp
as $$
    select coalesce(
        pg_catalog.string_agg(
            pg_catalog.format(
                ' cross join lateral (select %s as value offset 0) as %I',
                de.expression, p_alias || de.derived_position
            ),
            '' order by de.derived_position
        ),
        ''
    )
    from _tsfleet.derived_expressions(p_asset_type_id, p_refs, p_safe, p_alias) as de;
$$;

comment on function _tsfleet.derived_steps_sql(integer, jsonb, boolean, text) is
'FROM clause steps (cross join lateral ... offset 0) computing each derived metric of an asset '
'type once per row, earlier ones readable by later ones; see derived_expressions.';

grant execute on function _tsfleet.derived_steps_sql(integer, jsonb, boolean, text)
to tsfleet_ingest, tsfleet_analyst;

create or replace function telemetry.evaluate_formula(p_formula text, p_metrics jsonb)
returns double precision
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_refs jsonb;
    v_numbers jsonb;
    v_result double precision;
begin
    select coalesce(
        pg_catalog.jsonb_object_agg(
            e.key, pg_catalog.format('($1 ->> %L)::double precision', e.key)
        ),
        '{}'
    )
    into v_refs
    from pg_catalog.jsonb_each(coalesce(p_metrics, '{}')) as e;
    select coalesce(pg_catalog.jsonb_object_agg(e.key, e.value), '{}')
    into v_numbers
    from pg_catalog.jsonb_each(coalesce(p_metrics, '{}')) as e
    where pg_catalog.jsonb_typeof(e.value) = 'number';
    begin
        execute 'select ' || _tsfleet.compile_formula(p_formula, v_refs)
        into v_result
        using v_numbers;
    exception when numeric_value_out_of_range then
        execute 'select ' || _tsfleet.compile_formula(p_formula, v_refs, true)
        into v_result
        using v_numbers;
    end;
    return v_result;
end;
$$;

comment on function telemetry.evaluate_formula(text, jsonb) is
'Evaluates a derived-metric formula over a metrics object, e.g. evaluate_formula(''a * b'', '
'''{"a": 2, "b": 3}''). Names must be keys of the object; a null or non-number value is a '
'missing input (result NULL), as is division by zero, sqrt of a negative or an overflow.';

grant execute on function telemetry.evaluate_formula(text, jsonb)
to tsfleet_ingest, tsfleet_analyst;
