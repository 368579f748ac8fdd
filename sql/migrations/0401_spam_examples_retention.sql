-- 0401_spam_examples_retention.sql - kept training examples are bounded.
--
-- "mailfortctl spam train" keeps at most [milter] keep_examples examples of
-- each class, the newest, and "mailfortctl spam prune" drops examples by
-- count or age (0400 kept every example ever trained).  Both find the
-- oldest examples of a class in this index, in the order they are dropped
-- (trained_at, then digest for examples trained in the same run), instead
-- of sorting the whole table on every run.
--
-- No new privilege: mailfort_admin already deletes from spam_examples.

SET LOCAL ROLE mailfort_owner;

CREATE INDEX spam_examples_class_age
	ON mailfort.spam_examples (is_spam, trained_at, digest);
COMMENT ON INDEX mailfort.spam_examples_class_age IS
	'oldest examples of a class first: retention of the kept examples';
