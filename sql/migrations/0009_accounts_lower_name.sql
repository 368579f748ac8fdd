-- 0009_accounts_lower_name.sql - look account names up regardless of case.
--
-- Under not_enrolled = allow, pam_mailfort refuses a name without an
-- account when an account's name differs from it only in letter case (a
-- case-insensitive password back end would accept it with that account's
-- password).  That lookup runs for every login of a name without an
-- account, so it must use an index rather than read the whole table.

SET LOCAL ROLE mailfort_owner;

CREATE INDEX accounts_username_lower ON mailfort.accounts (lower(username));
