-- 0550_audit_retire_signed.sql - retirement is signed, oldest-first and
-- owner-only; nobody but a superuser can detach, drop or truncate an audit
-- partition that still holds events.
--
-- Retiring events (taking a monthly partition out of audit_events) used to
-- be done by mailfort.audit_retire_partitions, which mailfort_auditd and
-- mailfort_admin could call with any age, and which recorded an unsigned
-- row in audit_retired that "mailfortctl audit verify" trusted.  Now:
--
--   - Each retired (partition, node) range carries an Ed25519 signature by
--     the audit key (audit-sign.key, the checkpoint key) over node,
--     partition, first_seq, last_seq, count and last_hash
--     (lib/mf-audit-chain.h).  mailfortctl audit retire makes it; verify
--     accepts a gap in a chain only where signed retirements cover it from
--     seq 1 without a hole.
--   - mailfort.audit_retire_record / audit_retire_detach, the only way in,
--     are executable by mailfort_owner alone (a superuser, or the migration
--     role that is a member of it).  They refuse a range that is not the
--     node's oldest (first_seq is 1 or follows the previous retirement),
--     that is not contiguous, not covered by a signed checkpoint, whose
--     figures or last hash do not match the rows, or a partition that ends
--     less than min_months months ago; min_months below 12 is refused here
--     whatever the configuration says.
--   - Event triggers (installed when a superuser migrates) refuse, to every
--     role including mailfort_owner, detaching an audit partition that holds
--     events no retirement records, and dropping such a partition or any of
--     the trail's own tables.  Only a superuser can get round them (by
--     disabling the trigger); verify then names the missing seq range.

SET LOCAL ROLE mailfort_owner;

ALTER TABLE mailfort.audit_retired
	ADD COLUMN signature  bytea CHECK (octet_length(signature) = 64),
	ADD COLUMN signer_key bytea CHECK (octet_length(signer_key) = 32),
	ADD COLUMN retired_by text NOT NULL DEFAULT session_user,
	ADD COLUMN min_months integer;
COMMENT ON TABLE mailfort.audit_retired IS
	'seq ranges removed by retention, each signed with the audit key (mailfortctl audit retire)';

-- The old entry point: any age, unsigned, callable by auditd and admin.
DROP FUNCTION mailfort.audit_retire_partitions(integer);

-- What the oldest retirable partitions hold, per node: the figures
-- mailfortctl audit retire signs.  ok is false (and why says why) for a
-- range that cannot be retired now; partitions are listed oldest first and
-- only up to the first one that cannot be retired.
CREATE FUNCTION mailfort.audit_retire_candidates(min_months integer)
RETURNS TABLE (partition text, node text, first_seq bigint, last_seq bigint, count bigint,
               last_hash bytea, ok boolean, why text)
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort SET TimeZone = 'UTC' AS $$
DECLARE
	cutoff timestamptz;
	p record;
	n record;
	prev_last bigint;
	ckpt bigint;
	blocked boolean := false;
	planned jsonb := '{}'; -- node -> last seq of the ranges listed as ok so far
