-- 0005_audit_views.sql - what auditors read: views in schema audit.
--
-- mailfort_auditor has USAGE on schema audit and SELECT on these views only;
-- the views run with their owner's rights, so the auditor reads the audit
-- trail without any access to the base tables (accounts, TOTP secrets, keys).
-- Fields come from the event JSON (see lib/mf-event.h for their names).

SET LOCAL ROLE mailfort_owner;

-- Every event, with its chain fields: what "audit verify" recomputes.
CREATE VIEW audit.events AS
SELECT node, seq, event_time, received_at, type, username, session, ip, payload,
       prev_hash, hash
FROM mailfort.audit_events;

-- PAM decisions (password + TOTP, app passwords, lockout).
CREATE VIEW audit.auth_events AS
SELECT e.event_time, e.node, e.username, e.session, e.ip,
       j->>'service' AS service, j->>'result' AS result, j->>'reason' AS reason,
       j->>'method' AS method, e.seq, e.payload::jsonb AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type = 'auth';

-- Mail sessions (IMAP/POP3 login and logout as seen by Dovecot).
CREATE VIEW audit.logins AS
SELECT e.event_time, e.node, e.type, e.username, e.session, e.ip,
       j->>'service' AS service, j->>'result' AS result, j->>'client' AS client,
       e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type IN ('login', 'logout');

-- Every refused authentication or login.
CREATE VIEW audit.failed_logins AS
SELECT e.event_time, e.node, e.type, e.username, e.session, e.ip,
       j->>'service' AS service, j->>'result' AS result, j->>'reason' AS reason,
       e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type IN ('auth', 'login') AND coalesce(j->>'result', '') <> 'ok';

-- Who read, stored, copied, moved, expunged or flagged which message.
CREATE VIEW audit.message_access AS
SELECT e.event_time, e.node, e.type AS action, e.username, e.session, e.ip,
       j->>'mailbox' AS mailbox, j->>'uid' AS uid, j->>'message_id' AS message_id,
       e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type IN ('read', 'save', 'copy', 'move', 'expunge', 'flags');

CREATE VIEW audit.mailbox_changes AS
SELECT e.event_time, e.node, e.type AS action, e.username, e.session, e.ip,
       j->>'mailbox' AS mailbox, j->>'new_name' AS new_name, e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type IN ('mailbox_create', 'mailbox_delete', 'mailbox_rename');

-- Administrative actions done with mailfortctl.
CREATE VIEW audit.admin_actions AS
SELECT e.event_time, e.node, e.username, j->>'action' AS action, j->>'target' AS target,
       j->>'result' AS result, e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type = 'admin';

CREATE VIEW audit.alerts AS
SELECT a.id, a.created_at, a.node, a.rule, a.severity, a.username, a.ip, a.summary,
       a.detail, a.event_node, a.event_seq, k.acked_at, k.acked_by, k.note AS ack_note
FROM mailfort.alerts a LEFT JOIN mailfort.alert_acks k ON k.alert_id = a.id;

CREATE VIEW audit.mail_verdicts AS
SELECT verdict_time, node, queue_id, message_id, sender, recipients, client_ip, score,
       action, rules, tokens, attachments, event_node, event_seq
FROM mailfort.mail_verdicts;

CREATE VIEW audit.checkpoints AS
SELECT node, seq, count, head_hash, signature, signer_key, created_at
FROM mailfort.audit_checkpoints;

CREATE VIEW audit.heads AS
SELECT node, last_seq, last_hash, updated_at FROM mailfort.audit_heads;

GRANT SELECT ON ALL TABLES IN SCHEMA audit TO mailfort_auditor, mailfort_admin;
ALTER DEFAULT PRIVILEGES FOR ROLE mailfort_owner IN SCHEMA audit
	GRANT SELECT ON TABLES TO mailfort_auditor, mailfort_admin;
