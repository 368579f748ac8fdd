/*
 * crypt-keys.c - an account's mail key pairs, for the mailfort_crypt plugin.
 *
 * Keys live in PostgreSQL (mailfort.mail_keys, see sql/migrations/0002 and
 * 0200): the X25519 public key in the clear, the private key wrapped as
 * mf-crypto.h describes (mf_account_wrap_server under master.key, or
 * mf_account_wrap_password under the user's password, Argon2id) and, for
 * password mode, one more wrap per app password
 * (mailfort.app_passwords.wrapped_mail_key, a password wrap under the
 * normal form of that app password: no dashes or spaces, lower case), found
 * through its keyed hash (mf_apppass_hash, hash.key), as pam_mailfort
 * finds it.
 *
 * Database access uses libmailfort's mf-db (libpq, blocking) rather than
 * Dovecot's asynchronous lib-sql: the callers (save_begin, istream_opened)
 * are synchronous and cannot proceed without the key anyway, there is at
 * most one short query per mail_user (the result is cached for the
 * session), the connection is made only when a key is first needed (an
 * IMAP session that reads no encrypted mail never connects), and mf-db
 * bounds every wait with connect and statement timeouts, so a dead database
 * turns into a temporary failure, not a hang.
 *
 * Secrets: the master key, unwrapped private keys and the login password
 * are held in memory wiped with sodium_memzero on deinit or right after
 * use; nothing secret goes into an error message.
 */
#include "lib.h"
#include "array.h"
#include "hash.h"
#include "ioloop.h"
#include "hex-binary.h"
#include "mf-config.h"
#include "mf-crypto.h"
#include "mf-db.h"
#include "mf-totp.h"
#include "mailfort-crypt-plugin.h"

#include <stdlib.h>

struct mf_crypt_keypair {
	unsigned char pk[MF_ACCOUNT_PK_MAX];
	size_t pk_len; /* 32 X25519, 65 P-256 */
	unsigned char id[MF_MAILCRYPT_KEY_ID_SIZE];
	unsigned char sk[crypto_box_SECRETKEYBYTES];
	unsigned char *wrapped;
	size_t wrapped_len;
	enum mf_crypt_mode mode;
	bool current;
	bool sk_valid;
	bool unwrap_failed; /* password mode: this session's password does not unwrap it */
};

/* Public keys by account, for delivery: an lmtp process delivers many
   messages to the same accounts, and a public key is no secret.  An entry
   is trusted for MF_CRYPT_PK_CACHE_SECS; after a key rotation, mail may be
   sealed to the retired key for that long, which stays readable.  Accounts
   without a key are not cached. */
#define MF_CRYPT_PK_CACHE_SECS 60
#define MF_CRYPT_PK_CACHE_MAX  10000

struct mf_crypt_pk_entry {
	unsigned char pk[MF_ACCOUNT_PK_MAX];
	size_t pk_len;
	time_t expires;
};

struct mf_crypt_pk_cache {
	HASH_TABLE(char *, struct mf_crypt_pk_entry *) table;
};

struct mf_crypt_keys {
	pool_t pool;
	struct mf_crypt_pk_cache *pk_cache;
	const struct mf_config *cfg;
	const char *account;
	char *password; /* password mode: the login string, wiped on deinit */
	enum mf_crypt_mode mode;
	enum mf_profile profile; /* [crypto] profile: the kind of new key pairs */

	struct mf_db **db; /* the process's connection, shared by its users */
	bool loaded;
	bool account_known;
	bool reloaded;   /* the list was loaded again for an unknown key id */
	int totp_digits; /* 0 when the account has no enrolled TOTP */
	ARRAY(struct mf_crypt_keypair) pairs;
};

static const char *const sql_load_keys =
    "SELECT k.public_key, k.wrapped_private, k.mode, k.retired_at IS NULL, "
    "a.totp_state = 'enrolled', a.totp_digits "
    "FROM mailfort.accounts a LEFT JOIN mailfort.mail_keys k ON k.account_id = a.id "
    "WHERE a.username = $1 ORDER BY k.retired_at IS NULL DESC, k.id DESC";

static const char *const sql_add_account =
    "INSERT INTO mailfort.accounts (username) VALUES ($1) ON CONFLICT (username) DO NOTHING";

