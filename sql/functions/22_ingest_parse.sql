-- Ingest parsing: the staged text of a batch (pg_temp.ingest_lines, filled by the loader's
-- COPY) becomes typed rows in pg_temp.ingest_staging, device records in
-- pg_temp.ingest_device_records and rejects in ingest.rejects, set-based. One function per
-- input shape: CSV lines (narrow or wide), JSON documents (messages, one per line or per stream
-- message), battery vendor documents (one per file). File-level problems raise SQLSTATE TSF01
-- with 'file:line:field: message' (the loader prints it as is); row-level problems are rejects.
-- Couples with: ingest.create_staging() (20_ingest.sql), ingest.write_batch()
-- (23_ingest_write.sql), loader/ingest/ (what it COPYs), docs/formats.md.

create or replace function ingest.input_error(
    p_source text,
    p_line bigint,
    p_field text,
    p_message text,
    p_hint text default null
)
returns void
language plpgsql
volatile
set search_path = pg_catalog, pg_temp
as $$
begin
    raise exception using
        errcode = 'TSF01',
        message = p_source
        || coalesce(':' || p_line, '')
        || coalesce(':' || p_field, '')
        || ': ' || p_message,
        hint = coalesce(p_hint, '');
end;
$$;

comment on function ingest.input_error(text, bigint, text, text, text) is
'Raise a file-level input error (SQLSTATE TSF01) as source:line:field: message, with a hint.';

grant execute on function ingest.input_error(text, bigint, text, text, text) to tsfleet_ingest;


