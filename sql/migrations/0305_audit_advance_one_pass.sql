-- 0305_audit_advance_one_pass.sql - the batch trigger of audit_events reads
-- its transition table once.
--
-- The trigger from 0302 read the batch four times per node: a grouping
-- (with a sort for count(DISTINCT seq)), a scan for the first row's
-- prev_hash, a window sort for the links, and a scan for the last row's
-- hash to advance the head.  This version computes everything in one
-- window pass sorted by (node, seq) and one aggregate over it, then runs
-- the same checks, in the same order, with the same messages and error
-- codes:
--   - no repeated and no missing seq in the batch (a repeat is a row whose
--     seq equals the previous row's in seq order; with none, n rows from
--     first_seq to last_seq are contiguous exactly when last - first + 1 = n);
--   - the batch continues the stored head (seq and prev_hash);
--   - every row's prev_hash is the hash of the row before it;
--   - the head moves to the last row's seq and hash.
-- Guarantees are unchanged; bench/auditd-ingest: docs/BENCHMARKS.md.

SET LOCAL ROLE mailfort_owner;

CREATE OR REPLACE FUNCTION mailfort.audit_events_advance() RETURNS trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog, mailfort AS $$
DECLARE
	b record;
	h record;
BEGIN
	FOR b IN
		SELECT w.node, count(*) AS n, min(w.seq) AS first_seq, max(w.seq) AS last_seq,
		       count(*) FILTER (WHERE w.seq = w.seq_before) AS repeated,
		       min(w.seq) FILTER (WHERE w.seq_before IS NOT NULL
		                          AND w.prev_hash <> w.hash_before) AS bad_seq,
		       (array_agg(w.prev_hash) FILTER (WHERE w.seq_before IS NULL))[1] AS first_prev,
		       (array_agg(w.hash) FILTER (WHERE w.is_last))[1] AS last_hash
		FROM (SELECT r.node, r.seq, r.prev_hash, r.hash,
		             lag(r.seq) OVER s AS seq_before, lag(r.hash) OVER s AS hash_before,
		             lead(r.seq) OVER s IS NULL AS is_last
		      FROM new_rows r WINDOW s AS (PARTITION BY r.node ORDER BY r.seq)) w
		GROUP BY w.node ORDER BY w.node
	LOOP
		IF b.repeated <> 0 OR b.last_seq - b.first_seq + 1 <> b.n THEN
			RAISE EXCEPTION 'mailfort: audit batch for node "%" has repeated or missing seq (% rows, seq % to %)',
				b.node, b.n, b.first_seq, b.last_seq USING ERRCODE = 'unique_violation';
		END IF;
		SELECT * INTO h FROM mailfort.audit_heads WHERE node = b.node FOR UPDATE;
		IF FOUND THEN
			IF b.first_seq <> h.last_seq + 1 THEN
				RAISE EXCEPTION 'mailfort: audit seq % for node "%" does not follow the last stored seq %',
					b.first_seq, b.node, h.last_seq USING ERRCODE = 'unique_violation';
			END IF;
			IF b.first_prev IS DISTINCT FROM h.last_hash THEN
				RAISE EXCEPTION 'mailfort: audit seq % for node "%": prev_hash does not match the stored chain head',
					b.first_seq, b.node USING ERRCODE = 'integrity_constraint_violation';
			END IF;
		END IF;
		IF b.bad_seq IS NOT NULL THEN
			RAISE EXCEPTION 'mailfort: audit seq % for node "%": prev_hash is not the hash of seq %',
				b.bad_seq, b.node, b.bad_seq - 1 USING ERRCODE = 'integrity_constraint_violation';
		END IF;
		INSERT INTO mailfort.audit_heads AS a (node, last_seq, last_hash)
		VALUES (b.node, b.last_seq, b.last_hash)
		ON CONFLICT (node) DO UPDATE
			SET last_seq = EXCLUDED.last_seq, last_hash = EXCLUDED.last_hash, updated_at = now();
	END LOOP;
	RETURN NULL;
END
$$;
