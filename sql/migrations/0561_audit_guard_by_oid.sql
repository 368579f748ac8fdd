-- 0561_audit_guard_by_oid.sql - the trail's tables are known by OID, not
-- by name, to the event triggers that guard them.
--
-- The guards of 0550 matched tables by name ('^audit_'): the schema owner
-- could ALTER TABLE mailfort.audit_events_2026_12 RENAME TO x_hidden and
-- then DROP it, move it out with SET SCHEMA, or DISABLE TRIGGER the
-- append-only triggers.  Now every table of the trail, and every table
-- that is or was a partition of audit_events, is recorded here (OID and
-- name) when it is created, and after every ALTER TABLE the guard checks
-- each recorded table: still of its name, still in schema mailfort, its
-- triggers enabled, a partition still attached unless it is empty or
-- retired.  A DROP is refused by OID (from anybody, as in 0550).  The
-- ALTER checks spare superusers' sessions (they can disable event triggers
-- anyway; verify and the anchors catch what they do).

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.audit_guarded (
	relid     oid PRIMARY KEY,
	relname   text NOT NULL,       -- its name when recorded: it may not change
	partition boolean NOT NULL     -- is or was a partition of audit_events
);
COMMENT ON TABLE mailfort.audit_guarded IS 'the audit trail''s tables, by OID, for the event triggers (append-only)';
CREATE TRIGGER audit_guarded_no_change BEFORE UPDATE OR DELETE ON mailfort.audit_guarded
	FOR EACH ROW EXECUTE FUNCTION mailfort.refuse_change();
CREATE TRIGGER audit_guarded_no_truncate BEFORE TRUNCATE ON mailfort.audit_guarded
	FOR EACH STATEMENT EXECUTE FUNCTION mailfort.refuse_change();
ALTER TABLE mailfort.audit_guarded ENABLE ALWAYS TRIGGER audit_guarded_no_change;
ALTER TABLE mailfort.audit_guarded ENABLE ALWAYS TRIGGER audit_guarded_no_truncate;

-- Record the trail's tables not yet recorded: audit_events and everything
-- in its partition tree, and the tables beside it.
CREATE FUNCTION mailfort.audit_guard_record() RETURNS void
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
	INSERT INTO mailfort.audit_guarded (relid, relname, partition)
	SELECT c.oid, c.relname, t.level > 0
	FROM pg_partition_tree('mailfort.audit_events'::regclass) t
	JOIN pg_class c ON c.oid = t.relid
	UNION ALL
	SELECT c.oid, c.relname, false FROM pg_class c
	WHERE c.relnamespace = 'mailfort'::regnamespace AND c.relkind IN ('r', 'p')
	  AND c.relname IN ('audit_checkpoints', 'audit_heads', 'audit_retired', 'audit_quarantine',
	                    'audit_anchored', 'auditd_positions', 'audit_guarded', 'alerts',
	                    'alert_acks', 'mail_verdicts')
	ON CONFLICT (relid) DO NOTHING;
$$;
REVOKE EXECUTE ON FUNCTION mailfort.audit_guard_record() FROM PUBLIC;
SELECT mailfort.audit_guard_record();

-- After ALTER TABLE / CREATE TABLE: record new partitions, then check
-- every recorded table.
-- It runs as the schema owner (any role's DDL fires it, and it reads
-- audit_guarded); whose session it is decides whether it checks.
CREATE FUNCTION mailfort.audit_guard_alter() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
	g record;
	has_rows boolean;
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
		RETURN;
	END IF;
	PERFORM mailfort.audit_guard_record();
	FOR g IN SELECT a.relid, a.relname, a.partition, c.relname AS now_name,
			c.relnamespace AS nsp
		 FROM mailfort.audit_guarded a JOIN pg_class c ON c.oid = a.relid
	LOOP
		IF g.now_name <> g.relname OR g.nsp <> 'mailfort'::regnamespace THEN
			RAISE EXCEPTION 'mailfort: renaming or moving audit table mailfort.% refused', g.relname
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		-- ensure_partitions itself turns the default partition's trigger
		-- off for a moment, to move rows into a new month
		IF g.relname <> 'audit_events_default' AND EXISTS (
			SELECT 1 FROM pg_trigger t WHERE t.tgrelid = g.relid AND NOT t.tgisinternal
			  AND t.tgenabled = 'D') THEN
			RAISE EXCEPTION 'mailfort: disabling a trigger of audit table mailfort.% refused', g.relname
				USING ERRCODE = 'insufficient_privilege';
		END IF;
		IF g.partition AND NOT EXISTS (SELECT 1 FROM pg_inherits i WHERE i.inhrelid = g.relid)
		   AND NOT EXISTS (SELECT 1 FROM mailfort.audit_retired r WHERE r.partition = g.relname) THEN
			EXECUTE format('SELECT EXISTS (SELECT 1 FROM mailfort.%I)', g.relname) INTO has_rows;
			IF has_rows THEN
				RAISE EXCEPTION 'mailfort: detaching audit partition mailfort.% refused: it holds events that no signed retirement covers', g.relname
					USING ERRCODE = 'insufficient_privilege',
					      HINT = 'old events are retired with "mailfortctl audit retire" by the schema owner';
			END IF;
		END IF;
	END LOOP;
END
$$;

-- A DROP of a recorded table, whatever it is called now (a partition that
-- was retired under its recorded name excepted).
CREATE FUNCTION mailfort.audit_guard_drop_oid() RETURNS event_trigger
LANGUAGE plpgsql SECURITY DEFINER SET search_path = pg_catalog AS $$
DECLARE
	o record;
BEGIN
	FOR o IN SELECT d.schema_name, d.object_name, a.relname, a.partition
		 FROM pg_event_trigger_dropped_objects() d
		 JOIN mailfort.audit_guarded a ON a.relid = d.objid
		 WHERE d.classid = 'pg_class'::regclass AND d.objsubid = 0
	LOOP
		IF o.partition AND EXISTS (SELECT 1 FROM mailfort.audit_retired r WHERE r.partition = o.relname) THEN
			CONTINUE;
		END IF;
		RAISE EXCEPTION 'mailfort: dropping %.% refused: it is the audit table mailfort.%', o.schema_name, o.object_name, o.relname
			USING ERRCODE = 'insufficient_privilege';
	END LOOP;
END
$$;

DO $guards$
BEGIN
	IF (SELECT rolsuper FROM pg_roles WHERE rolname = session_user) THEN
		RESET ROLE;
		CREATE EVENT TRIGGER mailfort_audit_guard_alter ON ddl_command_end
			WHEN TAG IN ('ALTER TABLE', 'CREATE TABLE') EXECUTE FUNCTION mailfort.audit_guard_alter();
		CREATE EVENT TRIGGER mailfort_audit_guard_drop_oid ON sql_drop
			EXECUTE FUNCTION mailfort.audit_guard_drop_oid();
		SET LOCAL ROLE mailfort_owner;
	ELSE
		RAISE WARNING 'mailfort: not a superuser: the event triggers that stop mailfort_owner from renaming, moving, detaching or dropping audit tables and disabling their triggers were not installed'
			USING HINT = 'as a superuser: CREATE EVENT TRIGGER mailfort_audit_guard_alter ON ddl_command_end WHEN TAG IN (''ALTER TABLE'', ''CREATE TABLE'') EXECUTE FUNCTION mailfort.audit_guard_alter(); CREATE EVENT TRIGGER mailfort_audit_guard_drop_oid ON sql_drop EXECUTE FUNCTION mailfort.audit_guard_drop_oid();';
	END IF;
END
$guards$;