static const char *const sql_add_key =
    "INSERT INTO mailfort.mail_keys (account_id, public_key, wrapped_private, mode, escrow_wrap) "
    "SELECT id, $2, $3, 'server', $4 FROM mailfort.accounts WHERE username = $1 "
    "ON CONFLICT (account_id) WHERE retired_at IS NULL DO NOTHING";

static const char *const sql_app_wrap =
    "SELECT p.wrapped_mail_key FROM mailfort.app_passwords p "
    "JOIN mailfort.accounts a ON a.id = p.account_id "
    "WHERE a.username = $1 AND p.hash IN ($2, $3) AND p.revoked_at IS NULL "
    "AND p.wrapped_mail_key IS NOT NULL";

struct mf_crypt_pk_cache *mf_crypt_pk_cache_init(void)
{
	struct mf_crypt_pk_cache *cache = i_new(struct mf_crypt_pk_cache, 1);

	hash_table_create(&cache->table, default_pool, 0, str_hash, strcmp);
	return cache;
}

static void mf_crypt_pk_cache_clear(struct mf_crypt_pk_cache *cache)
{
	struct hash_iterate_context *iter = hash_table_iterate_init(cache->table);
	struct mf_crypt_pk_entry *entry;
	char *key;

	while (hash_table_iterate(iter, cache->table, &key, &entry)) {
		i_free(key);
		i_free(entry);
	}
	hash_table_iterate_deinit(&iter);
	hash_table_clear(cache->table, FALSE);
}

void mf_crypt_pk_cache_deinit(struct mf_crypt_pk_cache **_cache)
{
	struct mf_crypt_pk_cache *cache = *_cache;

	*_cache = NULL;
	mf_crypt_pk_cache_clear(cache);
	hash_table_destroy(&cache->table);
	i_free(cache);
}

static void mf_crypt_pk_cache_put(struct mf_crypt_pk_cache *cache, const char *account,
                                  const unsigned char *pk, size_t pk_len)
{
	struct mf_crypt_pk_entry *entry = hash_table_lookup(cache->table, account);

	if (entry == NULL) {
		if (hash_table_count(cache->table) >= MF_CRYPT_PK_CACHE_MAX)
			mf_crypt_pk_cache_clear(cache);
		entry = i_new(struct mf_crypt_pk_entry, 1);
		hash_table_insert(cache->table, i_strdup(account), entry);
	}
	memcpy(entry->pk, pk, pk_len);
	entry->pk_len = pk_len;
	entry->expires = ioloop_time + MF_CRYPT_PK_CACHE_SECS;
}

struct mf_crypt_keys *mf_crypt_keys_init(const struct mf_config *cfg, struct mf_db **db,
                                         struct mf_crypt_pk_cache *pk_cache, const char *account,
                                         const char *password)
{
	pool_t pool = pool_alloconly_create("mailfort crypt keys", 1024);
	struct mf_crypt_keys *keys = p_new(pool, struct mf_crypt_keys, 1);
	const char *mode = mf_config_str(cfg, "crypt", "mode");

	keys->pool = pool;
	keys->cfg = cfg;
	keys->db = db;
	keys->pk_cache = pk_cache;
	keys->account = p_strdup(pool, account);
	keys->mode = mode != NULL && strcmp(mode, "password") == 0 ? MF_CRYPT_MODE_PASSWORD
	                                                           : MF_CRYPT_MODE_SERVER;
	if (mf_profile_parse(mf_config_str(cfg, "crypto", "profile"), &keys->profile) < 0)
		keys->profile = MF_PROFILE_DEFAULT; /* the config parser allows no other */
	if (password != NULL)
		keys->password = i_strdup(password);
	p_array_init(&keys->pairs, pool, 2);
	return keys;
}

static void mf_crypt_keys_clear(struct mf_crypt_keys *keys)
{
	struct mf_crypt_keypair *pair;

	array_foreach_modifiable(&keys->pairs, pair)
	{
		sodium_memzero(pair->sk, sizeof(pair->sk));
		free(pair->wrapped);
	}
	array_clear(&keys->pairs);
	keys->loaded = FALSE;
}

