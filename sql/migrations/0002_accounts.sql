-- 0002_accounts.sql - accounts (TOTP and lockout state), app passwords,
-- recovery codes, per-account mail keys.
--
-- Nothing here is stored in the clear that would let a reader log in or read
-- mail: TOTP secrets are secretbox-sealed under totp.key, app passwords and
-- recovery codes are keyed hashes under hash.key, mail private keys are
-- wrapped under master.key or a password-derived key.

SET LOCAL ROLE mailfort_owner;

CREATE TABLE mailfort.accounts (
	id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	username         text NOT NULL UNIQUE
			 CHECK (username <> '' AND length(username) <= 320
				AND username !~ '[[:cntrl:]]'),
	created_at       timestamptz NOT NULL DEFAULT now(),
	-- second factor
	totp_state       text NOT NULL DEFAULT 'none'
			 CHECK (totp_state IN ('none', 'pending', 'enrolled')),
	totp_secret      bytea,  -- nonce | MAC | secret, secretbox under totp.key
	totp_digits      smallint NOT NULL DEFAULT 6 CHECK (totp_digits BETWEEN 6 AND 8),
	totp_period      smallint NOT NULL DEFAULT 30 CHECK (totp_period BETWEEN 15 AND 300),
	totp_last_step   bigint NOT NULL DEFAULT 0,  -- last accepted time step (replay guard)
	totp_enrolled_at timestamptz,
	-- lockout
	failed_count     integer NOT NULL DEFAULT 0 CHECK (failed_count >= 0),
	last_failure_at  timestamptz,
	locked_until     timestamptz,
	lock_count       integer NOT NULL DEFAULT 0 CHECK (lock_count >= 0), -- doubles the lock time
	last_login_at    timestamptz,
	CONSTRAINT accounts_totp_secret_present
		CHECK (totp_state = 'none' OR totp_secret IS NOT NULL),
	CONSTRAINT accounts_totp_secret_size
		CHECK (totp_secret IS NULL OR octet_length(totp_secret) BETWEEN 40 AND 104)
);
COMMENT ON TABLE mailfort.accounts IS 'one row per mail account: TOTP and lockout state';
COMMENT ON COLUMN mailfort.accounts.totp_secret IS 'secretbox(totp.key): 24-byte nonce, 16-byte MAC, raw secret';
COMMENT ON COLUMN mailfort.accounts.totp_last_step IS 'accept a step only via UPDATE ... WHERE totp_last_step < $step';

CREATE TABLE mailfort.app_passwords (
	id               bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id       bigint NOT NULL REFERENCES mailfort.accounts ON DELETE CASCADE,
	label            text NOT NULL CHECK (length(label) BETWEEN 1 AND 100
					  AND label !~ '[[:cntrl:]]'),
	hash             bytea NOT NULL CHECK (octet_length(hash) = 32), -- keyed hash, hash.key
	protocols        text[] NOT NULL
			 CHECK (cardinality(protocols) >= 1
				AND array_to_string(protocols, ',') ~ '^[a-z0-9_-]+(,[a-z0-9_-]+)*$'),
	created_at       timestamptz NOT NULL DEFAULT now(),
	last_used_at     timestamptz,
	last_used_ip     inet,
	revoked_at       timestamptz,
	wrapped_mail_key bytea  -- password mode: mail private key wrapped under this password
);
COMMENT ON TABLE mailfort.app_passwords IS 'per-device passwords, stored only as a keyed hash';
CREATE UNIQUE INDEX app_passwords_hash ON mailfort.app_passwords (hash);
CREATE UNIQUE INDEX app_passwords_label ON mailfort.app_passwords (account_id, label)
	WHERE revoked_at IS NULL;

CREATE TABLE mailfort.recovery_codes (
	id         bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id bigint NOT NULL REFERENCES mailfort.accounts ON DELETE CASCADE,
	hash       bytea NOT NULL CHECK (octet_length(hash) = 32), -- keyed hash, hash.key
	created_at timestamptz NOT NULL DEFAULT now(),
	used_at    timestamptz
);
COMMENT ON TABLE mailfort.recovery_codes IS 'one-time codes replacing a lost authenticator';
CREATE UNIQUE INDEX recovery_codes_hash ON mailfort.recovery_codes (hash);
CREATE INDEX recovery_codes_account ON mailfort.recovery_codes (account_id);

CREATE TABLE mailfort.mail_keys (
	id              bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
	account_id      bigint NOT NULL REFERENCES mailfort.accounts ON DELETE RESTRICT,
	public_key      bytea NOT NULL CHECK (octet_length(public_key) = 32), -- X25519
	wrapped_private bytea NOT NULL,
	mode            text NOT NULL CHECK (mode IN ('server', 'password')),
	escrow_wrap     bytea,  -- private key sealed to the offline recovery key, if any
	created_at      timestamptz NOT NULL DEFAULT now(),
	retired_at      timestamptz,  -- no new mail is sealed to a retired key
	UNIQUE (public_key)
);
COMMENT ON TABLE mailfort.mail_keys IS 'per-account X25519 key pairs; private part always wrapped';
-- One current key per account; retired keys stay to read older mail.
CREATE UNIQUE INDEX mail_keys_current ON mailfort.mail_keys (account_id) WHERE retired_at IS NULL;

-- mailfort_crypt may create keys only in server mode (first delivery to a
-- new account); password-mode keys are made by an administrator.
ALTER TABLE mailfort.mail_keys ENABLE ROW LEVEL SECURITY;
CREATE POLICY crypt_read ON mailfort.mail_keys FOR SELECT TO mailfort_crypt USING (true);
CREATE POLICY crypt_insert ON mailfort.mail_keys FOR INSERT TO mailfort_crypt
	WITH CHECK (mode = 'server' AND escrow_wrap IS NULL AND retired_at IS NULL);
CREATE POLICY admin_all ON mailfort.mail_keys FOR ALL TO mailfort_admin USING (true) WITH CHECK (true);

-- Grants.  mailfort_pam changes only the state columns it owns.
GRANT SELECT ON mailfort.accounts TO mailfort_pam, mailfort_admin;
GRANT UPDATE (totp_state, totp_last_step, totp_enrolled_at, failed_count, last_failure_at,
	      locked_until, lock_count, last_login_at) ON mailfort.accounts TO mailfort_pam;
GRANT SELECT ON mailfort.app_passwords TO mailfort_pam;
GRANT UPDATE (last_used_at, last_used_ip) ON mailfort.app_passwords TO mailfort_pam;
GRANT SELECT ON mailfort.recovery_codes TO mailfort_pam;
GRANT UPDATE (used_at) ON mailfort.recovery_codes TO mailfort_pam;

GRANT SELECT (id, username) ON mailfort.accounts TO mailfort_crypt;
GRANT SELECT, INSERT ON mailfort.mail_keys TO mailfort_crypt;

GRANT INSERT, UPDATE, DELETE ON mailfort.accounts, mailfort.app_passwords,
	mailfort.recovery_codes TO mailfort_admin;
GRANT SELECT, INSERT, UPDATE ON mailfort.mail_keys TO mailfort_admin;
GRANT SELECT ON mailfort.app_passwords, mailfort.recovery_codes TO mailfort_admin;
