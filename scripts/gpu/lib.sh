# Sourced by scripts/gpu/{run,pack,llama-run,llama-pack}.sh: their small helpers, once.
# `die` names the script that sourced this ($0's base name).

die() {
  echo "$(basename "$0"): $*" >&2
  exit 1
}
step() { echo "-- $*"; }
mib() { awk -v b="$1" 'BEGIN { printf "%.2f", b / 1048576 }'; }
bytes() { du -sbL "$@" | awk '{ s += $1 } END { print s + 0 }'; }

# xz -d, or Python's lzma where xz is missing (the GPU machine may lack xz).
unxz_to() {
  if command -v xz >/dev/null; then
    xz -dc "$1" >"$2.part"
  else
    python3 -c 'import lzma, shutil, sys; shutil.copyfileobj(lzma.open(sys.argv[1]), sys.stdout.buffer)' "$1" >"$2.part"
  fi
  mv "$2.part" "$2"
}

# Exports VK_DRIVER_FILES as the first NVIDIA Vulkan driver file found (a value already set wins
# when its file exists); leaves it unset when there is none.
find_vulkan_driver() {
  local icd
  for icd in "${VK_DRIVER_FILES:-}" /usr/local/nvidia/share/vulkan/icd.d/nvidia_icd.json \
    /usr/share/vulkan/icd.d/nvidia_icd.json /etc/vulkan/icd.d/nvidia_icd.json; do
    if [ -n "$icd" ] && [ -f "$icd" ]; then
      export VK_DRIVER_FILES=$icd
      return 0
    fi
  done
}
