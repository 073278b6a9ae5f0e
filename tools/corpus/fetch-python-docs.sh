#!/usr/bin/env bash
# Fetches the reStructuredText sources of the Python 3.11 documentation from
# Debian (python3.11-doc, PSF licence) and splits them by file into train,
# valid and held-out text (tools/corpus/split.py). Output: .data/corpus/.
# Needs apt (Debian's package index; run `apt-get update` once first).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
out="$root/.data/corpus"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
mkdir -p "$out"
cd "$work"
apt-get download python3.11-doc >/dev/null 2>&1 || {
  echo "apt-get download python3.11-doc failed; run apt-get update first" >&2
  exit 1
}
deb=$(ls python3.11-doc_*.deb)
dpkg -x "$deb" unpacked
src="unpacked/usr/share/doc/python3.11/html/_sources"
[ -d "$src" ] || { echo "no _sources in $deb" >&2; exit 1; }
cp unpacked/usr/share/doc/python3.11-doc/copyright "$out/COPYRIGHT.python3.11-doc" 2>/dev/null ||
  cp unpacked/usr/share/doc/python3.11/copyright "$out/COPYRIGHT.python3.11-doc"
echo "$deb" >"$out/SOURCE"
python3 "$root/tools/corpus/split.py" "$src" "$out"
