-- 0008_pam_grants.sql - narrow what mailfort_pam may read and change.
--
-- 0002 let the PAM role change totp_state and totp_enrolled_at, which the
-- module never does: with the PAM role's credentials (readable by the mail
-- server's auth process) anybody could set every account's state to 'none'
-- and so turn the second factor off where not_enrolled = allow.  Enrolment
-- and reset belong to mailfort_admin.  It could also read every column of
-- app_passwords, including the mail keys wrapped under each app password;
-- the module only looks an app password up by its keyed hash.

SET LOCAL ROLE mailfort_owner;

REVOKE UPDATE (totp_state, totp_enrolled_at) ON mailfort.accounts FROM mailfort_pam;

REVOKE SELECT ON mailfort.app_passwords FROM mailfort_pam;
GRANT SELECT (id, account_id, hash, protocols, revoked_at) ON mailfort.app_passwords
	TO mailfort_pam;
