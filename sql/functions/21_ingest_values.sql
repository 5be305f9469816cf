-- Ingest values: text to typed values, row by row and set-based (issue 15: the database
-- parses; Python sends text). Every function returns NULL or a reason instead of raising, so
-- one bad value is one reject and the good rows beside it load.
-- Couples with: 22_ingest_parse.sql (the callers), docs/formats.md (the documented limits).

-- The documented length limit of keys (device keys, metric names, message ids, tenants).
create or replace function ingest.key_length_limit()
returns integer
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select 200;
$$;

comment on function ingest.key_length_limit() is
'Longest device key, metric name, message id or tenant key a row may carry (characters); a '
'longer one is a reject with that reason.';

grant execute on function ingest.key_length_limit() to tsfleet_ingest;


-- Quality flags are short words ('good', 'estimated'...); a longer cell is a reject.
create or replace function ingest.quality_length_limit()
returns integer
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select 100;
$$;

comment on function ingest.quality_length_limit() is
'Longest quality flag a row may carry (characters); a longer one is a reject.';

grant execute on function ingest.quality_length_limit() to tsfleet_ingest;


-- Fields of one CSV line: a line without quotes splits on the delimiter (the common case, in
-- C); a quoted line is read by a regular expression. NULL: the quotes do not balance (a quoted
-- field with a line break inside is not supported: each physical line is one record).
create or replace function ingest.split_csv_line(p_line text, p_delimiter text)
returns text[]
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select case
        when p_line is null then null
        when strpos(p_line, '"') = 0 then string_to_array(p_line, p_delimiter)
        else ingest.split_quoted_csv_line(p_line, p_delimiter)
    end;
$$;

comment on function ingest.split_csv_line(text, text) is
'The fields of one CSV line split on a one-character delimiter, quoted fields unquoted; NULL '
'when its quotes do not balance.';

grant execute on function ingest.split_csv_line(text, text) to tsfleet_ingest;


create or replace function ingest.split_quoted_csv_line(p_line text, p_delimiter text)
returns text[]
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    with
    pattern as (
        select regexp_replace(p_delimiter, '([^[:alnum:]])', '\\\1', 'g') as d
    ),

    fields as (
        select
            m.match[1] as raw_field,
            m.ordinality
        from pattern as p
        -- Every field is matched with the delimiter before it (the line gets one in front):
        -- a match is never empty, so an empty first field cannot make the scan skip a
        -- delimiter.
        cross join lateral regexp_matches(
            p_delimiter || p_line, p.d || '("(?:[^"]|"")*"|[^"' || p.d || ']*)', 'g'
        ) with ordinality as m (match, ordinality)
    ),

    final as (
        select
            string_agg(f.raw_field, p_delimiter order by f.ordinality) as joined,
            array_agg(
                case
                    when f.raw_field like '"%'
                        then replace(substr(f.raw_field, 2, length(f.raw_field) - 2), '""', '"')
                    else f.raw_field
                end
                order by f.ordinality
            ) as unquoted
        from fields as f
    )

    select case when f.joined = p_line then f.unquoted end
    from final as f;
$$;

comment on function ingest.split_quoted_csv_line(text, text) is
'The fields of a CSV line that holds quotes (RFC 4180 quoting on one line); NULL when the '
'quotes do not balance.';

grant execute on function ingest.split_quoted_csv_line(text, text) to tsfleet_ingest;


-- A number as the loaders accept it: digits, one decimal point, an exponent. Such text of
-- bounded size (200 characters, a 2-digit exponent) casts to double precision without error;
-- anything longer goes through ingest.float_or_null (an exception block, rare inputs only).
create or replace function ingest.to_float(p_text text)
returns double precision
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select case
        when length(p_text) <= 200
            and p_text ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$'
            then p_text::double precision
        when p_text ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$'
            then ingest.float_or_null(p_text)
    end;
$$;

comment on function ingest.to_float(text) is
'Double precision of a decimal number text (digits, point, exponent; no NaN, Infinity or '
'underscores); NULL when it is not one or is out of range.';

grant execute on function ingest.to_float(text) to tsfleet_ingest;


create or replace function ingest.float_or_null(p_text text)
returns double precision
language plpgsql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
begin
    -- Through numeric first: it reads any length; float8's own input would accept 'NaN'.
    return p_text::numeric::double precision;
exception when others then
    return null;
end;
$$;

comment on function ingest.float_or_null(text) is
'Double precision of a long decimal number text, NULL when it overflows or underflows it.';

grant execute on function ingest.float_or_null(text) to tsfleet_ingest;


-- The value text of a cell: trimmed, with a decimal comma read as a point.
create or replace function ingest.number_text(p_raw text, p_decimal text)
returns text
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select case
        when p_decimal = ',' and strpos(p_raw, '.') = 0 then replace(btrim(p_raw), ',', '.')
        when p_decimal = ',' then '.' || btrim(p_raw)
        else btrim(p_raw)
    end;
$$;

