#!/bin/sh
# build-install.sh - "make install" puts every piece where its host looks
# for it, and "make distcheck" (release tarball builds, checks, installs and
# uninstalls cleanly out of tree) passes.
set -u
n=0 failed=0
ok() { # ok COND-STATUS DESCRIPTION
	n=$((n + 1))
	if [ "$1" = 0 ]; then echo "ok $n - $2"; else echo "not ok $n - $2"; failed=1; fi
}

dest="$MF_TEST_TMP/dest"
rm -rf "$dest"
make -C "$MF_BUILD" -s install DESTDIR="$dest" >"$MF_TEST_TMP/install.log" 2>&1
ok $? "make install succeeds" || tail -n 20 "$MF_TEST_TMP/install.log"

pamdir=$(sed -n 's/^pamdir = //p' "$MF_BUILD/pam-module/Makefile")
moddir=$(sed -n 's/^mf_dovecot_moduledir = //p' "$MF_BUILD/Makefile")
[ -n "$pamdir" ] && [ -f "$dest$pamdir/pam_mailfort.so" ]
ok $? "pam_mailfort.so is installed in the PAM module directory ($pamdir)"
[ ! -e "$dest$pamdir/pam_mailfort.la" ]
ok $? "no libtool archive is left next to the PAM module"
for p in lib10_mailfort_crypt_plugin.so lib20_mailfort_audit_plugin.so lib21_imap_mailfort_audit_plugin.so; do
	[ -f "$dest$moddir/$p" ]
	ok $? "$p is installed in Dovecot's module directory ($moddir)"
done
for b in mailfortctl mailfort-milter mailfort-auditd mailfort-spoold; do
	[ -x "$dest/usr/sbin/$b" ]
	ok $? "$b is installed in /usr/sbin"
done
[ -f "$dest/etc/mailfort/mailfort.conf" ]
ok $? "an example /etc/mailfort/mailfort.conf is installed"
"$dest/usr/sbin/mailfortctl" --config "$dest/etc/mailfort/mailfort.conf" --help >/dev/null 2>&1
ok $? "the installed mailfortctl runs"
nm -D --defined-only "$dest$pamdir/pam_mailfort.so" | awk '{print $3}' | grep -v '^pam_sm_' | grep -q . 
[ $? != 0 ]
ok $? "pam_mailfort.so exports only the pam_sm_* entry points"

(cd "$MF_BUILD" && make -s distcheck >"$MF_TEST_TMP/distcheck.log" 2>&1)
rc=$?
ok $rc "make distcheck passes"
[ $rc = 0 ] || tail -n 30 "$MF_TEST_TMP/distcheck.log"
rm -rf "$dest" "$MF_BUILD"/mailfort-*.tar.gz
echo "1..$n"
exit $failed
