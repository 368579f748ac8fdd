-- 0007_audit_views_fields.sql - the auditor views show the fields the
-- producers actually write.
--
-- pam_mailfort's "auth" event says which second factor was used ("factor":
-- totp, apppass, recovery), the protocol, the module mode, the app password
-- and whether the attempt locked the account; 0005 had guessed a "method"
-- field that no producer writes.  Dovecot's "login"/"logout" events carry the
-- mechanism, TLS, the client's version, the logout reason and the session
-- length.

SET LOCAL ROLE mailfort_owner;

DROP VIEW audit.auth_events;
CREATE VIEW audit.auth_events AS
SELECT e.event_time, e.node, e.username, e.session, e.ip,
       j->>'service' AS service, j->>'protocol' AS protocol, j->>'result' AS result,
       j->>'reason' AS reason, j->>'factor' AS factor, j->>'mode' AS mode,
       j->>'apppass_id' AS apppass_id, coalesce((j->>'locked')::boolean, false) AS locked,
       e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type = 'auth';

-- Same columns as before, new ones appended.
CREATE OR REPLACE VIEW audit.logins AS
SELECT e.event_time, e.node, e.type, e.username, e.session, e.ip,
       j->>'service' AS service, j->>'result' AS result, j->>'client' AS client,
       e.seq, j AS data,
       j->>'client_version' AS client_version, j->>'mech' AS mech,
       (j->>'tls')::boolean AS tls, j->>'reason' AS reason,
       (j->>'duration_ms')::bigint AS duration_ms
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type IN ('login', 'logout');

GRANT SELECT ON audit.auth_events, audit.logins TO mailfort_auditor, mailfort_admin;
