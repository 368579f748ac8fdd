-- 0006_crypt_reads.sql - what mailfort_crypt reads besides the mail keys.
--
-- In password mode the plugin separates the password from an appended
-- TOTP code (so it needs the account's TOTP state and digit count), and a
-- login with an app password unwraps the mail key stored with that app
-- password.  Column grants only: the plugin still cannot read TOTP secrets,
-- lockout state, or other app-password data.

SET LOCAL ROLE mailfort_owner;

GRANT SELECT (totp_state, totp_digits) ON mailfort.accounts TO mailfort_crypt;
GRANT SELECT (account_id, hash, revoked_at, wrapped_mail_key) ON mailfort.app_passwords
	TO mailfort_crypt;
