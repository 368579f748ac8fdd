-- 0300_auditd.sql - mailfort-auditd's own state, alert lookups, retention.
--
-- auditd_positions: per node, how far the spool has been shipped.  auditd
-- updates it in the same transaction as the batch of events it ships, so a
-- crash at any point leaves the position and the stored events in step:
-- after a restart nothing is shipped twice and nothing is skipped.
--
-- audit_retired: what retention removed.  mailfort.audit_retire_partitions
-- detaches monthly partitions that are older than the retention period and
-- wholly covered by a signed checkpoint, and records per node which seq
-- range left with them, so that "mailfortctl audit verify" can tell retired
-- rows from missing ones.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.auditd_positions (
	node          text PRIMARY KEY,
	spool_segment bigint NOT NULL CHECK (spool_segment >= 0),
	spool_offset  bigint NOT NULL CHECK (spool_offset >= 0),
	last_seq      bigint NOT NULL CHECK (last_seq >= 0),
	updated_at    timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mailfort.auditd_positions IS 'per node: spool position shipped so far (same transaction as the events)';

-- Alert rules look events up by address (failed logins per IP, new IP per account).
CREATE INDEX audit_events_ip ON mailfort.audit_events (ip, event_time) WHERE ip IS NOT NULL;

CREATE TABLE mailfort.audit_retired (
	partition   text NOT NULL,
	node        text NOT NULL,
	first_seq   bigint NOT NULL,
	last_seq    bigint NOT NULL,
	count       bigint NOT NULL,
	last_hash   bytea NOT NULL,
	detached_at timestamptz NOT NULL DEFAULT now(),
	PRIMARY KEY (partition, node)
);
COMMENT ON TABLE mailfort.audit_retired IS 'seq ranges removed by retention (detached partitions)';
CREATE TRIGGER audit_retired_no_change BEFORE UPDATE OR DELETE ON mailfort.audit_retired
	FOR EACH ROW EXECUTE FUNCTION mailfort.refuse_change();
ALTER TABLE mailfort.audit_retired ENABLE ALWAYS TRIGGER audit_retired_no_change;

-- Detach the monthly partitions that end at least `months` months before the
-- current month, each only when every node's rows in it are covered by a
-- signed checkpoint.  The detached tables stay in schema mailfort for
-- archiving; dropping them is the administrator's decision.  Returns the
-- names of the partitions detached.
CREATE FUNCTION mailfort.audit_retire_partitions(months integer) RETURNS SETOF text
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort SET TimeZone = 'UTC' AS $$
DECLARE
	cutoff timestamptz;
	p record;
	n record;
	covered boolean;
BEGIN
	IF months IS NULL OR months < 1 THEN
		RAISE EXCEPTION 'mailfort.audit_retire_partitions: months must be >= 1'
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('mailfort.ensure_partitions'));
	cutoff := (date_trunc('month', now() AT TIME ZONE 'UTC') - make_interval(months => months))
		AT TIME ZONE 'UTC';
	FOR p IN
		SELECT c.relname AS part
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'mailfort.audit_events'::regclass
		  AND c.relname ~ '^audit_events_[0-9]{4}_[0-9]{2}$'
		  AND to_timestamp(substr(c.relname, 14), 'YYYY_MM') AT TIME ZONE 'UTC'
		      + interval '1 month' <= cutoff AT TIME ZONE 'UTC'
		ORDER BY c.relname
	LOOP
		EXECUTE format('SELECT bool_and(coalesce(m.last_seq <= (SELECT max(seq) FROM mailfort.audit_checkpoints k
						WHERE k.node = m.node), false))
				FROM (SELECT node, max(seq) AS last_seq FROM mailfort.%I GROUP BY node) m',
			       p.part) INTO covered;
		IF covered IS NOT NULL AND NOT covered THEN
			RAISE NOTICE 'mailfort: partition % is not covered by a checkpoint yet; kept', p.part;
			CONTINUE;
		END IF;
		FOR n IN EXECUTE format('SELECT node, min(seq) AS first_seq, max(seq) AS last_seq, count(*) AS cnt
					 FROM mailfort.%I GROUP BY node', p.part)
		LOOP
			EXECUTE format('INSERT INTO mailfort.audit_retired (partition, node, first_seq, last_seq, count, last_hash)
					SELECT %L, %L, %s, %s, %s, hash FROM mailfort.%I WHERE node = %L AND seq = %s',
				       p.part, n.node, n.first_seq, n.last_seq, n.cnt, p.part, n.node, n.last_seq);
		END LOOP;
		EXECUTE format('ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.%I', p.part);
		RETURN NEXT p.part;
	END LOOP;
END
$$;
COMMENT ON FUNCTION mailfort.audit_retire_partitions(integer) IS 'retention: detach checkpointed monthly partitions';

GRANT SELECT, INSERT, UPDATE ON mailfort.auditd_positions TO mailfort_auditd;
GRANT SELECT ON mailfort.auditd_positions, mailfort.audit_retired TO mailfort_admin;
GRANT SELECT ON mailfort.audit_retired TO mailfort_auditd;
GRANT EXECUTE ON FUNCTION mailfort.audit_retire_partitions(integer) TO mailfort_auditd, mailfort_admin;
REVOKE EXECUTE ON FUNCTION mailfort.audit_retire_partitions(integer) FROM PUBLIC;

CREATE VIEW audit.retired AS
SELECT partition, node, first_seq, last_seq, count, last_hash, detached_at
FROM mailfort.audit_retired;
GRANT SELECT ON audit.retired TO mailfort_auditor, mailfort_admin;