void mf_crypt_keys_deinit(struct mf_crypt_keys **_keys)
{
	struct mf_crypt_keys *keys = *_keys;

	if (keys == NULL)
		return;
	*_keys = NULL;
	mf_crypt_keys_clear(keys);
	if (keys->password != NULL) {
		sodium_memzero(keys->password, strlen(keys->password));
		i_free(keys->password);
	}
	pool_unref(&keys->pool);
}

enum mf_crypt_mode mf_crypt_keys_mode(const struct mf_crypt_keys *keys)
{
	return keys->mode;
}

static int mf_crypt_db(struct mf_crypt_keys *keys, const char **error_r)
{
	struct mf_db_settings set;
	struct mf_error err;

	if (*keys->db != NULL)
		return 0;
	mf_db_settings_from_config(&set, keys->cfg, "mailfort_crypt");
	if (mf_config_is_set(keys->cfg, "crypt", "conninfo"))
		set.conninfo = mf_config_str(keys->cfg, "crypt", "conninfo");
	*keys->db = mf_db_open(&set, &err);
	if (*keys->db == NULL) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	return 0;
}

static int mf_crypt_keys_load(struct mf_crypt_keys *keys, const char **error_r)
{
	const char *params[1] = {keys->account};
	struct mf_error err;
	PGresult *res;
	int rows;

	if (keys->loaded)
		return 0;
	if (mf_crypt_db(keys, error_r) < 0)
		return -1;
	res = mf_db_exec(*keys->db, sql_load_keys, 1, params, &err);
	if (res == NULL) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	rows = PQntuples(res);
	keys->account_known = rows > 0;
	keys->totp_digits = 0;
	for (int i = 0; i < rows; i++) {
		struct mf_crypt_keypair pair;
		unsigned char *pk;
		size_t pk_len;

		if (i == 0 && strcmp(PQgetvalue(res, 0, 4), "t") == 0)
			keys->totp_digits = atoi(PQgetvalue(res, 0, 5));
		if (PQgetisnull(res, i, 0))
			continue; /* account without keys */
		i_zero(&pair);
		pk = mf_db_unescape_bytea(PQgetvalue(res, i, 0), &pk_len);
		pair.wrapped = mf_db_unescape_bytea(PQgetvalue(res, i, 1), &pair.wrapped_len);
		if (pk == NULL || mf_key_alg_of(pk_len) == 0 || pair.wrapped == NULL ||
		    mf_account_key_id_any(pair.id, pk, pk_len, &err) < 0) {
			free(pk);
			free(pair.wrapped);
			PQclear(res);
			mf_crypt_keys_clear(keys);
			*error_r = "mailfort.mail_keys holds a malformed key";
			return -1;
		}
		memcpy(pair.pk, pk, pk_len);
		pair.pk_len = pk_len;
		free(pk);
		pair.mode = strcmp(PQgetvalue(res, i, 2), "password") == 0 ? MF_CRYPT_MODE_PASSWORD
		                                                           : MF_CRYPT_MODE_SERVER;
		pair.current = strcmp(PQgetvalue(res, i, 3), "t") == 0;
		array_push_back(&keys->pairs, &pair);
	}
	PQclear(res);
	keys->loaded = TRUE;
	return 0;
}

static int mf_crypt_master_key(const struct mf_crypt_keys *keys,
                               unsigned char master[crypto_secretbox_KEYBYTES],
                               const char **error_r)
{
	const char *dir = mf_config_str(keys->cfg, "keys", "dir");
	struct mf_error err;

	if (mf_key_load(t_strconcat(dir, "/master.key", NULL), MF_KEY_SECRET, master,
	                crypto_secretbox_KEYBYTES, &err) < 0) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	return 0;
}

/* Make a server-mode key pair for the account and store it.  A concurrent
   creator may win the race: the caller reloads and uses whatever is there. */
