/**
 * Interleaved frames of `channels` samples → one mono sample per frame: the
 * mean of the frame's samples, multiplied by `scale` (e.g. 1/32768 to turn
 * 16-bit integers into floats). Averaging rather than summing keeps the
 * result within the inputs' range, so a full-scale stereo file stays in [-1, 1].
 */
export function downmixInterleaved(
  interleaved: ArrayLike<number>,
  channels: number,
  scale = 1,
  offset = 0,
): Float32Array {
  const frameCount = Math.floor(interleaved.length / channels);
  const mono = new Float32Array(frameCount);
  if (channels === 1) {
    for (let i = 0; i < frameCount; i++) mono[i] = (interleaved[i] - offset) * scale;
    return mono;
  }
  const frameScale = scale / channels;
  for (let f = 0, i = 0; f < frameCount; f++) {
    let sum = 0;
    for (let c = 0; c < channels; c++, i++) sum += interleaved[i] - offset;
    mono[f] = sum * frameScale;
  }
  return mono;
}