comment on function ingest.number_text(text, text) is
'A value cell as number text: trimmed; with decimal '','' its comma becomes a point (a cell '
'that also holds a point is made unreadable, so 1.234,5 is rejected, not misread).';

grant execute on function ingest.number_text(text, text) to tsfleet_ingest;


-- Couples with: ingest.to_float (a NULL from it needs a reason here).
create or replace function ingest.number_problem(p_raw text, p_text text)
returns text
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select case
        when p_text is null or p_text = '' then 'empty value'
        when lower(p_text) in (
            'nan', '+nan', '-nan', 'inf', '+inf', '-inf', 'infinity', '+infinity', '-infinity'
        ) then format('value %s is not a finite number', p_text)
        when p_text ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$'
            then format(
                'value %s is out of the range of a double precision number',
                left(p_text, 40) || case when length(p_text) > 40 then '...' else '' end
            )
        else format(
            'not a number: %L',
            left(p_raw, 60) || case when length(p_raw) > 60 then '...' else '' end
        )
    end;
$$;

comment on function ingest.number_problem(text, text) is
'Why a value text is not a storable number (empty, not finite, out of range, not a number).';

grant execute on function ingest.number_problem(text, text) to tsfleet_ingest;


-- strptime directives (what users know from Python and C) to a to_timestamp() pattern. Text
-- between directives is quoted, so that letters in it are not read as pattern fields.
create or replace function ingest.strptime_pattern(p_format text)
returns text
language plpgsql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
    v_pattern text := '';
    v_literal text := '';
    v_position integer := 1;
    v_char text;
    v_field text;
begin
    while v_position <= length(p_format) loop
        v_char := substr(p_format, v_position, 1);
        if v_char <> '%' then
            v_literal := v_literal || v_char;
            v_position := v_position + 1;
            continue;
        end if;
        v_char := substr(p_format, v_position + 1, 1);
        v_field := case v_char
            when 'Y' then 'YYYY' when 'y' then 'YY' when 'm' then 'MM' when 'd' then 'DD'
            when 'H' then 'HH24' when 'I' then 'HH12' when 'M' then 'MI' when 'S' then 'SS'
            when 'f' then 'US' when 'p' then 'AM' when 'b' then 'Mon' when 'B' then 'Month'
            when 'j' then 'DDD' when 'z' then 'TZHTZM'
        end;
        if v_char = '%' then
            v_literal := v_literal || '%';
        elsif v_field is null then
            raise exception using
                errcode = 'TSF02',
                message = format('--time-format %L: unsupported directive %%%s', p_format, v_char),
                hint = 'supported: %Y %y %m %d %H %I %p %M %S %f %b %B %j %z %%';
        else
            if v_literal <> '' then
                v_pattern := v_pattern || '"' || replace(v_literal, '"', '\"') || '"';
                v_literal := '';
            end if;
            v_pattern := v_pattern || v_field;
        end if;
        v_position := v_position + 2;
    end loop;
    if v_literal <> '' then
        v_pattern := v_pattern || '"' || replace(v_literal, '"', '\"') || '"';
    end if;
    return v_pattern;
end;
$$;

comment on function ingest.strptime_pattern(text) is
'to_timestamp() pattern of a strptime format (%Y %y %m %d %H %I %p %M %S %f %b %B %j %z %%); '
'raises TSF02 for another directive.';

grant execute on function ingest.strptime_pattern(text) to tsfleet_ingest;


