#!/bin/sh
# After the .deb/.rpm installs or upgrades: make systemd see the unit, only
# when systemd runs (not in a container or chroot). The service is neither
# enabled nor started: it needs the API key first (docs/packaging.md).
if [ -d /run/systemd/system ] && command -v systemctl >/dev/null 2>&1; then
    systemctl daemon-reload >/dev/null 2>&1 || :
fi
exit 0
