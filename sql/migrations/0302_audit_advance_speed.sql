-- 0302_audit_advance_speed.sql - the batch trigger of audit_events, faster.
--
-- The statement trigger from 0003 checked that each row of a batch links to
-- the previous one with a self-join of the transition table; transition
-- tables have no statistics, the planner chose a nested loop, and a batch of
-- 10,000 events cost about a second (quadratic).  Same checks, same errors,
-- with a window function (one sort of the batch).

SET LOCAL ROLE mailfort_owner;

CREATE OR REPLACE FUNCTION mailfort.audit_events_advance() RETURNS trigger
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
		-- each row links to the one before it (seq is contiguous, checked above);
		-- a window over the batch, not a self-join the planner may nest-loop
		SELECT x.seq INTO bad FROM (
			SELECT r.seq, r.prev_hash, lag(r.hash) OVER (ORDER BY r.seq) AS before
			FROM new_rows r WHERE r.node = b.node) x
		WHERE x.before IS NOT NULL AND x.prev_hash <> x.before LIMIT 1;
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

