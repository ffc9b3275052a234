#!/bin/sh
# stage-image.sh BINARY DIR: the build context of Containerfile in DIR (make
# image, and tools/packaging's test). The binary gets the file capability
# cap_net_bind_service=+ep, so the nonroot user binds port 53 with the
# capability in the container's bounding set (setcap: as root).
set -eu
bin=$1 dir=$2
here=$(dirname "$0")
mkdir -p "$dir/state"
chmod 0700 "$dir/state"
cp "$bin" "$dir/coredns-cip"
setcap cap_net_bind_service=+ep "$dir/coredns-cip"
cp "$here/Containerfile" "$here/Corefile" "$dir/"
cp /etc/ssl/certs/ca-certificates.crt "$dir/"
