-- 0003_audit.sql - the audit trail: events (monthly partitions), per-node
-- chain heads, signed checkpoints, alerts, mail verdicts.
--
-- Append-only for everybody: no role is granted UPDATE, DELETE or TRUNCATE,
-- and ENABLE ALWAYS triggers refuse them even to the owner and to superusers.
-- A superuser can still disable a trigger or drop a partition; the hash chain
-- and the signed checkpoints (mailfortctl audit verify) reveal that.
--
-- (node, seq) is unique across partitions although the partitioned table's
-- keys must contain the partition key: audit_heads holds, per node, the last
-- shipped seq and hash, and a statement trigger checks every inserted batch
-- against it (seq continues the node's sequence without gap or repeat, and
-- prev_hash links to the previous row's hash).

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.audit_events (
	node        text NOT NULL CHECK (node <> ''),
	seq         bigint NOT NULL CHECK (seq >= 1),   -- per-node sequence, from 1
	event_time  timestamptz NOT NULL,               -- the producer's clock
	received_at timestamptz NOT NULL DEFAULT now(), -- when it reached PostgreSQL
	type        text NOT NULL,
	username    text,
	session     text,
	ip          inet,
	payload     text NOT NULL CHECK (payload::jsonb IS NOT NULL), -- the exact event JSON
	prev_hash   bytea NOT NULL,
	hash        bytea NOT NULL,
	PRIMARY KEY (node, seq, event_time)
) PARTITION BY RANGE (event_time);
COMMENT ON TABLE mailfort.audit_events IS 'audit trail, one row per event, hash-chained per node';
COMMENT ON COLUMN mailfort.audit_events.payload IS 'event JSON exactly as spooled (hashed byte for byte)';
CREATE INDEX audit_events_time ON mailfort.audit_events USING brin (event_time);
CREATE INDEX audit_events_user ON mailfort.audit_events (username, event_time);

-- Rows whose time has no monthly partition (a producer with a wrong clock,
-- or a month not created yet).  ensure_partitions() moves such rows into the
-- month's partition when it creates it.
CREATE TABLE mailfort.audit_events_default PARTITION OF mailfort.audit_events DEFAULT;

CREATE TABLE mailfort.audit_heads (
	node       text PRIMARY KEY,
	last_seq   bigint NOT NULL,
	last_hash  bytea NOT NULL,
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mailfort.audit_heads IS 'per node: last seq and hash in audit_events (kept by trigger)';

-- Statement trigger on audit_events: validate the batch, advance the heads.
CREATE FUNCTION mailfort.audit_events_advance() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort AS $$
DECLARE
	b record;
	h record;
	bad record;
BEGIN
	FOR b IN
		SELECT node, min(seq) AS first_seq, max(seq) AS last_seq, count(*) AS n,
		       count(DISTINCT seq) AS nd
		FROM new_rows GROUP BY node ORDER BY node
	LOOP
		IF b.nd <> b.n OR b.last_seq - b.first_seq + 1 <> b.n THEN
			RAISE EXCEPTION 'mailfort: audit batch for node "%" has repeated or missing seq (% rows, seq % to %)',
				b.node, b.n, b.first_seq, b.last_seq USING ERRCODE = 'unique_violation';
		END IF;
		SELECT * INTO h FROM mailfort.audit_heads WHERE node = b.node FOR UPDATE;
		IF FOUND THEN
			IF b.first_seq <> h.last_seq + 1 THEN
				RAISE EXCEPTION 'mailfort: audit seq % for node "%" does not follow the last stored seq %',
					b.first_seq, b.node, h.last_seq USING ERRCODE = 'unique_violation';
			END IF;
			PERFORM 1 FROM new_rows r
			WHERE r.node = b.node AND r.seq = b.first_seq AND r.prev_hash = h.last_hash;
			IF NOT FOUND THEN
				RAISE EXCEPTION 'mailfort: audit seq % for node "%": prev_hash does not match the stored chain head',
					b.first_seq, b.node USING ERRCODE = 'integrity_constraint_violation';
			END IF;
		END IF;
		SELECT r2.seq INTO bad FROM new_rows r1 JOIN new_rows r2
			ON r2.node = r1.node AND r2.seq = r1.seq + 1
		WHERE r1.node = b.node AND r2.prev_hash <> r1.hash LIMIT 1;
		IF FOUND THEN
			RAISE EXCEPTION 'mailfort: audit seq % for node "%": prev_hash is not the hash of seq %',
				bad.seq, b.node, bad.seq - 1 USING ERRCODE = 'integrity_constraint_violation';
		END IF;
		INSERT INTO mailfort.audit_heads AS a (node, last_seq, last_hash)
		SELECT node, seq, hash FROM new_rows WHERE node = b.node AND seq = b.last_seq
		ON CONFLICT (node) DO UPDATE
			SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash, updated_at = now();
	END LOOP;
	RETURN NULL;
END
$$;
CREATE TRIGGER audit_events_advance AFTER INSERT ON mailfort.audit_events
	REFERENCING NEW TABLE AS new_rows FOR EACH STATEMENT
	EXECUTE FUNCTION mailfort.audit_events_advance();
ALTER TABLE mailfort.audit_events ENABLE ALWAYS TRIGGER audit_events_advance;

-- Heads only move forward and are never removed.
CREATE FUNCTION mailfort.audit_heads_forward() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	IF NEW.node <> OLD.node OR NEW.last_seq <= OLD.last_seq THEN
		RAISE EXCEPTION 'mailfort: audit head of node "%" can only move forward', OLD.node
			USING ERRCODE = 'integrity_constraint_violation';
	END IF;
	RETURN NEW;
END
$$;
CREATE TRIGGER audit_heads_forward BEFORE UPDATE ON mailfort.audit_heads
	FOR EACH ROW EXECUTE FUNCTION mailfort.audit_heads_forward();
CREATE TRIGGER audit_heads_no_delete BEFORE DELETE ON mailfort.audit_heads
	FOR EACH ROW EXECUTE FUNCTION mailfort.refuse_change();
CREATE TRIGGER audit_heads_no_truncate BEFORE TRUNCATE ON mailfort.audit_heads
	FOR EACH STATEMENT EXECUTE FUNCTION mailfort.refuse_change();
ALTER TABLE mailfort.audit_heads ENABLE ALWAYS TRIGGER audit_heads_forward;
ALTER TABLE mailfort.audit_heads ENABLE ALWAYS TRIGGER audit_heads_no_delete;
ALTER TABLE mailfort.audit_heads ENABLE ALWAYS TRIGGER audit_heads_no_truncate;

CREATE TABLE mailfort.audit_checkpoints (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	node       text NOT NULL,
	seq        bigint NOT NULL,  -- last event covered
	count      bigint NOT NULL CHECK (count >= 0),
	head_hash  bytea NOT NULL,
	signature  bytea NOT NULL CHECK (octet_length(signature) = 64), -- Ed25519
	signer_key bytea NOT NULL CHECK (octet_length(signer_key) = 32),
	created_at timestamptz NOT NULL DEFAULT now(),
	UNIQUE (node, seq)
);
COMMENT ON TABLE mailfort.audit_checkpoints IS 'signed (count, head hash) per node, written by mailfort-auditd';

CREATE TABLE mailfort.alerts (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	created_at timestamptz NOT NULL DEFAULT now(),
	node       text,
	rule       text NOT NULL,
	severity   text NOT NULL DEFAULT 'warning' CHECK (severity IN ('info', 'warning', 'critical')),
	username   text,
	ip         inet,
	summary    text NOT NULL,
	detail     jsonb,
	event_node text,  -- the event that raised it, if one did
	event_seq  bigint
);
COMMENT ON TABLE mailfort.alerts IS 'alerts raised by mailfort-auditd rules (NOTIFY mailfort_alert)';
CREATE INDEX alerts_time ON mailfort.alerts (created_at);

-- Acknowledging an alert adds a row here; the alert itself never changes.
CREATE TABLE mailfort.alert_acks (
	alert_id bigint PRIMARY KEY REFERENCES mailfort.alerts,
	acked_at timestamptz NOT NULL DEFAULT now(),
	acked_by text NOT NULL DEFAULT session_user,
	note     text
);

CREATE FUNCTION mailfort.alerts_notify() RETURNS trigger
LANGUAGE plpgsql AS $$
BEGIN
	PERFORM pg_notify('mailfort_alert', NEW.id::text);
	RETURN NULL;
END
$$;
CREATE TRIGGER alerts_notify AFTER INSERT ON mailfort.alerts
	FOR EACH ROW EXECUTE FUNCTION mailfort.alerts_notify();

CREATE TABLE mailfort.mail_verdicts (
	id           bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	verdict_time timestamptz NOT NULL,
	received_at  timestamptz NOT NULL DEFAULT now(),
	node         text,
	queue_id     text,
	message_id   text,
	sender       text,
	recipients   text[] NOT NULL DEFAULT '{}',
	client_ip    inet,
	score        double precision,
	action       text NOT NULL,  -- accept, reject, tempfail, quarantine, discard, ...
	rules        jsonb,          -- rules that fired, with their weights
	tokens       jsonb,          -- tokens that decided the spam probability
	attachments  jsonb,          -- name, type, size, verdict per attachment
	event_node   text,           -- the audit event it came from
	event_seq    bigint
);
COMMENT ON TABLE mailfort.mail_verdicts IS 'one row per message judged by mailfort-milter';
CREATE INDEX mail_verdicts_time ON mailfort.mail_verdicts USING brin (verdict_time);
CREATE INDEX mail_verdicts_message_id ON mailfort.mail_verdicts (message_id);

-- Append-only: UPDATE/DELETE row triggers (cloned onto every partition) and
-- TRUNCATE statement triggers (set on each partition by ensure_partitions).
DO $append_only$
DECLARE
	t text;
BEGIN
	FOREACH t IN ARRAY ARRAY['audit_events', 'audit_events_default', 'audit_checkpoints',
				 'alerts', 'alert_acks', 'mail_verdicts']
	LOOP
		IF t <> 'audit_events_default' THEN
			EXECUTE format('CREATE TRIGGER %I BEFORE UPDATE OR DELETE ON mailfort.%I
					FOR EACH ROW EXECUTE FUNCTION mailfort.refuse_change()',
				       t || '_no_change', t);
		END IF;
		EXECUTE format('CREATE TRIGGER %I BEFORE TRUNCATE ON mailfort.%I
				FOR EACH STATEMENT EXECUTE FUNCTION mailfort.refuse_change()',
			       t || '_no_truncate', t);
		EXECUTE format('ALTER TABLE mailfort.%I ENABLE ALWAYS TRIGGER %I', t, t || '_no_truncate');
		EXECUTE format('ALTER TABLE mailfort.%I ENABLE ALWAYS TRIGGER %I', t,
			       CASE WHEN t = 'audit_events_default' THEN 'audit_events_no_change'
				    ELSE t || '_no_change' END);
	END LOOP;
END
$append_only$;

-- Create the monthly partitions of audit_events from the current month (UTC)
-- to months_ahead months later; returns how many it created.  Rows that were
-- stored in the default partition for such a month are moved into it, unchanged
-- (their hashes still verify).  Called at migrate time and periodically by
-- mailfort-auditd; safe to call concurrently.
CREATE FUNCTION mailfort.ensure_partitions(months_ahead integer DEFAULT 3) RETURNS integer
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort SET TimeZone = 'UTC' AS $$
DECLARE
	first_month timestamp := date_trunc('month', now() AT TIME ZONE 'UTC');
	lo timestamptz;
	hi timestamptz;
	part text;
	created integer := 0;
	moved boolean;
BEGIN
	IF months_ahead IS NULL OR months_ahead < 0 OR months_ahead > 120 THEN
		RAISE EXCEPTION 'mailfort.ensure_partitions: months_ahead must be 0..120, not %',
			coalesce(months_ahead::text, 'NULL') USING ERRCODE = 'invalid_parameter_value';
	END IF;
	PERFORM pg_advisory_xact_lock(hashtext('mailfort.ensure_partitions'));
	FOR i IN 0..months_ahead LOOP
		lo := (first_month + make_interval(months => i)) AT TIME ZONE 'UTC';
		hi := (first_month + make_interval(months => i + 1)) AT TIME ZONE 'UTC';
		part := 'audit_events_' || to_char(lo, 'YYYY_MM');
		CONTINUE WHEN to_regclass('mailfort.' || part) IS NOT NULL;
		LOCK TABLE mailfort.audit_events_default IN SHARE ROW EXCLUSIVE MODE;
		moved := EXISTS (SELECT 1 FROM mailfort.audit_events_default
				 WHERE event_time >= lo AND event_time < hi);
		IF moved THEN
			EXECUTE format('CREATE TABLE mailfort.%I (LIKE mailfort.audit_events INCLUDING DEFAULTS INCLUDING CONSTRAINTS)', part);
			EXECUTE format('INSERT INTO mailfort.%I SELECT * FROM mailfort.audit_events_default
					WHERE event_time >= $1 AND event_time < $2', part) USING lo, hi;
			ALTER TABLE mailfort.audit_events_default DISABLE TRIGGER audit_events_no_change;
			DELETE FROM mailfort.audit_events_default WHERE event_time >= lo AND event_time < hi;
			ALTER TABLE mailfort.audit_events_default ENABLE ALWAYS TRIGGER audit_events_no_change;
			EXECUTE format('ALTER TABLE mailfort.audit_events ATTACH PARTITION mailfort.%I FOR VALUES FROM (%L) TO (%L)',
				       part, lo, hi);
		ELSE
			EXECUTE format('CREATE TABLE mailfort.%I PARTITION OF mailfort.audit_events FOR VALUES FROM (%L) TO (%L)',
				       part, lo, hi);
		END IF;
		EXECUTE format('ALTER TABLE mailfort.%I ENABLE ALWAYS TRIGGER audit_events_no_change', part);
		EXECUTE format('CREATE TRIGGER audit_events_no_truncate BEFORE TRUNCATE ON mailfort.%I
				FOR EACH STATEMENT EXECUTE FUNCTION mailfort.refuse_change()', part);
		EXECUTE format('ALTER TABLE mailfort.%I ENABLE ALWAYS TRIGGER audit_events_no_truncate', part);
		created := created + 1;
	END LOOP;
	RETURN created;
END
$$;
COMMENT ON FUNCTION mailfort.ensure_partitions(integer) IS 'create monthly audit_events partitions ahead';

SELECT mailfort.ensure_partitions(3);

-- Grants.  Nobody gets UPDATE, DELETE or TRUNCATE on the audit tables.
GRANT INSERT ON mailfort.audit_events, mailfort.audit_checkpoints, mailfort.alerts,
	mailfort.mail_verdicts TO mailfort_auditd;
GRANT SELECT ON mailfort.audit_events, mailfort.audit_heads, mailfort.audit_checkpoints,
	mailfort.alerts, mailfort.mail_verdicts TO mailfort_auditd;
GRANT EXECUTE ON FUNCTION mailfort.ensure_partitions(integer) TO mailfort_auditd, mailfort_admin;
GRANT SELECT ON mailfort.audit_events, mailfort.audit_heads, mailfort.audit_checkpoints,
	mailfort.alerts, mailfort.alert_acks, mailfort.mail_verdicts TO mailfort_admin;
GRANT INSERT ON mailfort.alert_acks TO mailfort_admin;
