-- 0551_audit_quarantine.sql - records the database refused, kept as bytes.
--
-- A spooled record that PostgreSQL will not store (an index row too large,
-- a value it cannot convert, a field longer than mailfort-auditd allows)
-- used to fail its batch again on every retry and stop the trail.  Now
-- mailfort-auditd stores, in its place in the chain, an event of type
-- "quarantined" (reason, length, BLAKE2b-256 "digest" of the record, the
-- original type and user cut to size) and the record itself here, byte for
-- byte, in the same transaction, and raises a critical "quarantine" alert.
-- "mailfortctl audit verify" checks each quarantined record against the
-- digest its chained event carries.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.audit_quarantine (
	node        text NOT NULL,
	seq         bigint NOT NULL,      -- the "quarantined" event that stands for it
	received_at timestamptz NOT NULL DEFAULT now(),
	reason      text NOT NULL,        -- why it was refused
	sqlstate    text,                 -- the database's error code, when it refused
	digest      bytea NOT NULL CHECK (octet_length(digest) = 32),
	record      bytea NOT NULL,       -- the spooled record, unchanged
	PRIMARY KEY (node, seq)
);
COMMENT ON TABLE mailfort.audit_quarantine IS
	'spooled records the database refused, byte for byte; chained by a "quarantined" event';
CREATE TRIGGER audit_quarantine_no_change BEFORE UPDATE OR DELETE ON mailfort.audit_quarantine
	FOR EACH ROW EXECUTE FUNCTION mailfort.refuse_change();
CREATE TRIGGER audit_quarantine_no_truncate BEFORE TRUNCATE ON mailfort.audit_quarantine
	FOR EACH STATEMENT EXECUTE FUNCTION mailfort.refuse_change();
ALTER TABLE mailfort.audit_quarantine ENABLE ALWAYS TRIGGER audit_quarantine_no_change;
ALTER TABLE mailfort.audit_quarantine ENABLE ALWAYS TRIGGER audit_quarantine_no_truncate;

GRANT INSERT, SELECT ON mailfort.audit_quarantine TO mailfort_auditd;
GRANT SELECT ON mailfort.audit_quarantine TO mailfort_admin;

CREATE VIEW audit.quarantine AS
SELECT node, seq, received_at, reason, sqlstate, digest, octet_length(record) AS length, record
FROM mailfort.audit_quarantine;
COMMENT ON VIEW audit.quarantine IS 'records the database refused (see the "quarantined" event at node, seq)';
GRANT SELECT ON audit.quarantine TO mailfort_auditor, mailfort_admin;
