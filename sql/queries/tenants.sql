-- name: slug_taken$
SELECT tenant_slug_taken(:slug);

-- name: insert_tenant!
INSERT INTO tenants (id, name, slug, timezone) VALUES (:id, :name, lower(:slug), :timezone);

-- name: get_tenant^
SELECT id, name, slug, timezone, status, created_at, updated_at FROM tenants WHERE id = :tenant_id;

-- name: get_timezone$
SELECT timezone FROM tenants WHERE id = :tenant_id;

-- name: set_timezone$
UPDATE tenants SET timezone = :timezone, updated_at = now() WHERE id = :tenant_id RETURNING id;

-- name: tenant_id_by_slug$
-- Works without a tenant in the transaction: the function is a security-definer lookup.
SELECT tenant_id_by_slug(:slug);