-- The problems a parser staged (pg_temp.ingest_staging rows with a problem: a bad line or
-- cell) become rejects with the line's text, and leave staging with the missing cells
-- (--na-value codes, empty cells of wide files), counted. Parsers stage everything in one
-- pipelined statement; this runs after it, and its joins and deletes only when there is
-- something to move.
create or replace function ingest.settle_parse_problems(
    p_batch_id bigint,
    p_source_names text[],
    out rows_read bigint,
    out rows_rejected bigint,
    out values_missing bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
begin
    select
        count(*) filter (where not coalesce(s.is_missing, false)),
        count(*) filter (where s.problem is not null),
        count(*) filter (where s.is_missing)
    into rows_read, rows_rejected, values_missing
    from pg_temp.ingest_staging as s;
    if rows_rejected > 0 then
        insert into ingest.rejects (
            batch_id, source_name, line_number, field_name, raw_text, reason
        )
        select
            p_batch_id,
            p_source_names[s.source_no],
            s.line_number,
            s.field_name,
            left(l.body, 2000),
            s.problem
        from pg_temp.ingest_staging as s
        left join pg_temp.ingest_lines as l
            on s.source_no = l.source_no and s.line_number = l.line_number
        where s.problem is not null
        order by s.source_no, s.line_number;
    end if;
    if rows_rejected + values_missing > 0 then
        delete from pg_temp.ingest_staging as s
        where s.problem is not null or s.is_missing;
    end if;
end;
$$;

comment on function ingest.settle_parse_problems(bigint, text[]) is
'Move the staged problems of a parse (bad lines and cells) to ingest.rejects with their line '
'text, drop the missing cells, and return rows read (readings and rejects), rows rejected and '
'values missing.';

grant execute on function ingest.settle_parse_problems(bigint, text[]) to tsfleet_ingest;


-- The column layout of a CSV batch from its header and the options: positions of the time
-- columns, device, quality, and of each metric (narrow: the metric and value columns).
-- Helpful errors: a missing column names the header, suggests --time-column for a time-like
-- column and --layout wide when the metric columns are there; one column holding another
-- delimiter suggests --delimiter.
create or replace function ingest.csv_columns(
    p_source text,
    p_header text[],
    p_options jsonb,
    out time_positions integer[],
    out device_position integer,
    out quality_position integer,
    out metric_names text[],
    out metric_positions integer[]
)
language plpgsql
stable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_layout text := coalesce(p_options ->> 'layout', 'narrow');
    v_time_columns text[] := coalesce(
        nullif(array(select jsonb_array_elements_text(p_options -> 'time_columns')), '{}'),
        '{time}'
    );
    v_device_column text := coalesce(p_options ->> 'device_column', 'device');
    v_quality_column text := coalesce(p_options ->> 'quality_column', 'quality');
    v_metric_column text := coalesce(p_options ->> 'metric_column', 'metric');
    v_value_column text := coalesce(p_options ->> 'value_column', 'value');
    v_columns text[] := array(select jsonb_array_elements_text(p_options -> 'columns'));
    v_exclude text[] := array(select jsonb_array_elements_text(p_options -> 'exclude'));
    v_delimiter text := coalesce(p_options ->> 'delimiter', ',');
    v_required text[];
    v_missing text;
    v_hint text;
    v_other text;
    v_column text;
begin
    if cardinality(p_header) = 1 then
        select d.delimiter into v_other
        from unnest(array[';', E'\t', ',', '|']) as d (delimiter)
        where d.delimiter <> v_delimiter and strpos(p_header[1], d.delimiter) > 0
        limit 1;
        if v_other is not null then
            perform ingest.input_error(
                p_source, 1, null,
                format(
                    'the header is one column %L: the delimiter looks like %L, not %L',
                    left(p_header[1], 80), v_other, v_delimiter
                ),
                format('pass --delimiter %L', v_other)
            );
        end if;
    end if;
    for v_column in select h.name from unnest(p_header) with ordinality as h (name, position)
        loop
        if v_column = '' then
            perform ingest.input_error(
                p_source, 1, 'column ' || array_position(p_header, v_column),
                'empty column name'
            );
        end if;
    end loop;
    select h.name into v_column
    from unnest(p_header) as h (name)
    group by h.name
    having count(*) > 1
    limit 1;
    if v_column is not null then
        perform ingest.input_error(p_source, 1, v_column, 'duplicate column name');
    end if;

    v_required := v_time_columns;
    if p_options ->> 'device' is null then
        if v_layout = 'wide' and not v_device_column = any(p_header) then
            perform ingest.input_error(
                p_source, 1, v_device_column,
                'wide layout needs a device column or a fixed device',
                'pass --device-column NAME or --device KEY'
            );
        end if;
        v_required := v_required || v_device_column;
    end if;
    if v_layout = 'narrow' then
        v_required := v_required || array[v_metric_column, v_value_column];
    end if;
    select r.name into v_missing
    from unnest(v_required) with ordinality as r (name, position)
    where not r.name = any(p_header)
    order by r.position
    limit 1;
    if v_missing is not null then
        v_hint := concat_ws(
            '; ',
            case when v_missing = any(v_time_columns) then (
                select 'try --time-column ' || h.name
                from unnest(p_header) as h (name)
                where h.name ~* '^(time|timestamp|date|datetime|date_time|ts|recorded_at|time_utc)$'
                limit 1
            ) end,
            case when v_layout = 'narrow' and v_missing in (v_metric_column, v_value_column)
                then 'try --layout wide for one column per metric'
            end,
            'check the header line or the column options'
        );
        perform ingest.input_error(
            p_source, 1, v_missing,
            format(
                'required column %L is missing (header: %s)', v_missing,
                left(array_to_string(p_header, v_delimiter), 200)
            ),
            v_hint
        );
    end if;

    time_positions := array(
        select array_position(p_header, t.name)
        from unnest(v_time_columns) with ordinality as t (name, position)
        order by t.position
    );
    device_position := case
        when p_options ->> 'device' is null then array_position(p_header, v_device_column)
    end;
    quality_position := array_position(p_header, v_quality_column);
    if v_layout = 'narrow' then
        metric_names := array[v_metric_column];
        metric_positions := array[
            array_position(p_header, v_metric_column), array_position(p_header, v_value_column)
        ];
        return;
    end if;
    select c.name into v_missing
    from unnest(v_columns || v_exclude) as c (name)
    where not c.name = any(p_header)
    limit 1;
    if v_missing is not null then
        perform ingest.input_error(
            p_source, 1, v_missing,
            format(
                'column %L of --columns/--exclude is not in the header (%s)', v_missing,
                left(array_to_string(p_header, v_delimiter), 200)
            )
        );
    end if;
    select
        array_agg(h.name order by h.position),
        array_agg(h.position::integer order by h.position)
    into metric_names, metric_positions
    from unnest(p_header) with ordinality as h (name, position)
    where
        h.position <> all(time_positions)
        and h.position is distinct from device_position::bigint
        and h.position is distinct from quality_position::bigint
        and (cardinality(v_columns) = 0 or h.name = any(v_columns))
        and not h.name = any(v_exclude);
    if metric_names is null then
        perform ingest.input_error(
            p_source, 1, null, 'wide layout without metric columns',
            'add one column per metric, or check --columns/--exclude'
        );
    end if;
end;
$$;

comment on function ingest.csv_columns(text, text[], jsonb) is
'Positions of the time, device, quality and metric columns of a CSV header under the load '
'options (layout, *_column, device, columns, exclude, delimiter); raises TSF01 with a hint '
'for a header that does not fit.';

grant execute on function ingest.csv_columns(text, text[], jsonb) to tsfleet_ingest;


-- CSV lines to typed rows. Options (jsonb, all optional): layout narrow|wide, header (column
-- names when the lines hold no header line), time_columns (joined by a space), time_format,
-- timezone, ambiguous, device (fixed device key), device_column, metric_column, value_column,
-- quality_column, columns/exclude (wide), delimiter, decimal, na_values. Timestamps are parsed
-- once per distinct text (rows of one time share it).
create or replace function ingest.parse_csv(
    p_batch_id bigint,
    p_source_names text[],
    p_options jsonb,
    out rows_read bigint,
    out rows_rejected bigint,
    out values_missing bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_source text := p_source_names[1];
    v_delimiter text := coalesce(p_options ->> 'delimiter', ',');
    v_decimal text := coalesce(p_options ->> 'decimal', '.');
    v_format text := coalesce(p_options ->> 'time_format', 'iso');
    v_zone text := coalesce(p_options ->> 'timezone', 'UTC');
    v_ambiguous text := coalesce(p_options ->> 'ambiguous', 'raise');
    v_na text[] := array(select jsonb_array_elements_text(p_options -> 'na_values'));
    v_fixed text := p_options ->> 'device';
    v_narrow boolean := coalesce(p_options ->> 'layout', 'narrow') = 'narrow';
    v_time_label text;
    v_device_label text := coalesce(p_options ->> 'device_column', 'device');
    v_header text[];
    v_first bigint := 1;
    v_columns record;
    v_width integer;
    v_key_limit integer := ingest.key_length_limit();
    v_quality_limit integer := ingest.quality_length_limit();
    v_single_time boolean;
begin
    if p_options ? 'header' then
        v_header := array(select jsonb_array_elements_text(p_options -> 'header'));
    else
        select ingest.split_csv_line(l.body, v_delimiter) into v_header
        from pg_temp.ingest_lines as l
        where l.line_number = 1;
        if not found then
            perform ingest.input_error(
                v_source, null, null, 'the file is empty',
                'a CSV file needs a header line and data rows'
            );
        end if;
        if v_header is null then
            perform ingest.input_error(v_source, 1, null, 'the header''s quotes do not balance');
        end if;
        v_header[1] := ltrim(v_header[1], U&'\FEFF');
        v_header := array(select btrim(h.name) from unnest(v_header) as h (name));
        v_first := 2;
    end if;
    select * into v_columns from ingest.csv_columns(v_source, v_header, p_options);
    v_width := cardinality(v_header);
    v_single_time := cardinality(v_columns.time_positions) = 1;
    v_time_label := array_to_string(
        array(
            select v_header[t.position] from unnest(v_columns.time_positions) as t (position)
        ),
        '+'
    );
    if v_fixed is not null and length(v_fixed) > v_key_limit then
        perform ingest.input_error(
            v_source, null, null,
            format('--device is longer than %s characters', v_key_limit)
        );
    end if;
    if v_first = 2 and not exists (
        select from pg_temp.ingest_lines as l
        where l.line_number >= v_first and l.body <> ''
    ) then
        perform ingest.input_error(
            v_source, v_first, null, 'the file has a header but no data rows'
        );
    end if;

    -- One pass over the lines, pipelined into the staging table: nothing is materialized but
    -- the parsed distinct times (a time text is parsed once, however many rows share it).
    -- Bad lines and cells are staged with their problem, then moved to ingest.rejects.
    with
    lines as not materialized (
        select
            l.source_no,
            l.line_number,
            -- ingest.split_csv_line written out: a function with its own search_path is not
            -- inlined, and a call per line cost more than the split itself.
            case
                when strpos(l.body, '"') = 0 then string_to_array(l.body, v_delimiter)
                else ingest.split_quoted_csv_line(l.body, v_delimiter)
            end as fields
        from pg_temp.ingest_lines as l
        where l.line_number >= v_first and l.body <> ''
        offset 0  -- not pulled up: each line is split once, however often fields is read
    ),

    stamped as not materialized (
        select
            li.source_no,
            li.line_number,
            li.fields,
            case
                when cardinality(li.fields) <> v_width then null
                when v_single_time then li.fields[v_columns.time_positions[1]]
                else array_to_string(
                    array(
                        select li.fields[t.position]
                        from unnest(v_columns.time_positions) as t (position)
                    ),
                    ' '
                )
            end as raw_time
        from lines as li
        offset 0
    ),

    distinct_times as (
        select distinct s.raw_time from stamped as s where s.raw_time is not null
    ),

    times as materialized (
        select
            d.raw_time,
            coalesce(
                case
                    when v_format = 'iso' and ingest.is_plain_iso(d.raw_time)
                        then d.raw_time::timestamptz
                end,
                p.recorded_at
            ) as recorded_at,
            p.problem
        from distinct_times as d
        left join lateral (
            select pt.recorded_at, pt.problem
            from ingest.parse_time(d.raw_time, v_format, v_zone, v_ambiguous) as pt
            where not (v_format = 'iso' and ingest.is_plain_iso(d.raw_time))
        ) as p on true
    ),

    checked_lines as (
        select
            s.source_no,
            s.line_number,
            s.fields,
            t.recorded_at,
            coalesce(v_fixed, btrim(s.fields[v_columns.device_position])) as device_key,
            nullif(lower(btrim(s.fields[v_columns.quality_position])), '') as quality,
            case
                when s.fields is null then 'the quotes of this line do not balance'
                when cardinality(s.fields) <> v_width
                    then format('expected %s fields, got %s', v_width, cardinality(s.fields))
                when t.problem is not null then t.problem
                when v_fixed is null and btrim(s.fields[v_columns.device_position]) = ''
                    then 'empty device'
                when v_fixed is null
                    and length(s.fields[v_columns.device_position]) > v_key_limit
                    then format('device key longer than %s characters', v_key_limit)
                when length(s.fields[v_columns.quality_position]) > v_quality_limit
                    then format('quality flag longer than %s characters', v_quality_limit)
            end as problem,
            case
                when s.fields is null or cardinality(s.fields) <> v_width then null
                when t.problem is not null then v_time_label
                when v_fixed is null
                    and (
                        btrim(s.fields[v_columns.device_position]) = ''
                        or length(s.fields[v_columns.device_position]) > v_key_limit
                    )
                    then v_device_label
                else v_header[v_columns.quality_position]
            end as problem_field
        from stamped as s
        left join times as t on s.raw_time = t.raw_time
        offset 0  -- problem and the fields are computed once per line
    ),

    -- A bad line is one row (no cells); a good line one row per metric cell (narrow: one).
    cells as (
        select
            cl.source_no,
            cl.line_number,
            cl.recorded_at,
            cl.device_key,
            cl.quality,
            cl.problem as line_problem,
            cl.problem_field,
            c.metric_name,
            c.field_name,
            c.raw_value,
            -- ingest.number_text written out (inlined, as above).
            case
                when v_decimal = ',' and strpos(c.raw_value, '.') = 0
                    then replace(btrim(c.raw_value), ',', '.')
                when v_decimal = ',' then '.' || btrim(c.raw_value)
                else btrim(c.raw_value)
            end as value_text
        from checked_lines as cl
        cross join lateral (
            select
                null::text as metric_name,
                null::text as field_name,
                null::text as raw_value
            where cl.problem is not null
            union all
            select
                btrim(cl.fields[v_columns.metric_positions[1]]),
                v_header[v_columns.metric_positions[2]],
                cl.fields[v_columns.metric_positions[2]]
            where v_narrow and cl.problem is null
            union all
            select
                m.name,
                m.name,
                cl.fields[m.position]
            from unnest(v_columns.metric_names, v_columns.metric_positions) as m (name, position)
            where not v_narrow and cl.problem is null
        ) as c
        offset 0
    ),

    -- ingest.to_float written out, once per cell (offset 0 keeps the subquery from being
    -- pulled up into every reference).
    valued as (
        select
            c.*,
            n.value,
            n.is_missing
        from cells as c
        cross join lateral (
            select
                case
                    when length(c.value_text) <= 200
                        and c.value_text ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]{1,2})?$'
                        then c.value_text::double precision
                    when c.value_text ~ '^[+-]?([0-9]+(\.[0-9]*)?|\.[0-9]+)([eE][+-]?[0-9]+)?$'
                        then ingest.float_or_null(c.value_text)
                end as value,
                c.line_problem is null
                and (
                    btrim(c.raw_value) = any(v_na) or (not v_narrow and btrim(c.raw_value) = '')
                ) as is_missing
            offset 0
        ) as n
    )

    insert into pg_temp.ingest_staging (
        source_no, line_number, recorded_at, device_key, metric_name, value, quality,
        field_name, problem, is_missing
    )
    select
        v.source_no,
        v.line_number,
        v.recorded_at,
        v.device_key,
        v.metric_name,
        v.value,
        v.quality,
        case
            when v.line_problem is not null then v.problem_field
            when v.is_missing then null
            when v.metric_name = '' or length(v.metric_name) > v_key_limit
                then v_header[v_columns.metric_positions[1]]
            else v.field_name
        end,
        case
            when v.line_problem is not null then v.line_problem
            when v.is_missing then null
            when v.metric_name = '' then 'empty metric name'
            when length(v.metric_name) > v_key_limit
                then format('metric name longer than %s characters', v_key_limit)
            when v_decimal = ',' and strpos(v.raw_value, '.') > 0
                then format(
                    'value %L holds a point but --decimal is '',''', left(v.raw_value, 60)
                )
            when v.value is null then ingest.number_problem(v.raw_value, v.value_text)
        end,
        v.is_missing
    from valued as v;

    select * into rows_read, rows_rejected, values_missing
    from ingest.settle_parse_problems(p_batch_id, p_source_names);

    if v_fixed is not null then
        insert into pg_temp.ingest_device_records (device_key, device_type)
        values (v_fixed, p_options ->> 'device_type');
    end if;