static int mf_crypt_keys_create(struct mf_crypt_keys *keys, const char **error_r)
{
	const enum mf_key_alg alg = mf_profile_key_alg(keys->profile);
	const size_t pk_len = mf_key_alg_pk_bytes(alg);
	unsigned char pk[MF_ACCOUNT_PK_MAX], sk[crypto_box_SECRETKEYBYTES];
	unsigned char master[crypto_secretbox_KEYBYTES], wrapped[MF_ACCOUNT_WRAP_MAX];
	unsigned char escrow[MF_ACCOUNT_ESCROW_MAX];
	const char *escrow_path = mf_config_str(keys->cfg, "crypt", "escrow_public_key");
	char *pk_hex = NULL, *wrapped_hex = NULL, *escrow_hex = NULL;
	size_t wrapped_len = 0, escrow_len = 0;
	const char *params[4];
	struct mf_error err;
	int ret = -1;

	if (mf_crypt_master_key(keys, master, error_r) < 0)
		return -1;
	ret = mf_account_keypair_alg(alg, pk, sk, &err);
	if (ret == 0)
		ret =
		    mf_account_wrap_server_any(wrapped, &wrapped_len, pk, pk_len, sk, master, &err);
	sodium_memzero(master, sizeof(master));
	if (ret == 0 && escrow_path != NULL)
		ret = mf_account_escrow_any(escrow, &escrow_len, sk, pk_len, escrow_path, &err);
	sodium_memzero(sk, sizeof(sk));
	if (ret < 0) {
		*error_r = t_strdup(err.msg);
		return -1;
	}
	ret = -1;

	pk_hex = mf_db_escape_bytea(pk, pk_len);
	wrapped_hex = mf_db_escape_bytea(wrapped, wrapped_len);
	if (escrow_path != NULL)
		escrow_hex = mf_db_escape_bytea(escrow, escrow_len);
	params[0] = keys->account;
	params[1] = pk_hex;
	params[2] = wrapped_hex;
	params[3] = escrow_hex;
	if (pk_hex == NULL || wrapped_hex == NULL || (escrow_path != NULL && escrow_hex == NULL))
		*error_r = "out of memory";
	else if (mf_db_command(*keys->db, sql_add_account, 1, params, &err) < 0 ||
	         mf_db_command(*keys->db, sql_add_key, 4, params, &err) < 0)
		*error_r = t_strdup(err.msg);
	else
		ret = 0;
	free(pk_hex);
	free(wrapped_hex);
	free(escrow_hex);
	return ret;
}

static const struct mf_crypt_keypair *mf_crypt_keys_current(const struct mf_crypt_keys *keys)
{
	const struct mf_crypt_keypair *pair;

	array_foreach(&keys->pairs, pair)
	{
		if (pair->current)
			return pair;
	}
	return NULL;
}

int mf_crypt_keys_get_public(struct mf_crypt_keys *keys, unsigned char pk_r[MF_ACCOUNT_PK_MAX],
                             size_t *pk_len_r, const char **error_r)
{
	const struct mf_crypt_keypair *pair;
	struct mf_crypt_pk_entry *entry;

	entry = keys->loaded || keys->pk_cache == NULL
	            ? NULL
	            : hash_table_lookup(keys->pk_cache->table, keys->account);
	/* under kcmvp a cached X25519 key may have been rotated by crypt
	   migrate --profile kcmvp a moment ago: look again */
	if (entry != NULL && entry->expires > ioloop_time &&
	    !(keys->profile == MF_PROFILE_KCMVP &&
	      mf_key_alg_of(entry->pk_len) != MF_KEY_ALG_P256)) {
		memcpy(pk_r, entry->pk, entry->pk_len);
		*pk_len_r = entry->pk_len;
		return 1;
	}
	if (mf_crypt_keys_load(keys, error_r) < 0)
		return -1;
	pair = mf_crypt_keys_current(keys);
	if (pair == NULL) {
		if (keys->mode != MF_CRYPT_MODE_SERVER) {
			*error_r = "account has no mail key yet (password mode: an "
			           "administrator must create it with mailfortctl crypt init)";
			return 0;
		}
		if (!mf_config_bool(keys->cfg, "crypt", "create_keys")) {
			*error_r = "account has no mail key and [crypt] create_keys is off";
			return 0;
		}
		if (mf_crypt_keys_create(keys, error_r) < 0)
			return -1;
		mf_crypt_keys_clear(keys);
		if (mf_crypt_keys_load(keys, error_r) < 0)
			return -1;
		pair = mf_crypt_keys_current(keys);
		if (pair == NULL) {
			*error_r = "key pair was created but cannot be read back";
			return -1;
		}
		i_info("mailfort_crypt: created a server-mode mail key pair for %s", keys->account);
	}
	if (mf_key_alg_of(pair->pk_len) != mf_profile_key_alg(keys->profile)) {
		i_warning("mailfort_crypt: %s's mail key is %s, not the %s profile's %s: new mail "
		          "is sealed to it until mailfortctl crypt migrate --profile %s",
		          keys->account, mf_key_alg_name(mf_key_alg_of(pair->pk_len)),
		          mf_profile_name(keys->profile),
		          mf_key_alg_name(mf_profile_key_alg(keys->profile)),
		          mf_profile_name(keys->profile));
	}
	memcpy(pk_r, pair->pk, pair->pk_len);
	*pk_len_r = pair->pk_len;
	if (keys->pk_cache != NULL)
		mf_crypt_pk_cache_put(keys->pk_cache, keys->account, pair->pk, pair->pk_len);
	return 1;
}