BEGIN
	IF min_months IS NULL OR min_months < 12 THEN
		RAISE EXCEPTION 'mailfort: audit records must be kept at least 12 months (asked: %)',
			coalesce(min_months::text, 'NULL') USING ERRCODE = 'invalid_parameter_value',
			HINT = 'Korea''s personal information safety standard requires access records to be kept at least 1 year (2 years for large systems)';
	END IF;
	cutoff := now() - make_interval(months => min_months);
	FOR p IN
		SELECT c.relname AS part,
		       to_timestamp(substr(c.relname, 14), 'YYYY_MM') + interval '1 month' AS hi
		FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'mailfort.audit_events'::regclass
		  AND c.relname ~ '^audit_events_[0-9]{4}_[0-9]{2}$'
		ORDER BY c.relname
	LOOP
		EXIT WHEN p.hi > cutoff OR blocked;
		FOR n IN EXECUTE format('SELECT node, min(seq) AS f, max(seq) AS l, count(*) AS c
					 FROM mailfort.%I GROUP BY node ORDER BY node', p.part)
		LOOP
			partition := p.part;
			node := n.node;
			first_seq := n.f;
			last_seq := n.l;
			count := n.c;
			EXECUTE format('SELECT hash FROM mailfort.%I WHERE node = $1 AND seq = $2', p.part)
				INTO last_hash USING n.node, n.l;
			SELECT greatest(max(r.last_seq), (planned->>n.node)::bigint) INTO prev_last
			FROM mailfort.audit_retired r WHERE r.node = n.node;
			SELECT max(k.seq) INTO ckpt FROM mailfort.audit_checkpoints k WHERE k.node = n.node;
			ok := false;
			IF n.l - n.f + 1 <> n.c THEN
				why := format('seq %s to %s are not all in this partition (events of later months are interleaved)', n.f, n.l);
			ELSIF n.f <> coalesce(prev_last, 0) + 1 THEN
				why := format('not the oldest events: seq %s to %s are still stored', coalesce(prev_last, 0) + 1, n.f - 1);
			ELSIF coalesce(ckpt, 0) < n.l THEN
				why := format('not covered by a signed checkpoint yet (last checkpoint at seq %s)', coalesce(ckpt, 0));
			ELSE
				ok := true;
				why := NULL;
				planned := planned || jsonb_build_object(n.node, n.l);
			END IF;
			blocked := blocked OR NOT ok;
			RETURN NEXT;
		END LOOP;
	END LOOP;
END
$$;

-- Record one signed retirement of the partition part for node; the
-- figures are checked against the rows (see audit_retire_candidates).
CREATE FUNCTION mailfort.audit_retire_record(part text, node text, first_seq bigint,
		last_seq bigint, count bigint, last_hash bytea, signature bytea, signer_key bytea,
		min_months integer) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort AS $$
DECLARE
	c record;
	found_it boolean := false;
BEGIN
	PERFORM pg_advisory_xact_lock(hashtext('mailfort.ensure_partitions'));
	FOR c IN SELECT * FROM mailfort.audit_retire_candidates(min_months) LOOP
		CONTINUE WHEN c.partition <> part OR c.node <> audit_retire_record.node;
		IF NOT c.ok THEN
			RAISE EXCEPTION 'mailfort: partition % node %: cannot retire: %', part, node, c.why
				USING ERRCODE = 'integrity_constraint_violation';
		END IF;
		IF c.first_seq <> audit_retire_record.first_seq OR c.last_seq <> audit_retire_record.last_seq
		   OR c.count <> audit_retire_record.count OR c.last_hash <> audit_retire_record.last_hash THEN
			RAISE EXCEPTION 'mailfort: partition % node %: the retirement does not match the stored events (seq % to %, % events)',
				part, node, c.first_seq, c.last_seq, c.count USING ERRCODE = 'integrity_constraint_violation';
		END IF;
		found_it := true;
	END LOOP;
	IF first_seq <> coalesce((SELECT max(r.last_seq) FROM mailfort.audit_retired r
				  WHERE r.node = audit_retire_record.node), 0) + 1 THEN
		RAISE EXCEPTION 'mailfort: partition % node %: cannot retire: not the oldest events (seq % onwards are not retired)',
			part, node, coalesce((SELECT max(r.last_seq) FROM mailfort.audit_retired r
					      WHERE r.node = audit_retire_record.node), 0) + 1
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	IF NOT found_it THEN
		RAISE EXCEPTION 'mailfort: partition % holds no events of node % that may be retired (older than % months, oldest first)',
			part, node, min_months USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	IF NOT EXISTS (SELECT 1 FROM mailfort.audit_checkpoints k
		       WHERE k.node = audit_retire_record.node AND k.signer_key = audit_retire_record.signer_key) THEN
		RAISE EXCEPTION 'mailfort: node %: the retirement is signed by a key that signed none of its checkpoints', node
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	INSERT INTO mailfort.audit_retired (partition, node, first_seq, last_seq, count, last_hash,
					    signature, signer_key, min_months)
	VALUES (part, node, first_seq, last_seq, count, last_hash, signature, signer_key, min_months);
END
$$;

-- Detach part once every node's events in it have a signed retirement
-- (recorded in this transaction with audit_retire_record).
CREATE FUNCTION mailfort.audit_retire_detach(part text) RETURNS void
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort AS $$
DECLARE
	missing text;
BEGIN
	IF part !~ '^audit_events_[0-9]{4}_[0-9]{2}$' OR NOT EXISTS (
		SELECT 1 FROM pg_inherits i JOIN pg_class c ON c.oid = i.inhrelid
		WHERE i.inhparent = 'mailfort.audit_events'::regclass AND c.relname = part) THEN
		RAISE EXCEPTION 'mailfort: % is not a monthly partition of mailfort.audit_events', part
			USING ERRCODE = 'invalid_parameter_value';
	END IF;
	EXECUTE format('SELECT string_agg(DISTINCT e.node, '', '') FROM mailfort.%I e
			WHERE NOT EXISTS (SELECT 1 FROM mailfort.audit_retired r
					  WHERE r.partition = $1 AND r.node = e.node)', part)
		INTO missing USING part;
	IF missing IS NOT NULL THEN
		RAISE EXCEPTION 'mailfort: partition %: no signed retirement for node(s) %', part, missing
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	EXECUTE format('ALTER TABLE mailfort.audit_events DETACH PARTITION mailfort.%I', part);
END
$$;

REVOKE EXECUTE ON FUNCTION mailfort.audit_retire_candidates(integer),
	mailfort.audit_retire_record(text, text, bigint, bigint, bigint, bytea, bytea, bytea, integer),
	mailfort.audit_retire_detach(text) FROM PUBLIC;

-- Auditors see every retirement, with what makes it checkable.
DROP VIEW audit.retired;
CREATE VIEW audit.retired AS
SELECT partition, node, first_seq, last_seq, count, last_hash, signature, signer_key,
       retired_by, min_months, detached_at
FROM mailfort.audit_retired;
GRANT SELECT ON audit.retired TO mailfort_auditor, mailfort_admin;
COMMENT ON VIEW audit.retired IS 'every retirement of audit events: seq range, last hash, signature';

-- ------------------------------------------------------------ event triggers

-- A table of schema mailfort that holds audit events and is no longer
-- attached to audit_events: refused unless it is empty or retired.
CREATE FUNCTION mailfort.audit_guard_detach() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
	cmd record;
	t record;
	has_rows boolean;
BEGIN
	FOR cmd IN SELECT * FROM pg_event_trigger_ddl_commands()
		   WHERE command_tag = 'ALTER TABLE' AND object_identity = 'mailfort.audit_events'
	LOOP
		FOR t IN
			SELECT c.relname FROM pg_class c
			WHERE c.relnamespace = 'mailfort'::regnamespace AND c.relkind = 'r'
			  AND c.relname ~ '^audit_events_'
			  AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = c.oid)
			  AND NOT EXISTS (SELECT 1 FROM mailfort.audit_retired r WHERE r.partition = c.relname)
		LOOP
			EXECUTE format('SELECT EXISTS (SELECT 1 FROM mailfort.%I)', t.relname) INTO has_rows;
			IF has_rows THEN
				RAISE EXCEPTION 'mailfort: detaching audit partition % refused: it holds events that no signed retirement covers', t.relname
					USING ERRCODE = 'insufficient_privilege',
					      HINT = 'old events are retired with "mailfortctl audit retire" by the schema owner';
			END IF;
		END LOOP;
	END LOOP;
END
$$;

-- Dropping the trail's tables, or a partition that was not retired.
CREATE FUNCTION mailfort.audit_guard_drop() RETURNS event_trigger
LANGUAGE plpgsql SET search_path = pg_catalog AS $$
DECLARE
	o record;
BEGIN
	FOR o IN SELECT * FROM pg_event_trigger_dropped_objects()
		 WHERE object_type = 'table' AND schema_name = 'mailfort'
		   AND (object_name ~ '^audit_' OR object_name IN ('alerts', 'alert_acks', 'mail_verdicts'))
	LOOP
		IF o.object_name ~ '^audit_events_[0-9]{4}_[0-9]{2}$' AND EXISTS (
			SELECT 1 FROM mailfort.audit_retired r WHERE r.partition = o.object_name) THEN
			CONTINUE; -- an archived copy of retired events: the site's to keep or drop
		END IF;
		RAISE EXCEPTION 'mailfort: dropping %.% refused: it is part of the audit trail', o.schema_name, o.object_name
			USING ERRCODE = 'insufficient_privilege',
			      HINT = 'old events are retired with "mailfortctl audit retire" by the schema owner';
	END LOOP;
END
$$;

-- Event triggers need a superuser; a migration run by a CREATEROLE member
-- of mailfort_owner leaves them out and says so.
DO $guards$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
		RESET ROLE;
		CREATE EVENT TRIGGER mailfort_audit_guard_detach ON ddl_command_end
			WHEN TAG IN ('ALTER TABLE') EXECUTE FUNCTION mailfort.audit_guard_detach();
		CREATE EVENT TRIGGER mailfort_audit_guard_drop ON sql_drop
			EXECUTE FUNCTION mailfort.audit_guard_drop();
		SET LOCAL ROLE mailfort_owner;
	ELSE
		RAISE WARNING 'mailfort: not a superuser: the event triggers that stop mailfort_owner from detaching or dropping audit partitions were not installed'
			USING HINT = 'as a superuser: CREATE EVENT TRIGGER mailfort_audit_guard_detach ON ddl_command_end WHEN TAG IN (''ALTER TABLE'') EXECUTE FUNCTION mailfort.audit_guard_detach(); CREATE EVENT TRIGGER mailfort_audit_guard_drop ON sql_drop EXECUTE FUNCTION mailfort.audit_guard_drop();';
	END IF;
END
$guards$;
