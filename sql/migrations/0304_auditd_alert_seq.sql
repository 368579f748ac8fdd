-- 0304_auditd_alert_seq.sql - how far the volume alert rules have looked.
--
-- The rules that count an account's reads and deletes in a window are
-- evaluated every few seconds under load rather than on every batch; the
-- last seq they covered is kept with the spool position, in the same
-- transaction, so a restart neither skips nor repeats an evaluation.

SET LOCAL ROLE mailfort_owner;

ALTER TABLE mailfort.auditd_positions ADD COLUMN alert_seq bigint NOT NULL DEFAULT 0;
UPDATE mailfort.auditd_positions SET alert_seq = last_seq;
