-- 0552_audit_content_search.sql - content searches are message access.
--
-- mailfort_audit records a "search" event for every SEARCH, SORT or THREAD
-- that tests message content (BODY, TEXT, MIMEPART criteria): the mailbox,
-- "criteria" (the kinds, e.g. "body,text") and "hits" (how many messages
-- matched).  The search words are never recorded.  Auditors see them in
-- audit.message_access next to reads, with the criteria and hits as columns
-- of their own in audit.content_searches.

SET LOCAL ROLE mailfort_owner;

CREATE OR REPLACE VIEW audit.message_access AS
SELECT e.event_time, e.node, e.type AS action, e.username, e.session, e.ip,
       j->>'mailbox' AS mailbox, j->>'uid' AS uid, j->>'message_id' AS message_id,
       e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type IN ('read', 'save', 'copy', 'move', 'expunge', 'flags', 'search');

CREATE VIEW audit.content_searches AS
SELECT e.event_time, e.node, e.username, e.session, e.ip, j->>'service' AS service,
       j->>'mailbox' AS mailbox, j->>'criteria' AS criteria, (j->>'hits')::bigint AS hits,
       e.seq, j AS data
FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
WHERE e.type = 'search';
COMMENT ON VIEW audit.content_searches IS 'SEARCH/SORT/THREAD on message content: mailbox, criteria kinds, hits';
GRANT SELECT ON audit.content_searches TO mailfort_auditor, mailfort_admin;
