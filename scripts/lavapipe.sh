#!/bin/sh
# A WebGPU adapter without a GPU, for running the webgpu tests on a CPU:
# Mesa's lavapipe (Vulkan on llvmpipe) from Debian 13, whose Vulkan 1.4 has
# what Dawn needs (Debian 12's Mesa 22 lacks dynamic indexing of uniform
# arrays). Debian 13's libraries need its glibc, so node runs under Debian
# 13's loader. Everything lands in .dev/lavapipe; nothing is installed.
#
#   sh scripts/lavapipe.sh                 # once: download and unpack (~120 MB)
#   .dev/lavapipe/node node_modules/vitest/vitest.mjs run --pool=threads \
#     packages/core/test/kernel-sets/webgpu.test.ts packages/models/test/webgpu.test.ts
#
# (--pool=threads: under the loader, process.execPath is the loader, which
# vitest's forked workers cannot be started with.)
set -eu
root=$(cd "$(dirname "$0")/.." && pwd)/.dev/lavapipe
mirror=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
mkdir -p "$root/debs" "$root/root"
cd "$root"
packages="mesa-vulkan-drivers libvulkan1 libc6 libstdc++6 libgcc-s1 libllvm19 libxml2 libz3-4
  libedit2 libffi8 libtinfo6 libzstd1 libelf1t64 libdrm2 libdrm-amdgpu1 libwayland-client0 libx11-xcb1
  libxcb-dri3-0 libxcb-present0 libxcb-randr0 libxcb-shm0 libxcb-sync1 libxcb-xfixes0 libxcb1 libxshmfence1
  libexpat1 zlib1g libicu76 libbsd0 libmd0 libxau6 libxdmcp6 libx11-6 liblzma5 libatomic1"
# Downloads land under a temporary name first, so an interrupted run leaves nothing that looks complete.
fetch() { curl -fsSL -o "$2.part" "$1" && mv "$2.part" "$2"; }
if [ ! -f Packages ]; then
  fetch "$mirror/dists/trixie/main/binary-amd64/Packages.xz" Packages.xz
  xz -d Packages.xz
fi
for p in $packages; do
  file=$(awk -v p="$p" '$0 == "Package: " p { f = 1 } f && /^Filename:/ { print $2; exit }' Packages)
  [ -n "$file" ] || { echo "lavapipe.sh: no package $p in trixie" >&2; exit 1; }
  [ -f "debs/$(basename "$file")" ] || fetch "$mirror/$file" "debs/$(basename "$file")"
done
for deb in debs/*.deb; do dpkg-deb -x "$deb" root; done
lib=$root/root/usr/lib/x86_64-linux-gnu
sed "s#\"library_path\": \"#\"library_path\": \"$lib/#" root/usr/share/vulkan/icd.d/lvp_icd.json > lvp_icd.json
cat > node <<WRAPPER
#!/bin/sh
export VK_DRIVER_FILES=$root/lvp_icd.json
exec $lib/ld-linux-x86-64.so.2 --library-path $lib:/usr/lib/x86_64-linux-gnu $(command -v node) "\$@"
WRAPPER
chmod +x node
echo "lavapipe ready: run node as $root/node"
