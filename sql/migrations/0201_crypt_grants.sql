-- 0201_crypt_grants.sql - the columns the mailfort_crypt plugin reads.
--
-- Password mode strips a trailing TOTP code from the login string only for
-- accounts with an enrolled second factor (totp_state, totp_digits), and
-- finds an app password's wrap of the mail key by the app password's keyed
-- hash.  Nothing here is secret: the wrap is under the app password, the
-- hash is keyed with hash.key.

SET LOCAL ROLE mailfort_owner;

GRANT SELECT (totp_state, totp_digits) ON mailfort.accounts TO mailfort_crypt;
GRANT SELECT (account_id, hash, revoked_at, wrapped_mail_key) ON mailfort.app_passwords
	TO mailfort_crypt;
