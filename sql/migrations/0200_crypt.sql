-- 0200_crypt.sql - what the mailfort_crypt Dovecot plugin needs beyond 0002.
--
-- Server mode makes a key pair on the first delivery to an account that has
-- none (the account row too, when the site did not create one: Dovecot's
-- userdb has already accepted the user).  With an escrow key configured the
-- plugin also stores the private key sealed to the offline recovery public
-- key, which reveals nothing to the database, so the insert policy allows
-- escrow_wrap.
--
-- Wrap formats: lib/mf-crypto.h (per-account mail key pairs).

SET LOCAL ROLE mailfort_owner;

GRANT INSERT (username) ON mailfort.accounts TO mailfort_crypt;

DROP POLICY crypt_insert ON mailfort.mail_keys;
CREATE POLICY crypt_insert ON mailfort.mail_keys FOR INSERT TO mailfort_crypt
	WITH CHECK (mode = 'server' AND retired_at IS NULL
		    AND (escrow_wrap IS NULL OR octet_length(escrow_wrap) = 80));

COMMENT ON COLUMN mailfort.mail_keys.wrapped_private IS
	'server: "MFS1" wrap under master.key (76 bytes); password: Argon2id wrap (101 bytes)';
