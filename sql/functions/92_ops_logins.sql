-- Login roles for the services (consumer, alert runner, Grafana), each a member of exactly one
-- tsfleet group role. `tsfleet logins` calls this as the owner after migrating.
-- Couples with: migration 0002 (the group roles), loader/commands/logins.py, docker-compose.yml.

create or replace function ops.ensure_login(
    login_name text,
    password_verifier text,
    group_role text
)
returns text
language plpgsql
set search_path = pg_catalog, pg_temp
as $$
declare
    service_groups constant text [] := array[
        'tsfleet_ingest', 'tsfleet_analyst', 'tsfleet_grafana'
    ];
    existing pg_catalog.pg_roles;
    other_group text;
begin
    if not group_role = any(service_groups) then
        raise exception 'tsfleet: % is not a service group role', group_role
        using hint = 'Use one of: ' || array_to_string(service_groups, ', ') || '.';
    end if;
    if
        login_name is null or login_name = '' or login_name ~ '^pg_'
        or login_name = any(service_groups || array['tsfleet_owner'])
        then
        raise exception 'tsfleet: % cannot be a service login name', coalesce(login_name, 'null')
        using hint = 'pg_ names and the tsfleet group roles are reserved.';
    end if;
    if password_verifier is null or password_verifier !~ '^SCRAM-SHA-256\$' then
        raise exception 'tsfleet: the password of % must be a SCRAM-SHA-256 verifier', login_name
        using hint = 'Hash it client-side (libpq PQencryptPasswordConn): the clear text '
        || 'password never reaches the server or its logs.';
    end if;
    select r.* into existing from pg_catalog.pg_roles as r where r.rolname = login_name;
    if found and (
        existing.rolsuper or existing.rolcreaterole or existing.rolcreatedb
        or existing.rolreplication or existing.rolbypassrls
    ) then
        raise exception 'tsfleet: % is a privileged role; refusing to make it a service login',
        login_name;
    end if;
    if found then
        execute format('alter role %I with login password %L', login_name, password_verifier);
    else
        execute format('create role %I with login password %L', login_name, password_verifier);
    end if;
    foreach other_group in array service_groups || array['tsfleet_owner'] loop
        if other_group <> group_role and pg_catalog.pg_has_role(login_name, other_group, 'member')
            then
            execute format('revoke %I from %I', other_group, login_name);
        end if;
    end loop;
    execute format('grant %I to %I', group_role, login_name);
    if group_role = 'tsfleet_grafana' then
        -- Grafana's queries are short: JIT compiling the condition views costs far more.
        execute format('alter role %I set jit = off', login_name);
    end if;
    return format('%s %s (member of %s)',
        case when existing.rolname is null then 'created' else 'updated' end,
        login_name, group_role);
end;
$$;

comment on function ops.ensure_login(text, text, text) is
'Create or update a service login (password given as a SCRAM-SHA-256 verifier) that is a member '
'of exactly one of tsfleet_ingest, tsfleet_analyst, tsfleet_grafana. Refuses privileged roles '
'and reserved names. Runs with the caller''s rights: the caller needs CREATEROLE.';

grant execute on function ops.ensure_login(text, text, text) to tsfleet_owner;
