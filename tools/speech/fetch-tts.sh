#!/usr/bin/env bash
# Debian's espeak-ng, flite and festival (with the ked diphone and slt HTS voices), unpacked
# under .tts/root (no root, no install), GnuSpeech (npm's @echogarden/gnuspeech-wasm, an
# articulatory synthesizer compiled to WebAssembly, under .tts/root/gnuspeech, with this
# machine's node as .tts/debs/node.xz for the GPU machine, which has none), SVOX Pico (npm's
# @echogarden/svoxpico-wasm, an HMM synthesizer compiled to WebAssembly, under .tts/root/svoxpico,
# with the en-US and en-GB lingware of Debian's libttspico-data in its lang/), plus stand-ins for libpcaudio
# (tools/speech/pcaudio-stub.c, so espeak-ng runs without PulseAudio) and
# libpulse-simple (tools/speech/pulse-simple-stub.c, the same for festival's
# libestbase). The .deb files and the stubs stay in .tts/debs so the GPU machine
# can unpack the same ones: `bash tools/speech/fetch-tts.sh --unpack-only` there.
# Licences: espeak-ng GPL-3+, flite BSD-like, festival, festlex-cmu,
# festlex-poslex and festvox-kdlpc16k BSD-like (University of Edinburgh, CMU;
# see each package's copyright), festvox-us-slt-hts CMU's EST licence and BSD-3-clause
# (Nagoya and Tokyo Institutes of Technology). Never festvox-kallpc16k/-kallpc8k: kal is the
# held-out speaker (flite's kal16). GnuSpeech and its data: GPL-3+ (its output is not covered).
# SVOX Pico: Apache-2.0; its lingware Apache-2.0 by its own word but in Debian's non-free (it comes
# without the sources it was made from; redistributable, see the package's copyright).
set -euo pipefail
root="$(cd "$(dirname "$0")/../.." && pwd)"
tts="$root/.tts"
mkdir -p "$tts/debs"
if [ "${1:-}" != "--unpack-only" ]; then
  # festival needs libestools2.5 and libgomp1 beyond a bare Debian 12 (libstdc++6,
  # libtinfo6 are there; libasound2 comes for flite; libpulse0 is stubbed).
  (cd "$tts/debs" && apt-get download espeak-ng libespeak-ng1 espeak-ng-data libsonic0 flite libflite1 \
    libasound2 libasound2-data festival libestools2.5 libgomp1 festlex-cmu festlex-poslex festvox-kdlpc16k festvox-us-slt-hts >/dev/null)
  # apt-get writes an epoch's colon as %3a (festival_1%3a2.5.0-9_amd64.deb): keep names plain.
  for f in "$tts"/debs/*%3a*.deb; do [ -e "$f" ] && mv -f "$f" "${f//%3a/_}"; done
  gcc -shared -fPIC -O2 -o "$tts/debs/libpcaudio.so.0" "$root/tools/speech/pcaudio-stub.c"
  printf 'PULSE_0 { global: pa_simple_new; pa_simple_write; pa_simple_drain; pa_simple_free; local: *; };\n' >"$tts/pulse.map"
  gcc -shared -fPIC -O2 -Wl,-soname,libpulse-simple.so.0 -Wl,--version-script="$tts/pulse.map" \
    -o "$tts/debs/libpulse-simple.so.0" "$root/tools/speech/pulse-simple-stub.c"
  rm -f "$tts/pulse.map"
  (cd "$tts/debs" && rm -f echogarden-gnuspeech-wasm-*.tgz && npm pack --silent @echogarden/gnuspeech-wasm@0.3.0 >/dev/null)
  (cd "$tts/debs" && rm -f echogarden-svoxpico-wasm-*.tgz && npm pack --silent @echogarden/svoxpico-wasm@0.2.0 >/dev/null)
  # Pico's lingware is not in its npm package but in Debian's libttspico-data, in the non-free
  # component this machine's apt sources leave out: the same sources with non-free alone, in an apt
  # state of our own (the machine's is left as it is). Only the en-US and en-GB files are kept
  # (1.6 MB of the package's 4.2: a GPU call sends at most 64 MiB).
  apt="$tts/apt"
  rm -rf "$apt" && mkdir -p "$apt/sources.list.d" "$apt/lists/partial" "$apt/cache/archives/partial" "$apt/x"
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -e "$f" ] && sed -nE 's/^(deb[[:space:]]+(\[[^]]*\][[:space:]]+)?[^[:space:]]+[[:space:]]+[^[:space:]]+).*/\1 non-free/p' "$f" >"$apt/sources.list.d/$(basename "$f")"
  done
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -e "$f" ] && sed -E 's/^Components:.*/Components: non-free/' "$f" >"$apt/sources.list.d/$(basename "$f")"
  done
  opts=(-o Dir::Etc::SourceList=/dev/null -o Dir::Etc::SourceParts="$apt/sources.list.d" -o Dir::State::Lists="$apt/lists"
        -o Dir::Cache="$apt/cache" -o APT::Sandbox::User=root)
  apt-get "${opts[@]}" update >/dev/null
  (cd "$apt" && apt-get "${opts[@]}" download libttspico-data >/dev/null)
  dpkg -x "$apt"/libttspico-data_*.deb "$apt/x"
  deb=$(basename "$apt"/libttspico-data_*.deb)
  cp "$apt/x/usr/share/doc/libttspico-data/copyright" "$apt/x/usr/share/pico/lang/"
  rm -f "$tts"/debs/libttspico-data_*_en.tar.xz
  tar -C "$apt/x/usr/share/pico/lang" -cJf "$tts/debs/${deb%_all.deb}_en.tar.xz" \
    copyright en-US_ta.bin en-US_lh0_sg.bin en-GB_ta.bin en-GB_kh0_sg.bin
  rm -rf "$apt"
  node=$(command -v node)
  if [ ! -f "$tts/debs/node.xz" ] || [ "$node" -nt "$tts/debs/node.xz" ]; then
    xz -T0 -6 -c "$node" >"$tts/debs/node.xz.part" && mv "$tts/debs/node.xz.part" "$tts/debs/node.xz"
  fi
