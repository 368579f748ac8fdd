-- 0600_pam_throttle.sql - failed logins slowed per (account, source address).
--
-- pam_mailfort counts failures per account and client address: after
-- [pam] throttle_after failures from one address, each further failure from
-- it makes that address wait (throttle_delay, doubling, at most
-- throttle_max_delay) before its next attempt for this account is even
-- looked at.  The owner, logging in from another address, is not slowed by
-- someone guessing elsewhere.  The account itself is locked only at
-- max_failures consecutive failures from all addresses together, or when
-- lock_sources addresses failed within throttle_window (accounts.*).
--
-- source is the client address as text: an IPv4 address, the /64 network
-- of an IPv6 address (one host holds a whole /64), a host name as the
-- service gave it, or '' when none was given.  A row is forgotten after
-- throttle_window without a failure, and deleted when that address logs in.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.auth_throttle (
	account_id      bigint NOT NULL REFERENCES mailfort.accounts ON DELETE CASCADE,
	source          text NOT NULL CHECK (length(source) <= 64),
	failures        integer NOT NULL CHECK (failures > 0),
	last_failure_at timestamptz NOT NULL,
	delayed_until   timestamptz,
	PRIMARY KEY (account_id, source)
);

GRANT SELECT, INSERT, UPDATE, DELETE ON mailfort.auth_throttle TO mailfort_pam;
-- mailfortctl user status / unlock
GRANT SELECT, DELETE ON mailfort.auth_throttle TO mailfort_admin;
