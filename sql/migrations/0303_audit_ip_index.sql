-- 0303_audit_ip_index.sql - index addresses only where the alert rules look.
--
-- The address rules (failed logins per IP, new IP per account) read only
-- "auth" and "login" events; indexing the address of every read, save and
-- flag change cost a quarter of the insert time for nothing.

SET LOCAL ROLE mailfort_owner;

DROP INDEX mailfort.audit_events_ip;
CREATE INDEX audit_events_auth_ip ON mailfort.audit_events (ip, event_time)
	WHERE ip IS NOT NULL AND type IN ('auth', 'login');
CREATE INDEX audit_events_auth_user ON mailfort.audit_events (username, event_time)
	WHERE type IN ('auth', 'login');
