-- 0400_spam_examples.sql - the classifier learns from kept examples.
--
-- The spam classifier is a logistic regression over the tokens of a
-- message.  Unlike per-token counts, its weights cannot be updated by
-- adding numbers: every training run fits them again over every example
-- trained so far.  So each trained message is kept, as the set of its
-- keyed token ids (8 bytes each, big-endian, sorted, no duplicates: the
-- words themselves are never stored), under a digest of that set:
-- training the same message twice keeps one example, and training it
-- again under the other label corrects the label.
--
-- spam_tokens gains the fitted weight of each token and spam_totals the
-- model's bias.  A NULL bias means the stored statistics are counts only
-- (trained before this migration): the milter then keeps using the
-- counts, and "mailfortctl spam stats" says to train again.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.spam_examples (
	digest     bytea PRIMARY KEY CHECK (octet_length(digest) = 32),
	is_spam    boolean NOT NULL,
	tokens     bytea NOT NULL CHECK (octet_length(tokens) % 8 = 0),
	trained_at timestamptz NOT NULL DEFAULT now()
);
COMMENT ON TABLE mailfort.spam_examples IS
	'every message trained: its sorted keyed token ids (8 bytes each) and its label';

ALTER TABLE mailfort.spam_tokens ADD COLUMN weight real;
COMMENT ON COLUMN mailfort.spam_tokens.weight IS 'logistic regression weight (NULL: counts only)';
ALTER TABLE mailfort.spam_totals ADD COLUMN bias double precision;
COMMENT ON COLUMN mailfort.spam_totals.bias IS 'logistic regression bias (NULL: counts only)';

GRANT SELECT, INSERT, UPDATE, DELETE ON mailfort.spam_examples TO mailfort_admin;