end;
$$;

comment on function ingest.parse_csv(bigint, text[], jsonb) is
'Parse the CSV lines of pg_temp.ingest_lines into pg_temp.ingest_staging (one row per '
'reading) and ingest.rejects (one per bad line or cell, with line, field and reason), under '
'the load options; returns rows read, rejected and missing cells. Raises TSF01 for a '
'file-level problem.';

grant execute on function ingest.parse_csv(bigint, text[], jsonb) to tsfleet_ingest;


-- The JSON documents of pg_temp.ingest_lines, parsed by the server: all at once when every one
-- is valid JSON (the common case, one statement); otherwise again in chunks of 1,000, and a
-- failing chunk line by line, so that each invalid document is one reject with the parser's
-- reason (\u0000, a lone surrogate, nesting beyond the stack, broken syntax...).
create or replace function ingest.parse_documents()
returns void
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_chunk record;
    v_line record;
    v_detail text;
begin
    create temporary table if not exists ingest_documents (
        source_no integer not null,
        line_number bigint not null,
        message_id text,
        doc jsonb,
        problem text
    );
    truncate pg_temp.ingest_documents;
    begin
        insert into pg_temp.ingest_documents (source_no, line_number, message_id, doc)
        select l.source_no, l.line_number, l.message_id, ltrim(l.body, U&'\FEFF')::jsonb
        from pg_temp.ingest_lines as l
        where btrim(l.body) <> '';
        return;
    exception when others then
        null;  -- some document is not valid JSON: find it below
    end;
    for v_chunk in
        with numbered as (
            select
                l.line_number,
                row_number() over (order by l.line_number) as position
            from pg_temp.ingest_lines as l
            where btrim(l.body) <> ''
        )

        select
            min(n.line_number) as first_line,
            max(n.line_number) as last_line
        from numbered as n
        group by (n.position - 1) / 1000
        order by 1
    loop
        begin
            insert into pg_temp.ingest_documents (source_no, line_number, message_id, doc)
            select l.source_no, l.line_number, l.message_id, ltrim(l.body, U&'\FEFF')::jsonb
            from pg_temp.ingest_lines as l
            where
                l.line_number between v_chunk.first_line and v_chunk.last_line
                and btrim(l.body) <> '';
        exception when others then
            for v_line in
                select l.source_no, l.line_number, l.body, l.message_id
                from pg_temp.ingest_lines as l
                where
                    l.line_number between v_chunk.first_line and v_chunk.last_line
                    and btrim(l.body) <> ''
            loop
                begin
                    insert into pg_temp.ingest_documents (
                        source_no, line_number, message_id, doc
                    )
                    values (
                        v_line.source_no, v_line.line_number, v_line.message_id,
                        ltrim(v_line.body, U&'\FEFF')::jsonb
                    );
                exception when others then
                    get stacked diagnostics v_detail = pg_exception_detail;
                    insert into pg_temp.ingest_documents (
                        source_no, line_number, message_id, problem
                    )
                    values (
                        v_line.source_no, v_line.line_number, v_line.message_id,
                        'invalid JSON: ' || sqlerrm
                        || coalesce(' (' || nullif(v_detail, '') || ')', '')
                    );
                end;
            end loop;
        end;
    end loop;