/* The app-password wrap of the login password, if it is one. */
static int mf_crypt_app_wrap(struct mf_crypt_keys *keys, unsigned char **blob_r, size_t *len_r,
                             const char **error_r)
{
	int ret;
	unsigned char hash_key[crypto_generichash_KEYBYTES];
	unsigned char hashes[MF_CODE_HASH_KINDS][MF_KEYED_HASH_BYTES];
	const char *dir = mf_config_str(keys->cfg, "keys", "dir");
	const char *params[3];
	struct mf_error err;
	PGresult *res;
	char *hex, *hex1;

	*blob_r = NULL;
	if (mf_key_load(t_strconcat(dir, "/hash.key", NULL), MF_KEY_SECRET, hash_key,
	                sizeof(hash_key), &err) < 0) {
		/* no hash key here: app passwords cannot carry a wrap */
		return 0;
	}
	/* either kind of hash: app passwords made under either profile */
	ret = mf_apppass_hashes(hashes, keys->password, strlen(keys->password), hash_key);
	sodium_memzero(hash_key, sizeof(hash_key));
	if (ret < 0) {
		/* not shaped like an app password */
		return 0;
	}
	hex = mf_db_escape_bytea(hashes[0], MF_KEYED_HASH_BYTES);
	hex1 = mf_db_escape_bytea(hashes[1], MF_KEYED_HASH_BYTES);
	params[0] = keys->account;
	params[1] = hex;
	params[2] = hex1;
	res = hex == NULL || hex1 == NULL ? NULL
	                                  : mf_db_exec(*keys->db, sql_app_wrap, 3, params, &err);
	if (res == NULL) {
		*error_r = hex == NULL || hex1 == NULL ? "out of memory" : t_strdup(err.msg);
		free(hex);
		free(hex1);
		return -1;
	}
	free(hex);
	free(hex1);
	if (PQntuples(res) > 0)
		*blob_r = mf_db_unescape_bytea(PQgetvalue(res, 0, 0), len_r);
	PQclear(res);
	return 0;
}

/* Length of the second factor at the end of a login string, split as
   pam_mailfort (append mode) splits it before the password module sees the
   rest (mf_login_split).  0 when the account has no TOTP, [crypt]
   totp_suffix is off, there is none, or the string is only a code. */
static size_t mf_crypt_factor_len(const struct mf_crypt_keys *keys, const char *pw, size_t len)
{
	struct mf_login_split split;

	if (keys->totp_digits == 0 || !mf_config_bool(keys->cfg, "crypt", "totp_suffix"))
		return 0;
	mf_login_split(&split, pw, len, (unsigned)keys->totp_digits);
	return split.password_len > 0 ? split.code_len : 0;
}

/* Password mode: try the login string without its second factor (TOTP or
   recovery code), the whole string, then an app-password wrap.  Each try
   costs an Argon2id run (64 MiB), so a session without a password tries
   nothing (delivery and doveadm: the password reaches the plugin only as a
   passdb field, see examples/dovecot/conf.d/90-mailfort-crypt.conf), and a
   password that failed once is not tried again for every message the
   session reads. */
