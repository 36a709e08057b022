-- Quick replies: canned answers agents insert by shortcut, optionally limited to one division,
-- and each agent's favourites among them.

CREATE TABLE quick_replies (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  id uuid NOT NULL DEFAULT gen_random_uuid(),
  shortcut text NOT NULL CHECK (length(shortcut) BETWEEN 1 AND 50),
  title text NOT NULL,
  content text NOT NULL CHECK (length(content) BETWEEN 1 AND 4096),
  media_id uuid,
  -- NULL: every agent of the tenant sees it; otherwise the division's members (and supervisors).
  division_id uuid,
  usage_count bigint NOT NULL DEFAULT 0 CHECK (usage_count >= 0),
  last_used_at timestamptz,
  created_by uuid,
  updated_by uuid,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  updated_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, id),
  FOREIGN KEY (tenant_id, media_id) REFERENCES media_files (tenant_id, id) ON DELETE SET NULL (media_id),
  FOREIGN KEY (tenant_id, division_id) REFERENCES divisions (tenant_id, id) ON DELETE SET NULL (division_id),
  FOREIGN KEY (tenant_id, created_by) REFERENCES users (tenant_id, id),
  FOREIGN KEY (tenant_id, updated_by) REFERENCES users (tenant_id, id)
);
-- Agents type the shortcut in any case: `/Thanks` and `/thanks` are one reply.
CREATE UNIQUE INDEX quick_replies_shortcut_key ON quick_replies (tenant_id, lower(shortcut));
CREATE INDEX quick_replies_created_idx ON quick_replies (tenant_id, created_at DESC, id DESC);
CREATE INDEX quick_replies_usage_idx ON quick_replies (tenant_id, usage_count DESC, id DESC);
CREATE INDEX quick_replies_division_idx ON quick_replies (tenant_id, division_id) WHERE division_id IS NOT NULL;
CREATE INDEX quick_replies_media_idx ON quick_replies (tenant_id, media_id) WHERE media_id IS NOT NULL;
CALL enable_tenant_isolation('quick_replies');

CREATE TABLE quick_reply_favorites (
  tenant_id uuid NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
  user_id uuid NOT NULL,
  quick_reply_id uuid NOT NULL,
  created_at timestamptz NOT NULL DEFAULT clock_timestamp(),
  PRIMARY KEY (tenant_id, user_id, quick_reply_id),
  FOREIGN KEY (tenant_id, user_id) REFERENCES users (tenant_id, id) ON DELETE CASCADE,
  FOREIGN KEY (tenant_id, quick_reply_id) REFERENCES quick_replies (tenant_id, id) ON DELETE CASCADE
);
CREATE INDEX quick_reply_favorites_reply_idx ON quick_reply_favorites (tenant_id, quick_reply_id);
CALL enable_tenant_isolation('quick_reply_favorites');
