/*
 * fuzz-config.c - libFuzzer target for the mailfort.conf parser.
 *
 * The input is parsed with mf_config_load_buffer.  A rejected input must
 * come with a message that starts with the name and a line number; an
 * accepted one is read back through the getter of every key in the schema,
 * and every number must lie within its key's limits.  Any crash, sanitizer
 * report, leak or broken invariant is a bug.
 *
 * config.c is compiled into this target (rather than taken from the
 * uninstrumented libmailfort archive) so that the fuzzer sees its coverage;
 * the schema and the helpers still come from the library.
 */
#include "config.c"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void check_loaded(const struct mf_config *cfg)
{
	for (size_t s = 0; mf_config_schema[s] != NULL; s++) {
		const struct mf_config_section *sec = mf_config_schema[s];

		for (size_t k = 0; sec->keys[k].name != NULL; k++) {
			const struct mf_config_key *key = &sec->keys[k];
			const char *str;
			int64_t n;

			switch (key->type) {
			case MF_CONFIG_STRING:
				str = mf_config_str(cfg, sec->name, key->name);
				if (mf_config_is_set(cfg, sec->name, key->name) && str == NULL)
					abort();
				break;
			case MF_CONFIG_PATH:
				str = mf_config_str(cfg, sec->name, key->name);
				if (str != NULL && str[0] != '/')
					abort();
				break;
			case MF_CONFIG_ENUM: {
				bool found = false;

				str = mf_config_str(cfg, sec->name, key->name);
				for (size_t i = 0; str != NULL && key->choices[i] != NULL; i++)
					found |= strcmp(str, key->choices[i]) == 0;
				if (str != NULL && !found)
					abort();
				break;
			}
			case MF_CONFIG_BOOL:
				(void)mf_config_bool(cfg, sec->name, key->name);
				break;
			case MF_CONFIG_INT:
			case MF_CONFIG_DURATION:
			case MF_CONFIG_SIZE:
				n = mf_config_int(cfg, sec->name, key->name);
				if ((key->min != 0 || key->max != 0) &&
				    (key->default_value != NULL ||
				     mf_config_is_set(cfg, sec->name, key->name)) &&
				    (n < key->min || n > key->max))
					abort();
				if (key->type != MF_CONFIG_INT && n < 0)
					abort();
				break;
			}
		}
	}
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	struct mf_error err;
	struct mf_config *cfg;

	memset(&err, 0, sizeof(err));
	cfg = mf_config_load_buffer("fuzz.conf", (const char *)data, size, &err);
	if (cfg == NULL) {
		/* "fuzz.conf:N: reason", N >= 1 */
		if (strncmp(err.msg, "fuzz.conf:", 10) != 0 || err.msg[10] < '1' ||
		    err.msg[10] > '9' || strchr(err.msg, '\n') != NULL)
			abort();
		return 0;
	}
	check_loaded(cfg);
	mf_config_free(&cfg);
	return 0;
}
