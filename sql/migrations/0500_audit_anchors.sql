-- 0500_audit_anchors.sql - how far signed checkpoints have been published
-- outside the database ([audit] anchor_sink).
--
-- mailfort-auditd publishes every checkpoint through the configured sinks
-- (a file, syslog, a command, a mail to the auditors) after the checkpoint
-- is committed, and records here the newest one published, so that a
-- checkpoint whose publication failed (a sink that was down) is published
-- again later, and none twice after a restart.  The anchors themselves
-- live outside PostgreSQL: "mailfortctl audit verify --anchor FILE" checks
-- that the chain still reaches every one of them.  Nothing here is trusted
-- by verification; a superuser who edits this table only makes auditd
-- publish again.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.audit_anchored (
	node         text PRIMARY KEY,
	seq          bigint NOT NULL,  -- newest checkpoint published
	published_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mailfort.audit_anchored IS 'per node: newest checkpoint published through [audit] anchor_sink';

GRANT SELECT, INSERT, UPDATE ON mailfort.audit_anchored TO mailfort_auditd;
GRANT SELECT ON mailfort.audit_anchored TO mailfort_admin;

CREATE VIEW audit.anchored AS SELECT node, seq, published_at FROM mailfort.audit_anchored;
GRANT SELECT ON audit.anchored TO mailfort_auditor, mailfort_admin;