-- A local wall-clock time in a zone, honestly: a time the zone skips (clocks go forward) is
-- nonexistent and a time it shows twice (clocks go back) is ambiguous. Both are reasons,
-- unless p_ambiguous says which of the two instants an ambiguous time means ('earliest' or
-- 'latest', pandas' vocabulary). The candidates come from the zone's offsets a day before and
-- after: a zone changes its offset at most once in two days.
create or replace function ingest.localize(
    p_local timestamp,
    p_zone text,
    p_ambiguous text default 'raise',
    out recorded_at timestamptz,
    out problem text
)
language plpgsql
stable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
declare
    v_guess timestamptz;
    v_before timestamptz;
    v_after timestamptz;
    v_before_ok boolean;
    v_after_ok boolean;
begin
    if p_zone = 'UTC' then
        recorded_at := p_local at time zone 'UTC';
        return;
    end if;
    v_guess := p_local at time zone p_zone;
    v_before := (
        p_local
        - ((v_guess - interval '1 day') at time zone p_zone
            - (v_guess - interval '1 day') at time zone 'UTC')
    ) at time zone 'UTC';
    v_after := (
        p_local
        - ((v_guess + interval '1 day') at time zone p_zone
            - (v_guess + interval '1 day') at time zone 'UTC')
    ) at time zone 'UTC';
    v_before_ok := (v_before at time zone p_zone) = p_local;
    v_after_ok := (v_after at time zone p_zone) = p_local;
    if v_before_ok and v_after_ok and v_before <> v_after then
        if p_ambiguous = 'earliest' then
            recorded_at := least(v_before, v_after);
        elsif p_ambiguous = 'latest' then
            recorded_at := greatest(v_before, v_after);
        else
            problem := format(
                'ambiguous local time %s in %s (the clocks go back and show it twice); '
                'pass --ambiguous earliest or latest, or write the UTC offset',
                p_local, p_zone
            );
        end if;
    elsif v_before_ok then
        recorded_at := v_before;
    elsif v_after_ok then
        recorded_at := v_after;
    else
        problem := format(
            'nonexistent local time %s in %s (the clocks jump forward over it); '
            'write the UTC offset',
            p_local, p_zone
        );
    end if;
end;
$$;

comment on function ingest.localize(timestamp, text, text) is
'The instant of a local time in a zone, or the reason it has none (nonexistent) or two '
'(ambiguous, unless p_ambiguous is earliest or latest).';

grant execute on function ingest.localize(timestamp, text, text) to tsfleet_ingest;


-- ISO-8601 with a UTC offset (or Z) whose fields cannot be out of range: such text casts
-- without error, so the common case needs no exception block (the callers test this first).
create or replace function ingest.is_plain_iso(p_text text)
returns boolean
language sql
immutable
parallel safe
set search_path = pg_catalog, pg_temp
as $$
    select p_text ~ (
        '^[1-8][0-9]{3}-(0[1-9]|1[0-2])-(0[1-9]|1[0-9]|2[0-8])[T ]([01][0-9]|2[0-3]):[0-5][0-9]'
        '(:[0-5][0-9](\.[0-9]{1,6})?)?(Z|z|[+-](0[0-9]|1[0-4])(:?[0-5][0-9])?)$'
    );
$$;

comment on function ingest.is_plain_iso(text) is
'True for ISO-8601 text with an offset or Z, years 1000-8999 and days 1-28: it casts to '
'timestamptz without error (other text goes through ingest.parse_time).';

grant execute on function ingest.is_plain_iso(text) to tsfleet_ingest;


-- Couples with: loader/commands/load.py (--time-format, --timezone, --ambiguous).
create or replace function ingest.parse_time(
    p_raw text,
    p_format text default 'iso',
    p_zone text default 'UTC',
    p_ambiguous text default 'raise',
    out recorded_at timestamptz,
    out problem text
)
language plpgsql
stable
parallel safe
set search_path = pg_catalog, pg_temp
set timezone = 'UTC'
as $$
declare
    v_text text := btrim(p_raw);
    v_local timestamp;
    v_shown text := left(p_raw, 60) || case when length(p_raw) > 60 then '...' else '' end;
begin
    if v_text is null or v_text = '' then
        problem := 'empty timestamp';
        return;
    end if;
    if p_format = 'iso' then
        if v_text !~ (
            '^[0-9]{4}-[0-9]{2}-[0-9]{2}([T ][0-9]{2}:[0-9]{2}(:[0-9]{2}(\.[0-9]+)?)?'
            ' ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)?)?$'
        ) then
            problem := format('not an ISO-8601 timestamp: %L', v_shown);
            return;
        end if;
        begin
            if v_text ~ '[T ][0-9:.]+ ?(Z|z|[+-][0-9]{2}(:?[0-9]{2})?)$' then
                recorded_at := v_text::timestamptz;
            else
                v_local := v_text::timestamp;
            end if;
        exception when others then
            problem := format('not a valid date and time: %L (%s)', v_shown, sqlerrm);
            return;
        end;
    elsif p_format in ('epoch_s', 'epoch_ms') then
        if v_text !~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$' then
            problem := format('not an epoch number: %L', v_shown);
            return;
        end if;
        begin
            recorded_at := to_timestamp(
                v_text::double precision / case when p_format = 'epoch_ms' then 1000 else 1 end
            );
        exception when others then
            problem := format('epoch value out of range: %L', v_shown);
            return;
        end;
    else
        begin
            recorded_at := to_timestamp(v_text, ingest.strptime_pattern(p_format));
        exception when sqlstate 'TSF02' then
            raise;
        when others then
            problem := format(
                '%L does not match --time-format %L (%s)', v_shown, p_format, sqlerrm
            );
            return;
        end;
        if p_format not like '%\%z%' then
            v_local := recorded_at at time zone 'UTC';
            recorded_at := null;
        end if;
    end if;
    if v_local is not null then
        select l.recorded_at, l.problem into recorded_at, problem
        from ingest.localize(v_local, p_zone, p_ambiguous) as l;
    end if;
    if recorded_at < timestamptz '0001-01-01 00:00:00+00'
        or recorded_at >= timestamptz '10000-01-01 00:00:00+00' then
        recorded_at := null;
        problem := format('timestamp %L is out of range (years 1 to 9999 UTC)', v_shown);
    end if;
end;
$$;

comment on function ingest.parse_time(text, text, text, text) is
'The instant of a timestamp text, or the reason it has none. p_format: iso (offset, Z, or '
'local time in p_zone), epoch_s, epoch_ms, or a strptime format; p_ambiguous: raise, '
'earliest or latest for ambiguous local times. Range: years 1 to 9999 UTC.';

grant execute on function ingest.parse_time(text, text, text, text) to tsfleet_ingest;
