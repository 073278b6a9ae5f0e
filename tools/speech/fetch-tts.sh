#!/usr/bin/env bash
# Debian's espeak-ng and flite, unpacked under .tts/root (no root, no install),
# plus a stand-in libpcaudio (tools/speech/pcaudio-stub.c) so espeak-ng runs
# without PulseAudio. The .deb files stay in .tts/debs so the GPU machine can
# unpack the same ones: `bash tools/speech/fetch-tts.sh --unpack-only` there.
# Licences: espeak-ng GPL-3+, flite BSD-like (see each package's copyright).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tts="$root/.tts"
mkdir -p "$tts/debs"
if [ "${1:-}" != "--unpack-only" ]; then
  (cd "$tts/debs" && apt-get download espeak-ng libespeak-ng1 espeak-ng-data libsonic0 flite libflite1 \
    libasound2 libasound2-data >/dev/null)
  gcc -shared -fPIC -O2 -o "$tts/debs/libpcaudio.so.0" "$root/tools/speech/pcaudio-stub.c"
fi
rm -rf "$tts/root"
for deb in "$tts"/debs/*.deb; do dpkg -x "$deb" "$tts/root"; done
cp "$tts/debs/libpcaudio.so.0" "$tts/root/usr/lib/x86_64-linux-gnu/"
LD_LIBRARY_PATH="$tts/root/usr/lib/x86_64-linux-gnu" "$tts/root/usr/bin/espeak-ng" \
  --path="$tts/root/usr/lib/x86_64-linux-gnu/espeak-ng-data" --stdout "ok" >/dev/null
echo "espeak-ng and flite ready under $tts/root"
