-- Revoke what this database granted; drop the roles unless another database still uses them.
do $$
declare
    role_name text;
begin
    foreach role_name in array array[
        'tsfleet_grafana', 'tsfleet_analyst', 'tsfleet_ingest', 'tsfleet_owner'
    ] loop
        if exists (select from pg_catalog.pg_roles where rolname = role_name) then
            execute format('drop owned by %I', role_name);
            begin
                execute format('drop role %I', role_name);
            exception when dependent_objects_still_exist then
                raise notice 'tsfleet: role % kept: another database still uses it', role_name;
            end;
        end if;
    end loop;
end;
$$;