fi
rm -rf "$tts/root"
for deb in "$tts"/debs/*.deb; do dpkg -x "$deb" "$tts/root"; done
lib="$tts/root/usr/lib/x86_64-linux-gnu"
cp "$tts/debs/libpcaudio.so.0" "$tts/debs/libpulse-simple.so.0" "$lib/"
mkdir -p "$tts/root/gnuspeech"
tar -xzf "$tts"/debs/echogarden-gnuspeech-wasm-*.tgz -C "$tts/root/gnuspeech" --strip-components=1
mkdir -p "$tts/root/svoxpico/lang"
tar -xzf "$tts"/debs/echogarden-svoxpico-wasm-*.tgz -C "$tts/root/svoxpico" --strip-components=1
tar -xJf "$tts"/debs/libttspico-data_*_en.tar.xz -C "$tts/root/svoxpico/lang"
if ! command -v node >/dev/null; then
  xz -dc "$tts/debs/node.xz" >"$tts/root/usr/bin/node"
  chmod +x "$tts/root/usr/bin/node"
fi
LD_LIBRARY_PATH="$lib" "$tts/root/usr/bin/espeak-ng" --path="$lib/espeak-ng-data" --stdout "ok" >/dev/null
# festival looks for its Scheme library and voices under /usr/share/festival unless
# told otherwise: --libdir and --datadir both (Debian's init.scm loads from datadir).
share="$tts/root/usr/share/festival"
wav="$tts/festival-ok.wav"
LD_LIBRARY_PATH="$lib" OMP_NUM_THREADS=1 "$tts/root/usr/bin/festival" --libdir "$share" --datadir "$share" --pipe \
  <<<'(voice_ked_diphone) (utt.save.wave (SynthText "ok") "-" (quote riff))' >"$wav"
rate=$(od -An -tu4 -j24 -N4 "$wav" | tr -d ' ')
bytes=$(stat -c %s "$wav")
rm -f "$wav"
if [ "$rate" != 16000 ] || [ "$bytes" -lt 8000 ]; then
  echo "festival (voice_ked_diphone) did not render 'ok' as a 16 kHz wave (rate '$rate', $bytes bytes)" >&2
  exit 1
fi
for voice in ked_diphone cmu_us_slt_arctic_hts; do
  LD_LIBRARY_PATH="$lib" OMP_NUM_THREADS=1 "$tts/root/usr/bin/festival" --libdir "$share" --datadir "$share" --pipe \
    <<<"(voice_$voice) (utt.save.wave (SynthText \"ok\") \"-\" (quote riff))" >"$wav"
  bytes=$(stat -c %s "$wav")
  rm -f "$wav"
  if [ "$bytes" -lt 8000 ]; then
    echo "festival (voice_$voice) did not render 'ok' ($bytes bytes)" >&2
    exit 1
  fi
done
node=$(command -v node || echo "$tts/root/usr/bin/node")
bytes=$(printf '{"text":"ok","voice":"male","tempo":1,"pitchOffset":-4}\n' |
  "$node" "$root/tools/speech/gnuspeech-server.mjs" "$tts/root/gnuspeech" 2>/dev/null | wc -c)
if [ "$bytes" -lt 8000 ]; then
  echo "GnuSpeech (tools/speech/gnuspeech-server.mjs with $node) did not render 'ok' ($bytes bytes)" >&2
  exit 1
fi
for voice in en-US en-GB; do
  bytes=$(printf '{"text":"ok","voice":"%s","speed":100,"pitch":100}\n' "$voice" |
    "$node" "$root/tools/speech/svoxpico-server.mjs" "$tts/root/svoxpico" 2>/dev/null | wc -c)
  if [ "$bytes" -lt 8000 ]; then
    echo "SVOX Pico (tools/speech/svoxpico-server.mjs with $node, voice $voice) did not render 'ok' ($bytes bytes)" >&2
    exit 1
  fi
done
echo "espeak-ng, flite, festival (ked_diphone, cmu_us_slt_arctic_hts), GnuSpeech and SVOX Pico ready under $tts/root"
