-- name: get_schedules
-- The tenant's global schedule (division_id NULL) and, when one is named, that division's override.
SELECT division_id, periods, holidays, updated_at
  FROM working_schedules
 WHERE tenant_id = :tenant_id AND (division_id IS NULL OR division_id = :division_id::uuid);

-- name: get_effective_schedule^
-- The division's override if it has one, else the global schedule; no row: never set (always closed).
SELECT periods, holidays
  FROM working_schedules
 WHERE tenant_id = :tenant_id AND (division_id IS NULL OR division_id = :division_id::uuid)
 ORDER BY division_id NULLS LAST
 LIMIT 1;

-- name: upsert_schedule^
INSERT INTO working_schedules (tenant_id, division_id, periods, holidays, updated_at, updated_by)
VALUES (:tenant_id, :division_id::uuid, :periods, :holidays, now(), :updated_by)
    ON CONFLICT (tenant_id, division_id)
    DO UPDATE SET periods = EXCLUDED.periods, holidays = EXCLUDED.holidays,
                  updated_at = EXCLUDED.updated_at, updated_by = EXCLUDED.updated_by
RETURNING division_id, periods, holidays, updated_at;

-- name: delete_division_schedule$
DELETE FROM working_schedules
 WHERE tenant_id = :tenant_id AND division_id = :division_id
RETURNING division_id;
