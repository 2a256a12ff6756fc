#!/usr/bin/env bash
# Builds the .deb, installs it with dpkg, checks what it installed, and purges it.
# Run as root on Debian (CI does). Leaves the machine as it found it.
set -euo pipefail
cd "$(dirname "$0")/.."

command -v cargo-deb >/dev/null || cargo install cargo-deb --locked
command -v adduser >/dev/null || apt-get install -y -qq adduser
cargo deb --locked
deb=$(ls -t target/debian/m2mhub_*.deb | head -n 1)
echo "== $deb"
dpkg-deb --contents "$deb"

fail() { echo "check-deb: $*" >&2; exit 1; }
installed=$(mktemp)
dpkg -i "$deb" 2>&1 | tee "$installed"
grep -q "m2mhub passwd /etc/m2mhub/passwords" "$installed" || fail "postinst did not say how to add the first credential"
test -x /usr/bin/m2mhub || fail "no /usr/bin/m2mhub"
test -f /etc/m2mhub/config.toml || fail "no /etc/m2mhub/config.toml"
unit=$(ls /lib/systemd/system/m2mhub.service /usr/lib/systemd/system/m2mhub.service 2>/dev/null | head -n 1)
test -n "$unit" || fail "no systemd unit installed"
getent passwd m2mhub >/dev/null || fail "no m2mhub user"
test "$(stat -c %U:%a /var/lib/m2mhub)" = "m2mhub:750" || fail "/var/lib/m2mhub is $(stat -c %U:%a /var/lib/m2mhub)"
test "$(stat -c %U:%G:%a /etc/m2mhub/config.toml)" = "root:m2mhub:640" || fail "config.toml is $(stat -c %U:%G:%a /etc/m2mhub/config.toml)"
dpkg-query -W -f='${Conffiles}\n' m2mhub | grep -q /etc/m2mhub/config.toml || fail "config.toml is not a conffile"
m2mhub check-config --config /etc/m2mhub/config.toml | grep -q '/var/lib/m2mhub/m2mhub.db' || fail "packaged config does not point at /var/lib/m2mhub"
# A fresh install takes anonymous clients from this machine only.
m2mhub check-config --config /etc/m2mhub/config.toml | grep -q '^anonymous = "loopback"' || fail "the packaged config lets anonymous clients in from the network"
if command -v systemd-analyze >/dev/null; then
    systemd-analyze verify "$unit"
fi

# The packaged service starts as its user with the packaged config (ports moved off the
# defaults, which this machine may be using) and stops cleanly on SIGTERM.
log=$(mktemp)
M2MHUB_MQTT__LISTEN=127.0.0.1:0 M2MHUB_HTTP__LISTEN=127.0.0.1:0 \
    runuser -u m2mhub -- /usr/bin/m2mhub --config /etc/m2mhub/config.toml 2>"$log" &
pid=$!
for _ in $(seq 100); do grep -q "m2mhub ready" "$log" && break; sleep 0.1; done
grep -q "m2mhub ready" "$log" || { cat "$log"; fail "the packaged service did not start"; }
test -f /var/lib/m2mhub/m2mhub.db || fail "no database under /var/lib/m2mhub"
# Signal m2mhub itself, the child of the runuser started above (by PID, not by name);
# runuser passes its exit status on.
child=$(pgrep -P "$pid" || true)
test -n "$child" || fail "no m2mhub process under runuser $pid"
kill -TERM "$child"
wait "$pid" || fail "the service did not exit 0 on SIGTERM"

# An upgrade (here: the same package again) keeps the operator's edits to the conffile.
echo "# edited by the operator" >> /etc/m2mhub/config.toml
dpkg -i --force-confold "$deb"
grep -q "edited by the operator" /etc/m2mhub/config.toml || fail "the upgrade lost the config edit"

dpkg --purge m2mhub
for gone in /usr/bin/m2mhub /etc/m2mhub/config.toml /var/lib/m2mhub "$unit"; do
    test ! -e "$gone" || fail "$gone is still there after purge"
done
! getent passwd m2mhub >/dev/null || fail "the m2mhub user is still there after purge"
echo "check-deb: the package installs, runs, upgrades and purges cleanly"
