#!/bin/sh
# Debian packages the callbot and its tests need; installs only what is missing.
set -eu
PACKAGES="espeak-ng ffmpeg sox chromium asterisk-core-sounds-fr asterisk-core-sounds-fr-wav asterisk-core-sounds-fr-g722 libsndfile1 baresip kamailio"
missing=""
for p in $PACKAGES; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing="$missing $p"
done
[ -z "$missing" ] && exit 0
SUDO=""; [ "$(id -u)" -ne 0 ] && SUDO="sudo"
echo "installing Debian packages:$missing"
$SUDO apt-get update -q
DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -q --no-install-recommends $missing
