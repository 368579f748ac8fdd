-- 0004_spam.sql - token statistics for the spam classifier.
--
-- Tokens are stored as a keyed hash, never as the word itself: the words of
-- official mail must not be readable from the database.  mailfort-milter
-- reads; "mailfortctl spam train" (mailfort_admin) writes.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.spam_tokens (
	token      bytea PRIMARY KEY CHECK (octet_length(token) BETWEEN 8 AND 32),
	spam_count bigint NOT NULL DEFAULT 0 CHECK (spam_count >= 0),
	ham_count  bigint NOT NULL DEFAULT 0 CHECK (ham_count >= 0),
	updated_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mailfort.spam_tokens IS 'per-token spam/ham counts (token = keyed hash)';

-- Number of messages trained, one row.
CREATE TABLE mailfort.spam_totals (
	id            boolean PRIMARY KEY DEFAULT true CHECK (id),
	spam_messages bigint NOT NULL DEFAULT 0 CHECK (spam_messages >= 0),
	ham_messages  bigint NOT NULL DEFAULT 0 CHECK (ham_messages >= 0),
	updated_at    timestamptz NOT NULL DEFAULT now()
);
INSERT INTO mailfort.spam_totals DEFAULT VALUES;

GRANT SELECT ON mailfort.spam_tokens, mailfort.spam_totals TO mailfort_milter, mailfort_admin;
GRANT INSERT, UPDATE, DELETE ON mailfort.spam_tokens TO mailfort_admin;
GRANT UPDATE ON mailfort.spam_totals TO mailfort_admin;
