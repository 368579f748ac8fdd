/*
 * filetype.c - what a file is, from its first bytes.
 *
 * An attachment's name and its declared Content-Type are chosen by the
 * sender; its first bytes are what the receiving system will act on.  This
 * recognises the formats the attachment policy cares about (executables of
 * every common platform, scripts, shortcuts, archives) and a few harmless
 * ones for the verdict record.  Unknown input is MF_FT_UNKNOWN; there are no
 * errors.
 */
#include <string.h>
#include <strings.h>
#include "scan.h"

static const char *const type_names[MF_FT_COUNT] = {
    [MF_FT_UNKNOWN] = "unknown",
    [MF_FT_WINDOWS_EXE] = "windows-executable",
    [MF_FT_ELF] = "elf-executable",
    [MF_FT_MACHO] = "macho-executable",
    [MF_FT_SCRIPT] = "shell-script",
    [MF_FT_LNK] = "windows-shortcut",
    [MF_FT_JAR] = "java-archive",
    [MF_FT_ZIP] = "zip",
    [MF_FT_RAR] = "rar",
    [MF_FT_7Z] = "7z",
    [MF_FT_GZIP] = "gzip",
    [MF_FT_PDF] = "pdf",
    [MF_FT_OLE] = "ole-document",
    [MF_FT_PNG] = "png",
    [MF_FT_JPEG] = "jpeg",
    [MF_FT_GIF] = "gif",
    [MF_FT_HTML] = "html",
    [MF_FT_TAR] = "tar",
    [MF_FT_BZIP2] = "bzip2",
    [MF_FT_XZ] = "xz",
    [MF_FT_CAB] = "cab",
    [MF_FT_ISO] = "iso-image",
};

const char *mf_filetype_name(enum mf_filetype t)
{
	if ((unsigned)t >= MF_FT_COUNT)
		return "unknown";
	return type_names[t];
}

enum mf_filetype mf_filetype_from_name(const char *name, size_t len)
{
	unsigned i;

	for (i = 0; i < MF_FT_COUNT; i++) {
		if (strlen(type_names[i]) == len && strncasecmp(type_names[i], name, len) == 0)
			return (enum mf_filetype)i;
	}
	return MF_FT_COUNT;
}

bool mf_filetype_is_archive(enum mf_filetype t)
{
	return t == MF_FT_ZIP || t == MF_FT_JAR || t == MF_FT_RAR || t == MF_FT_7Z ||
	       t == MF_FT_GZIP || t == MF_FT_TAR || t == MF_FT_BZIP2 || t == MF_FT_XZ ||
	       t == MF_FT_CAB || t == MF_FT_ISO;
}

static bool starts(const unsigned char *p, size_t len, const void *magic, size_t mlen)
{
	return len >= mlen && memcmp(p, magic, mlen) == 0;
}

enum mf_filetype mf_filetype_detect(const unsigned char *p, size_t len)
{
	static const unsigned char lnk[] = {0x4c, 0x00, 0x00, 0x00, 0x01, 0x14, 0x02, 0x00};
	static const unsigned char ole[] = {0xd0, 0xcf, 0x11, 0xe0, 0xa1, 0xb1, 0x1a, 0xe1};
	static const unsigned char sevenz[] = {'7', 'z', 0xbc, 0xaf, 0x27, 0x1c};
	static const unsigned char png[] = {0x89, 'P', 'N', 'G', '\r', '\n', 0x1a, '\n'};
	static const unsigned char xz[] = {0xfd, '7', 'z', 'X', 'Z', 0x00};
	static const unsigned char macho[][4] = {
	    {0xfe, 0xed, 0xfa, 0xce}, {0xfe, 0xed, 0xfa, 0xcf}, {0xce, 0xfa, 0xed, 0xfe},
	    {0xcf, 0xfa, 0xed, 0xfe}, {0xca, 0xfe, 0xba, 0xbe},
	};
	size_t i;

	if (len < 2)
		return MF_FT_UNKNOWN;
	if (p[0] == 'M' && p[1] == 'Z')
		return MF_FT_WINDOWS_EXE;
	if (starts(p, len,
	           "\x7f"
	           "ELF",
	           4))
		return MF_FT_ELF;
	for (i = 0; i < MF_N_ELEMENTS(macho); i++) {
		/* 0xcafebabe is also a Java class file; both are refused. */
		if (starts(p, len, macho[i], 4))
			return MF_FT_MACHO;
	}
	if (p[0] == '#' && p[1] == '!')
		return MF_FT_SCRIPT;
	if (starts(p, len, lnk, sizeof(lnk)))
		return MF_FT_LNK;
	if (starts(p, len, "PK\x03\x04", 4) || starts(p, len, "PK\x05\x06", 4) ||
	    starts(p, len, "PK\x07\x08", 4))
		return MF_FT_ZIP;
	if (starts(p, len, "Rar!\x1a\x07", 6))
		return MF_FT_RAR;
	if (starts(p, len, sevenz, sizeof(sevenz)))
		return MF_FT_7Z;
	if (p[0] == 0x1f && p[1] == 0x8b)
		return MF_FT_GZIP;
	if (len >= 4 && p[0] == 'B' && p[1] == 'Z' && p[2] == 'h' && p[3] >= '1' && p[3] <= '9')
		return MF_FT_BZIP2;
	if (starts(p, len, xz, sizeof(xz)))
		return MF_FT_XZ;
	if (starts(p, len, "MSCF\0\0\0\0", 8))
		return MF_FT_CAB;
	/* ustar magic at 257; an ISO 9660 volume descriptor at 32769 */
	if (len >= 262 && memcmp(p + 257, "ustar", 5) == 0)
		return MF_FT_TAR;
	if (len >= 32774 && memcmp(p + 32769, "CD001", 5) == 0)
		return MF_FT_ISO;
	if (starts(p, len, "%PDF-", 5))
		return MF_FT_PDF;
	if (starts(p, len, ole, sizeof(ole)))
		return MF_FT_OLE;
	if (starts(p, len, png, sizeof(png)))
		return MF_FT_PNG;
	if (len >= 3 && p[0] == 0xff && p[1] == 0xd8 && p[2] == 0xff)
		return MF_FT_JPEG;
	if (starts(p, len, "GIF87a", 6) || starts(p, len, "GIF89a", 6))
		return MF_FT_GIF;
	/* HTML: leading white space, then a tag HTML files start with. */
	for (i = 0;
	     i < len && i < 64 && (p[i] == ' ' || p[i] == '\t' || p[i] == '\r' || p[i] == '\n');
	     i++)
		;
	if (len - i >= 5 &&
	    (strncasecmp((const char *)p + i, "<html", 5) == 0 ||
	     (len - i >= 9 && strncasecmp((const char *)p + i, "<!doctype", 9) == 0)))
		return MF_FT_HTML;
	return MF_FT_UNKNOWN;
}
