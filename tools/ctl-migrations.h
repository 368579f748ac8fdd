/*
 * ctl-migrations.h - the SQL migrations compiled into mailfortctl.
 *
 * ctl-migrations.c is generated at build time by embed-sql.sh from
 * sql/migrations/[0-9]*.sql: one entry per file, sorted by name (C locale),
 * each holding the file's exact bytes (NUL-terminated; len excludes the NUL).
 * Compiling them in means an installed mailfortctl can only ever apply the
 * SQL it was built with.
 */
#ifndef MF_CTL_MIGRATIONS_H
#define MF_CTL_MIGRATIONS_H

#include <stddef.h>

struct ctl_migration {
	const char *name; /* file name, e.g. "0001_roles_schemas.sql" */
	const char *sql;  /* file contents */
	size_t len;
};

extern const struct ctl_migration ctl_migrations[];
extern const size_t ctl_migrations_count;

#endif
