-- Signed destination permissions for connect listeners.
-- Applied by `portcullis db migrate` with search_path set to the target schema,
-- so no name here is schema-qualified.
--
-- Every column except `signature` is covered by the Ed25519 signature (see
-- docs/permissions.md for the canonical encoding); the gateway verifies each
-- row it uses, so these constraints are a convenience, not the security
-- boundary.

CREATE TABLE portcullis_permissions (
  id           uuid        PRIMARY KEY,
  identity     text        NOT NULL CHECK (octet_length(identity) BETWEEN 1 AND 1024),
  host_pattern text        NOT NULL CHECK (octet_length(host_pattern) BETWEEN 1 AND 255),
  port_min     integer     NOT NULL CHECK (port_min BETWEEN 1 AND 65535),
  port_max     integer     NOT NULL CHECK (port_max BETWEEN 1 AND 65535),
  cidr         text        NULL CHECK (cidr IS NULL OR octet_length(cidr) BETWEEN 1 AND 64),
  not_before   timestamptz NOT NULL,
  expires_at   timestamptz NOT NULL,
  created_by   text        NOT NULL CHECK (octet_length(created_by) <= 256),
  key_id       text        NULL CHECK (key_id IS NULL OR octet_length(key_id) <= 64),
  signature    bytea       NULL CHECK (signature IS NULL OR octet_length(signature) = 64),
  CHECK (port_min <= port_max)
);

-- The gateway's lookup: one identity, the rows whose port range holds the port.
CREATE INDEX portcullis_permissions_identity_port ON portcullis_permissions (identity, port_min, port_max);
-- Listing and cleaning up by expiry.
CREATE INDEX portcullis_permissions_expires_at ON portcullis_permissions (expires_at);

-- Any change tells listening gateways which identity (and row) changed, so they
-- drop cached decisions at once instead of waiting for the cache TTL. The
-- payload is small JSON: identity is capped at 1024 bytes above, well inside
-- NOTIFY's 8000-byte limit.
CREATE FUNCTION portcullis_permissions_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
  IF TG_OP = 'TRUNCATE' THEN
    PERFORM pg_notify('portcullis_permissions',
      json_build_object('schema', TG_TABLE_SCHEMA, 'op', TG_OP)::text);
    RETURN NULL;
  END IF;
  PERFORM pg_notify('portcullis_permissions', json_build_object(
    'schema', TG_TABLE_SCHEMA,
    'op', TG_OP,
    'id', CASE WHEN TG_OP = 'INSERT' THEN NEW.id ELSE OLD.id END,
    'identity', CASE WHEN TG_OP = 'DELETE' THEN OLD.identity ELSE NEW.identity END,
    'old_identity', CASE WHEN TG_OP = 'UPDATE' THEN OLD.identity END
  )::text);
  RETURN NULL;
END;
$$;

CREATE TRIGGER portcullis_permissions_changed
  AFTER INSERT OR UPDATE OR DELETE ON portcullis_permissions
  FOR EACH ROW EXECUTE FUNCTION portcullis_permissions_notify();

CREATE TRIGGER portcullis_permissions_truncated
  AFTER TRUNCATE ON portcullis_permissions
  FOR EACH STATEMENT EXECUTE FUNCTION portcullis_permissions_notify();
