-- 0301_auditd_verdicts.sql - file milter verdict events into mail_verdicts.
--
-- mailfort-auditd calls this inside the transaction that stores a batch,
-- with the batch's seq range.  Each "verdict" event becomes one row of
-- mailfort.mail_verdicts pointing back at its event.  A field that cannot be
-- converted (an address that is not one, a score that is not a number) is
-- stored as NULL rather than failing the batch; the event itself keeps the
-- original text.

SET LOCAL ROLE mailfort_owner;

CREATE FUNCTION mailfort.auditd_json_inet(v text) RETURNS inet
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RETURN v::inet;
EXCEPTION WHEN others THEN
	RETURN NULL;
END
$$;

CREATE FUNCTION mailfort.auditd_json_float(v text) RETURNS double precision
LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
	RETURN v::double precision;
EXCEPTION WHEN others THEN
	RETURN NULL;
END
$$;

CREATE FUNCTION mailfort.auditd_json_textarray(v jsonb) RETURNS text[]
LANGUAGE sql IMMUTABLE AS $$
	SELECT CASE jsonb_typeof(v)
		WHEN 'array' THEN ARRAY(SELECT jsonb_array_elements_text(v))
		WHEN 'string' THEN ARRAY[v #>> '{}']
		ELSE '{}'::text[] END
$$;

CREATE FUNCTION mailfort.auditd_store_verdicts(p_node text, p_from bigint, p_to bigint)
RETURNS integer
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog, mailfort AS $$
	WITH ins AS (
		INSERT INTO mailfort.mail_verdicts (verdict_time, node, queue_id, message_id, sender,
			recipients, client_ip, score, action, rules, tokens, attachments,
			event_node, event_seq)
		SELECT e.event_time, coalesce(j->>'node', e.node), j->>'queue_id', j->>'message_id',
		       coalesce(j->>'sender', j->>'from'),
		       mailfort.auditd_json_textarray(coalesce(j->'recipients', j->'rcpt')),
		       mailfort.auditd_json_inet(j->>'ip'), mailfort.auditd_json_float(j->>'score'),
		       coalesce(j->>'action', j->>'verdict', 'unknown'), j->'rules', j->'tokens',
		       j->'attachments', e.node, e.seq
		FROM mailfort.audit_events e, LATERAL (SELECT e.payload::jsonb) AS p(j)
		WHERE e.node = p_node AND e.seq BETWEEN p_from AND p_to AND e.type = 'verdict'
		RETURNING 1)
	SELECT count(*)::integer FROM ins
$$;
REVOKE EXECUTE ON FUNCTION mailfort.auditd_store_verdicts(text, bigint, bigint) FROM PUBLIC;
GRANT EXECUTE ON FUNCTION mailfort.auditd_store_verdicts(text, bigint, bigint) TO mailfort_auditd;
