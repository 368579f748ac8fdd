-- 0560_audit_verify_base_tables.sql - mailfortctl audit verify reads the
-- audit tables themselves, not the views of schema audit.
--
-- A view is only a query a superuser can replace (CREATE OR REPLACE VIEW
-- audit.retired ... WHERE ...) to hide rows from whoever reads it, and so
-- make the chain check and the anchor check see two different trails.
-- verify reads every table of the trail in schema mailfort instead, so the
-- auditor role, which runs it, needs to read them there.  It reads nothing
-- it could not already read through the views.

SET LOCAL ROLE mailfort_owner;

-- USAGE only looks names up: every table and function of the schema keeps
-- its own grants (functions are not executable by PUBLIC, 0001).
GRANT USAGE ON SCHEMA mailfort TO mailfort_auditor;
GRANT SELECT ON mailfort.audit_events, mailfort.audit_checkpoints, mailfort.audit_heads,
	mailfort.audit_retired, mailfort.audit_quarantine TO mailfort_auditor;
