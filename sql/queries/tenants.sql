-- name: slug_taken$
SELECT tenant_slug_taken(:slug);

-- name: insert_tenant!
INSERT INTO tenants (id, name, slug, timezone) VALUES (:id, :name, lower(:slug), :timezone);

-- name: get_tenant^
SELECT id, name, slug, timezone, status, created_at, updated_at FROM tenants WHERE id = :id;