end;
$$;

comment on function ingest.parse_documents() is
'Parse each non-blank line of pg_temp.ingest_lines as JSON into pg_temp.ingest_documents '
'(doc), or record why it is not JSON (problem).';

grant execute on function ingest.parse_documents() to tsfleet_ingest;


-- Normalized telemetry messages (one JSON object per line or stream message) to typed rows:
-- {"messageId", "deviceId", "organizationId", "timestamp", "metrics": {name: number},
-- "deviceMetadata": {"deviceType", "serialNumber", "firmwareVersion"}}. A message that fails a
-- whole-message check is one reject (field: the message field at fault, or NULL); a metric
-- that is not a storable number is one reject (field metrics.<name>) and the message's other
-- metrics load. The message id is the payload's messageId, else the staged one (a NATS
-- header). A message id repeated within the batch keeps its first line (the rest are counted
-- as duplicates by ingest.insert_staged_readings).
create or replace function ingest.parse_messages(
    p_batch_id bigint,
    p_source_names text[],
    out rows_read bigint,
    out rows_rejected bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_key_limit integer := ingest.key_length_limit();
begin
    perform ingest.parse_documents();
    if not exists (select from pg_temp.ingest_documents) then
        perform ingest.input_error(
            p_source_names[1], null, null, 'no messages: the input is empty',
            'expected one JSON object per line'
        );
    end if;
    with
    messages as (
        select
            d.source_no,
            d.line_number,
            d.doc,
            d.problem as json_problem,
            coalesce(btrim(d.doc ->> 'messageId'), d.message_id) as message_id,
            btrim(d.doc ->> 'deviceId') as device_key,
            d.doc ->> 'timestamp' as raw_time,
            d.doc ->> 'organizationId' as tenant_key,
            jsonb_typeof(d.doc) as doc_type
        from pg_temp.ingest_documents as d
    ),

    distinct_times as (
        select distinct m.raw_time
        from messages as m
        where m.raw_time is not null and m.doc_type = 'object'
    ),

    times as materialized (
        select
            d.raw_time,
            coalesce(
                case when ingest.is_plain_iso(d.raw_time) then d.raw_time::timestamptz end,
                p.recorded_at
            ) as recorded_at,
            p.problem
        from distinct_times as d
        left join lateral (
            select pt.recorded_at, pt.problem
            from ingest.parse_time(d.raw_time) as pt
            where not ingest.is_plain_iso(d.raw_time)
        ) as p on true
    ),

    -- The whole-message checks, written out here (a helper function per message would not
    -- be inlined): the first failing check gives the reason and the field.
    checked as materialized (
        select
            m.*,
            t.recorded_at,
            f.problem_field,
            case f.problem_field
                when 'messageId' then case
                    when not m.doc ? 'messageId' then 'required field messageId is missing'
                    when length(m.doc ->> 'messageId') > v_key_limit
                        then format('messageId longer than %s characters', v_key_limit)
                    else left(format(
                        'required field messageId is not a non-empty string: %s',
                        m.doc -> 'messageId'
                    ), 200)
                end
                when 'deviceId' then case
                    when not m.doc ? 'deviceId' then 'required field deviceId is missing'
                    when length(m.doc ->> 'deviceId') > v_key_limit
                        then format('deviceId longer than %s characters', v_key_limit)
                    else left(format(
                        'required field deviceId is not a non-empty string: %s',
                        m.doc -> 'deviceId'
                    ), 200)
                end
                when 'timestamp' then case
                    when not m.doc ? 'timestamp' then 'required field timestamp is missing'
                    when jsonb_typeof(m.doc -> 'timestamp') <> 'string'
                        then left(format(
                            'required field timestamp is not a string: %s',
                            m.doc -> 'timestamp'
                        ), 200)
                    else t.problem
                end
                when 'metrics' then 'required field metrics must be an object'
                when 'organizationId' then case
                    when length(m.doc ->> 'organizationId') > v_key_limit
                        then format('organizationId longer than %s characters', v_key_limit)
                    else 'organizationId must be a non-empty string when present'
                end
                else case when m.doc_type <> 'object'
                    then 'a message must be a JSON object, got ' || m.doc_type
                end
            end as problem
        from messages as m
        left join times as t on m.raw_time = t.raw_time
        cross join lateral (
            select case
                when m.doc is null or m.doc_type <> 'object' then null
                when jsonb_typeof(m.doc -> 'messageId') is distinct from 'string'
                    or btrim(m.doc ->> 'messageId') = ''
                    or length(m.doc ->> 'messageId') > v_key_limit then 'messageId'
                when jsonb_typeof(m.doc -> 'deviceId') is distinct from 'string'
                    or btrim(m.doc ->> 'deviceId') = ''
                    or length(m.doc ->> 'deviceId') > v_key_limit then 'deviceId'
                when jsonb_typeof(m.doc -> 'timestamp') is distinct from 'string'
                    then 'timestamp'
                when jsonb_typeof(m.doc -> 'metrics') is distinct from 'object'
                    then 'metrics'
                when m.doc ? 'organizationId' and (
                    jsonb_typeof(m.doc -> 'organizationId') <> 'string'
                    or btrim(m.doc ->> 'organizationId') = ''
                    or length(m.doc ->> 'organizationId') > v_key_limit
                ) then 'organizationId'
                when t.problem is not null then 'timestamp'
            end as problem_field
            offset 0
        ) as f
    ),

    cells as (
        select
            c.source_no,
            c.line_number,
            c.recorded_at,
            c.device_key,
            c.message_id,
            btrim(e.key) as metric_name,
            e.key as raw_name,
            e.value as raw_value,
            case
                when jsonb_typeof(e.value) = 'number' and length(e.value::text) <= 200
                    and e.value::text !~ '[eE][+-]?[0-9]{3}'
                    then e.value::text::double precision
                when jsonb_typeof(e.value) = 'number' then ingest.float_or_null(e.value::text)
            end as value
        from checked as c
        cross join lateral jsonb_each(c.doc -> 'metrics') as e (key, value)
        where c.problem is null and c.json_problem is null
    ),

    devices as (
        insert into pg_temp.ingest_device_records (
            device_key, tenant_key, device_type, serial_number, firmware_version, message_id,
            line_number
        )
        select
            c.device_key,
            c.tenant_key,
            nullif(c.doc #>> '{deviceMetadata,deviceType}', ''),
            nullif(c.doc #>> '{deviceMetadata,serialNumber}', ''),
            nullif(c.doc #>> '{deviceMetadata,firmwareVersion}', ''),
            c.message_id,
            c.line_number
        from checked as c
        where c.problem is null and c.json_problem is null
    )

    -- A message rejected whole is one staged row with its problem; a good message one row
    -- per metric cell, with the cell's problem if any (ingest.settle_parse_problems).
    insert into pg_temp.ingest_staging (
        source_no, line_number, recorded_at, device_key, metric_name, value, message_id,
        field_name, problem
    )
    select
        c.source_no,
        c.line_number,
        null,
        null,
        null,
        null,
        null,
        c.problem_field,
        coalesce(c.json_problem, c.problem)
    from checked as c
    where c.problem is not null or c.json_problem is not null
    union all
    select
        c.source_no,
        c.line_number,
        c.recorded_at,
        c.device_key,
        c.metric_name,
        c.value,
        c.message_id,
        -- metrics.<key>, the empty key included: a field named metrics alone is the whole
        -- object, a message-level problem (loader/stream/sink.py tells them apart).
        'metrics.' || left(c.raw_name, 100),
        case
            when c.metric_name = '' then 'empty metric name'
            when length(c.metric_name) > v_key_limit
                then format('metric name longer than %s characters', v_key_limit)
            when jsonb_typeof(c.raw_value) <> 'number'
                then left(format('value is not a number: %s', c.raw_value), 300)
            when c.value is null
                then ingest.number_problem(c.raw_value::text, c.raw_value::text)
        end
    from cells as c;

    select p.rows_read, p.rows_rejected into rows_read, rows_rejected
    from ingest.settle_parse_problems(p_batch_id, p_source_names) as p;
end;
$$;

comment on function ingest.parse_messages(bigint, text[]) is
'Parse the normalized telemetry messages of pg_temp.ingest_lines into pg_temp.ingest_staging, '
'pg_temp.ingest_device_records and ingest.rejects; returns rows read and rejected.';

grant execute on function ingest.parse_messages(bigint, text[]) to tsfleet_ingest;


-- A whole JSON file (battery vendor documents): parsed, or a file-level error naming the file
-- and the line of the parser's complaint.
create or replace function ingest.parse_json_file(p_source text, p_body text)
returns jsonb
language plpgsql
immutable
set search_path = pg_catalog, pg_temp
as $$
declare
    v_context text;
    v_detail text;
begin
    if btrim(p_body) = '' then
        perform ingest.input_error(p_source, null, null, 'the file is empty');
    end if;
    return p_body::jsonb;
exception when others then
    if sqlstate = 'TSF01' then
        raise;
    end if;
    get stacked diagnostics v_context = pg_exception_context, v_detail = pg_exception_detail;
    perform ingest.input_error(
        p_source,
        substring(v_context from 'JSON data, line ([0-9]+)')::bigint,
        null,
        'broken JSON: ' || sqlerrm || coalesce(' (' || nullif(v_detail, '') || ')', '')
    );
    return null;
end;
$$;

comment on function ingest.parse_json_file(text, text) is
'The JSON document of a whole file; raises TSF01 naming the file and line when it is empty '
'or not JSON.';

grant execute on function ingest.parse_json_file(text, text) to tsfleet_ingest;


-- Battery vendor API responses: source 1 is assets/assets.json ({"totalCount", "items":
-- [{"deviceId", "description", "state"}]}), every other source a telemetry/<deviceId>.json
-- ({"series": [{"name", "data": [[epoch ms, number], ...]}]}; its subject is the device key).
-- A document of the wrong shape fails the batch; a bad data point is one reject (line: its
-- 1-based position in the series' data, field: the series name).
create or replace function ingest.parse_battery(
    p_batch_id bigint,
    p_source_names text[],
    out rows_read bigint,
    out rows_rejected bigint
)
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    v_doc jsonb;
    v_file record;
    v_bad record;
begin
    create temporary table if not exists ingest_battery_docs (
        source_no integer not null,
        device_key text,
        doc jsonb
    );
    truncate pg_temp.ingest_battery_docs;
    for v_file in
        select l.source_no, l.subject, l.body from pg_temp.ingest_lines as l order by l.source_no
    loop
        v_doc := ingest.parse_json_file(p_source_names[v_file.source_no], v_file.body);
        if v_file.source_no = 1 then
            if jsonb_typeof(v_doc) <> 'object'
                or jsonb_typeof(v_doc -> 'items') is distinct from 'array' then
                perform ingest.input_error(
                    p_source_names[1], 1, 'items', 'expected {"totalCount": N, "items": [...]}'
                );
            end if;
            select i.position into v_bad
            from jsonb_array_elements(v_doc -> 'items') with ordinality as i (item, position)
            where
                jsonb_typeof(i.item -> 'deviceId') is distinct from 'string'
                or btrim(i.item ->> 'deviceId') = ''
                or length(i.item ->> 'deviceId') > ingest.key_length_limit()
            limit 1;
            if found then
                perform ingest.input_error(
                    p_source_names[1], null, format('items[%s].deviceId', v_bad.position),
                    format(
                        'every asset needs a deviceId string of 1 to %s characters',
                        ingest.key_length_limit()
                    )
                );
            end if;
            insert into pg_temp.ingest_device_records (
                device_key, device_type, description, state, line_number
            )
            select
                btrim(i.item ->> 'deviceId'),
                'battery',
                i.item ->> 'description',
                i.item ->> 'state',
                i.position
            from jsonb_array_elements(v_doc -> 'items') with ordinality as i (item, position);
        else
            if jsonb_typeof(v_doc) <> 'object'
                or jsonb_typeof(v_doc -> 'series') is distinct from 'array' then
                perform ingest.input_error(
                    p_source_names[v_file.source_no], 1, 'series',
                    'expected {"series": [{"name", "data"}, ...]}'
                );
            end if;
            select s.position into v_bad
            from jsonb_array_elements(v_doc -> 'series') with ordinality as s (series, position)
            where
                jsonb_typeof(s.series -> 'name') is distinct from 'string'
                or btrim(s.series ->> 'name') = ''
                or length(s.series ->> 'name') > ingest.key_length_limit()
                or jsonb_typeof(s.series -> 'data') is distinct from 'array'
            limit 1;
            if found then
                perform ingest.input_error(
                    p_source_names[v_file.source_no], null, format('series[%s]', v_bad.position),
                    'each series needs a "name" string and a "data" array'
                );
            end if;
            insert into pg_temp.ingest_battery_docs (source_no, device_key, doc)
            values (v_file.source_no, v_file.subject, v_doc);
            insert into pg_temp.ingest_device_records (device_key, device_type, line_number)
            values (v_file.subject, 'battery', 0);
        end if;
    end loop;

    with
    points as (
        select
            d.source_no,
            d.device_key,
            btrim(s.series ->> 'name') as metric_name,
            p.position as line_number,
            p.point,
            case when jsonb_typeof(p.point -> 0) = 'number'
                then ingest.to_float(p.point ->> 0)
            end as epoch_ms,
            case when jsonb_typeof(p.point -> 1) = 'number'
                then ingest.to_float(p.point ->> 1)
            end as value
        from pg_temp.ingest_battery_docs as d
        cross join lateral jsonb_array_elements(d.doc -> 'series') as s (series)
        cross join lateral jsonb_array_elements(s.series -> 'data') with ordinality
            as p (point, position)
    ),

    results as materialized (
        select
            p.*,
            case when abs(p.epoch_ms) < 2.5e14 then to_timestamp(p.epoch_ms / 1000) end
            as recorded_at,
            case
                when jsonb_typeof(p.point) <> 'array' or jsonb_array_length(p.point) <> 2
                    then 'a data point must be [epoch ms, number]'
                when jsonb_typeof(p.point -> 0) <> 'number'
                    then left(format('timestamp is not epoch milliseconds: %s', p.point -> 0), 300)
                when p.epoch_ms is null or abs(p.epoch_ms) >= 2.5e14
                    then left(format('epoch milliseconds out of range: %s', p.point -> 0), 300)
                when jsonb_typeof(p.point -> 1) <> 'number'
                    then left(format('value is not a number: %s', p.point -> 1), 300)
                when p.value is null
                    then ingest.number_problem(p.point ->> 1, p.point ->> 1)
            end as problem
        from points as p
    ),

    rejected as (
        insert into ingest.rejects (
            batch_id, source_name, line_number, field_name, raw_text, reason
        )
        select
            p_batch_id,
            p_source_names[r.source_no],
            r.line_number,
            r.metric_name,
            left(r.point::text, 500),
            r.problem
        from results as r
        where r.problem is not null
        returning 1
    ),

    staged as (
        insert into pg_temp.ingest_staging (
            source_no, line_number, recorded_at, device_key, metric_name, value
        )
        select
            r.source_no,
            r.line_number,
            r.recorded_at,
            r.device_key,
            r.metric_name,
            r.value
        from results as r
        where r.problem is null
        returning 1
    )

    select
        (select count(*) from staged) + (select count(*) from rejected),
        (select count(*) from rejected)
    into rows_read, rows_rejected;
end;
$$;

comment on function ingest.parse_battery(bigint, text[]) is
'Parse battery vendor documents staged in pg_temp.ingest_lines (source 1 assets.json, the '
'others telemetry files with the device key as subject) into devices, readings and rejects; '
'raises TSF01 for a document of the wrong shape.';

grant execute on function ingest.parse_battery(bigint, text[]) to tsfleet_ingest;
