-- Row-level security that cannot be silently off, and functions only the service may call.
--
-- A table's owner skips its policies unless they are forced. If the service's own login ran the
-- migrations it would own every table and see every tenant; forced, even the owner sees only the
-- transaction's tenant (the service also refuses to start in production as a table's owner).
--
-- The security-definer lookups that must see across tenants (sign-in by email, slugs, the
-- workers' sweeps) run as the owner; under forced policies they need a policy of their own. It
-- admits the owner's role only while it acts for another login, that is inside one of its
-- security-definer functions (current_user is then the owner, session_user the caller): a login
-- as the owner itself still sees no tenant's rows without naming the tenant.

CREATE PROCEDURE allow_definer_lookups(target regclass)
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format(
    'CREATE POLICY definer_lookup ON %s TO %I USING (current_user <> session_user)',
    target, current_user);
END $$;

CREATE OR REPLACE PROCEDURE enable_tenant_isolation(target regclass)
  LANGUAGE plpgsql AS $$
BEGIN
  EXECUTE format('ALTER TABLE %s ENABLE ROW LEVEL SECURITY', target);
  EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', target);
  EXECUTE format(
    'CREATE POLICY tenant_isolation ON %s USING (tenant_id = current_tenant_id()) '
    'WITH CHECK (tenant_id = current_tenant_id())', target);
END $$;

DO $$
DECLARE
  tenant_table regclass;
BEGIN
  FOR tenant_table IN
    SELECT c.oid::regclass FROM pg_class c JOIN pg_namespace n ON n.oid = c.relnamespace
     WHERE n.nspname = 'public' AND c.relkind IN ('r', 'p') AND c.relrowsecurity
  LOOP
    EXECUTE format('ALTER TABLE %s FORCE ROW LEVEL SECURITY', tenant_table);
  END LOOP;
END $$;

-- The tables the cross-tenant lookups read (and sessions, which the purge deletes from).
CALL allow_definer_lookups('tenants');
CALL allow_definer_lookups('users');
CALL allow_definer_lookups('roles');
CALL allow_definer_lookups('sessions');
CALL allow_definer_lookups('api_keys');
CALL allow_definer_lookups('messages');
CALL allow_definer_lookups('chat_expiration_rules');

-- PostgreSQL lets every role execute a new function: here only the service's group role may, so
-- an unrelated login on the same server cannot call a lookup that reads password hashes.
REVOKE EXECUTE ON ALL ROUTINES IN SCHEMA public FROM PUBLIC;
GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA public TO omnistream_app;
REVOKE EXECUTE ON PROCEDURE enable_tenant_isolation(regclass), allow_definer_lookups(regclass) FROM omnistream_app;
ALTER DEFAULT PRIVILEGES REVOKE EXECUTE ON ROUTINES FROM PUBLIC;
