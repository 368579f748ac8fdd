-- 0650_verdict_tls.sql - a verdict says whether the message arrived over TLS.
--
-- mailfort-milter reads Postfix's {tls_version} and {cipher} macros at EHLO
-- and writes them into its "verdict" event as "tls" (the protocol, such as
-- TLSv1.3, or "none" for a session without TLS) and "tls_cipher".  They are
-- filed into two new columns of mail_verdicts; verdicts stored before this
-- migration, from a milter that did not send the fields, keep NULL there
-- (unknown, not "none").

SET LOCAL ROLE mailfort_owner;

ALTER TABLE mailfort.mail_verdicts
	ADD COLUMN tls text,         -- TLS protocol of the SMTP session, or 'none'
	ADD COLUMN tls_cipher text;  -- its cipher, when under TLS

CREATE OR REPLACE FUNCTION mailfort.auditd_store_verdicts(p_node text, p_from bigint, p_to bigint)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, mailfort AS $$
	WITH ins AS (
		INSERT INTO mailfort.mail_verdicts (verdict_time, node, queue_id, message_id, sender,
			recipients, client_ip, score, action, rules, tokens, attachments,
			event_node, event_seq, tls, tls_cipher)
		SELECT e.event_time, coalesce(j->>'node', e.node), j->>'queue_id', j->>'message_id',
		       coalesce(j->>'sender', j->>'from'),
		       mailfort.auditd_json_textarray(coalesce(j->'recipients', j->'rcpt')),
		       mailfort.auditd_json_inet(j->>'ip'), mailfort.auditd_json_float(j->>'score'),
		       coalesce(j->>'action', j->>'verdict', 'unknown'), j->'rules', j->'tokens',
		       j->'attachments', e.node, e.seq, j->>'tls', j->>'tls_cipher'
		FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
		WHERE e.node = p_node AND e.seq BETWEEN p_from AND p_to AND e.type = 'verdict'
		RETURNING 1)
	SELECT count(*)::integer FROM ins
$$;

-- Same columns as before, the new ones appended.
CREATE OR REPLACE VIEW audit.mail_verdicts AS
SELECT verdict_time, node, queue_id, message_id, sender, recipients, client_ip, score,
       action, rules, tokens, attachments, event_node, event_seq, tls, tls_cipher
FROM mailfort.mail_verdicts;