static int mf_crypt_unwrap_password(struct mf_crypt_keys *keys, struct mf_crypt_keypair *pair,
                                    const char **error_r)
{
	const char *pw = keys->password;
	size_t len, factor;
	struct mf_error err;
	unsigned char *blob;
	size_t blob_len;
	bool ok = FALSE;

	if (pw == NULL || *pw == '\0') {
		*error_r = "password mode, and this session has no login password (userdb field "
		           "mailfort_crypt_password, set at login; delivery and doveadm never "
		           "have it)";
		return -1;
	}
	if (pair->unwrap_failed) {
		*error_r = "mail key does not unwrap with the login password "
		           "(password changed without mailfortctl crypt rewrap?)";
		return -1;
	}
	len = strlen(pw);
	factor = mf_crypt_factor_len(keys, pw, len);
	if (factor > 0) {
		ok = mf_account_unwrap_password_any(pair->sk, pair->wrapped, pair->wrapped_len,
		                                    pair->pk, pair->pk_len, pw, len - factor,
		                                    &err) == 0;
	}
	if (!ok)
		ok = mf_account_unwrap_password_any(pair->sk, pair->wrapped, pair->wrapped_len,
		                                    pair->pk, pair->pk_len, pw, len, &err) == 0;
	if (!ok) {
		if (mf_crypt_app_wrap(keys, &blob, &blob_len, error_r) < 0)
			return -1;
		if (blob != NULL) {
			/* app passwords wrap in their normal form (as
			   mailfortctl crypt app-wrap makes it) */
			char norm[MF_APPPASS_CHARS + 1];

			if (mf_apppass_normalise(norm, pw, strlen(pw)) == 0)
				ok = mf_account_unwrap_password_any(pair->sk, blob, blob_len,
				                                    pair->pk, pair->pk_len, norm,
				                                    MF_APPPASS_CHARS, &err) == 0;
			sodium_memzero(norm, sizeof(norm));
			free(blob);
		}
	}
	if (!ok) {
		pair->unwrap_failed = TRUE;
		*error_r = "mail key does not unwrap with the login password "
		           "(password changed without mailfortctl crypt rewrap?)";
		return -1;
	}
	return 0;
}

static int mf_crypt_unwrap(struct mf_crypt_keys *keys, struct mf_crypt_keypair *pair,
                           const char **error_r)
{
	unsigned char master[crypto_secretbox_KEYBYTES];
	struct mf_error err;
	int ret;

	if (pair->mode == MF_CRYPT_MODE_PASSWORD) {
		if (mf_crypt_unwrap_password(keys, pair, error_r) < 0)
			return -1;
	} else {
		if (mf_crypt_master_key(keys, master, error_r) < 0)
			return -1;
		ret = mf_account_unwrap_server_any(pair->sk, pair->wrapped, pair->wrapped_len,
		                                   pair->pk, pair->pk_len, master, &err);
		sodium_memzero(master, sizeof(master));
		if (ret < 0) {
			*error_r = t_strdup_printf("mail key does not unwrap with master.key: %s",
			                           err.msg);
			return -1;
		}
	}
	pair->sk_valid = TRUE;
	return 0;
}

int mf_crypt_keys_get_pair(struct mf_crypt_keys *keys,
                           const unsigned char key_id[MF_MAILCRYPT_KEY_ID_SIZE],
                           const unsigned char **pk_r, size_t *pk_len_r, const unsigned char **sk_r,
                           const char **error_r)
{
	struct mf_crypt_keypair *pair;

	for (unsigned int attempt = 0; attempt < 2; attempt++) {
		if (attempt > 0) {
			/* a key made after this session loaded the list
			   (first delivery to a new account): look again, once
			   per session, so that messages sealed to a key that
			   is gone do not wipe the unlocked keys (and cost a
			   query and an Argon2id run) on every read */
			if (keys->reloaded)
				break;
			keys->reloaded = TRUE;
			mf_crypt_keys_clear(keys);
		}
		if (mf_crypt_keys_load(keys, error_r) < 0)
			return -1;
		array_foreach_modifiable(&keys->pairs, pair)
		{
			if (memcmp(pair->id, key_id, MF_MAILCRYPT_KEY_ID_SIZE) != 0)
				continue;
			if (!pair->sk_valid && mf_crypt_unwrap(keys, pair, error_r) < 0)
				return -1;
			*pk_r = pair->pk;
			*pk_len_r = pair->pk_len;
			*sk_r = pair->sk;
			return 0;
		}
	}
	*error_r = t_strdup_printf("message is sealed to key %s, which is not one of %s's keys",
	                           binary_to_hex(key_id, MF_MAILCRYPT_KEY_ID_SIZE), keys->account);
	return -1;
}
