-- 0700_crypt_profile.sql - account mail keys of the kcmvp profile.
--
-- [crypto] profile = kcmvp makes P-256 account keys: the public key is the
-- 65-byte uncompressed point (04 || X || Y), the private key is wrapped as
-- "MFS2" (ARIA-256-GCM under master.key, 64 bytes) or "MFW2"
-- (PBKDF2-HMAC-SHA256 + ARIA-256-GCM, 89 bytes), and an escrow copy is
-- sealed to a P-256 recovery key (ECDH P-256 + KBKDF + ARIA-256-GCM, 113
-- bytes).  The algorithm of a key follows from its public key's length;
-- layouts: lib/mf-crypto.h, docs/SECURITY.md.

SET LOCAL ROLE mailfort_owner;

ALTER TABLE mailfort.mail_keys DROP CONSTRAINT mail_keys_public_key_check;
ALTER TABLE mailfort.mail_keys ADD CONSTRAINT mail_keys_public_key_check
	CHECK (octet_length(public_key) = 32
	       OR (octet_length(public_key) = 65 AND get_byte(public_key, 0) = 4));

DROP POLICY crypt_insert ON mailfort.mail_keys;
CREATE POLICY crypt_insert ON mailfort.mail_keys FOR INSERT TO mailfort_crypt
	WITH CHECK (mode = 'server' AND retired_at IS NULL
		    AND (escrow_wrap IS NULL OR octet_length(escrow_wrap) IN (80, 113)));

COMMENT ON TABLE mailfort.mail_keys IS
	'per-account key pairs (X25519: 32-byte public key; P-256: 65 bytes); private part always wrapped';
COMMENT ON COLUMN mailfort.mail_keys.wrapped_private IS
	'server: "MFS1" (76 bytes, X25519) or "MFS2" (64 bytes, P-256) under master.key; '
	'password: Argon2id "MFW1" (101 bytes, X25519) or PBKDF2 "MFW2" (89 bytes, P-256)';
