-- 0001_roles_schemas.sql - group roles, the mailfort and audit schemas, the
-- migration ledger.
--
-- Roles are cluster-wide and created only when missing, so several mailfort
-- databases in one cluster (and concurrent first runs) coexist.  They are all
-- NOLOGIN group roles: a site creates its own login roles and grants them the
-- group that fits (GRANT mailfort_pam TO dovecot_auth, ...).
--
--   mailfort_owner    owns every object; nobody logs in as it
--   mailfort_pam      TOTP/lockout state, app password and recovery code lookup
--   mailfort_crypt    reads mail keys, creates server-mode keys
--   mailfort_auditd   appends audit events, checkpoints, alerts, verdicts
--   mailfort_milter   reads spam token statistics
--   mailfort_admin    mailfortctl: accounts, keys, app passwords, reads audit
--   mailfort_auditor  SELECT on the views in schema audit, nothing else
--
-- Convention for every later migration: start with
--   SET LOCAL ROLE mailfort_owner;
-- so that what it creates is owned by mailfort_owner (the runner wraps each
-- file in a transaction; SET LOCAL ends with it).  Running "mailfortctl db
-- migrate" therefore needs a superuser, or a role with CREATEROLE that is a
-- member of mailfort_owner.

DO $roles$
DECLARE
	r text;
BEGIN
	FOREACH r IN ARRAY ARRAY['mailfort_owner', 'mailfort_pam', 'mailfort_crypt',
				 'mailfort_auditd', 'mailfort_milter', 'mailfort_admin',
				 'mailfort_auditor']
	LOOP
		IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = r) THEN
			BEGIN
				EXECUTE format('CREATE ROLE %I NOLOGIN', r);
			EXCEPTION WHEN duplicate_object OR unique_violation THEN
				NULL; -- created by a concurrent migrate in another database
			END;
		END IF;
	END LOOP;
	-- A non-superuser migrator must be able to SET ROLE mailfort_owner.
	IF NOT (SELECT rolsuper FROM pg_roles WHERE rolname = session_user)
	   AND NOT pg_has_role(session_user, 'mailfort_owner', 'MEMBER') THEN
		EXECUTE format('GRANT mailfort_owner TO %I', session_user);
	END IF;
END
$roles$;

-- Creating a schema needs CREATE on the database, which the owner role lacks.
CREATE SCHEMA mailfort AUTHORIZATION mailfort_owner;
CREATE SCHEMA audit AUTHORIZATION mailfort_owner;

SET LOCAL ROLE mailfort_owner;
COMMENT ON SCHEMA mailfort IS 'mailfort: accounts, keys, audit trail, spam statistics';
COMMENT ON SCHEMA audit IS 'mailfort: read-only views for auditors';

-- Functions are executable by PUBLIC by default: not ours.
ALTER DEFAULT PRIVILEGES FOR ROLE mailfort_owner REVOKE EXECUTE ON FUNCTIONS FROM PUBLIC;

GRANT USAGE ON SCHEMA mailfort TO mailfort_pam, mailfort_crypt, mailfort_auditd,
	mailfort_milter, mailfort_admin;
GRANT USAGE ON SCHEMA audit TO mailfort_auditor, mailfort_admin;

-- One row per applied migration file (written by mailfortctl db migrate).
CREATE TABLE mailfort.schema_migrations (
	name       text PRIMARY KEY,
	checksum   text NOT NULL CHECK (checksum ~ '^[0-9a-f]{64}$'), -- SHA-256 of the file
	applied_at timestamptz NOT NULL DEFAULT now(),
	applied_by text NOT NULL DEFAULT session_user
);
COMMENT ON TABLE mailfort.schema_migrations IS 'migration files applied, with their SHA-256';
GRANT SELECT ON mailfort.schema_migrations TO mailfort_admin;

-- Shared by the append-only tables (audit trail): refuses UPDATE, DELETE and
-- TRUNCATE whoever asks.  Installed as ENABLE ALWAYS triggers, so
-- session_replication_role = replica does not switch them off either.
CREATE FUNCTION mailfort.refuse_change() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	RAISE EXCEPTION 'mailfort: % on %.% refused: audit records are append-only',
		TG_OP, TG_TABLE_SCHEMA, TG_TABLE_NAME
		USING ERRCODE = 'integrity_constraint_violation',
		      HINT = 'retention is done by dropping whole monthly partitions after a checkpoint';
END
$$;
