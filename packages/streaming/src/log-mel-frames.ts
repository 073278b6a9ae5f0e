import { createLogMelStream, type LogMelOptions } from '@specstream/models';
import { Observable, type OperatorFunction } from 'rxjs';

/**
 * 16 kHz samples → raw log-mel frames ([frames × nMels], frame-major, log10
 * mel), as soon as no later sample can change them. The concatenated output
 * equals models' offline `rawLogMelFrames(allAudio, { padTo: false })` bit for
 * bit, whatever the chunking; the last frames (reaching the right padding)
 * come at completion. Notifications with no complete frame emit nothing.
 */
export function logMelFrames(options: LogMelOptions = {}): OperatorFunction<Float32Array, Float32Array> {
  return (source) =>
    new Observable<Float32Array>((subscriber) => {
      const stream = createLogMelStream(options);
      return source.subscribe({
        next(samples) {
          let frames: Float32Array;
          try {
            frames = stream.push(samples);
          } catch (error) {
            subscriber.error(error);
            return;
          }
          if (frames.length > 0) subscriber.next(frames);
        },
        error: (e) => subscriber.error(e),
        complete() {
          let rest: Float32Array;
          try {
            rest = stream.flush();
          } catch (error) {
            subscriber.error(error);
            return;
          }
          if (rest.length > 0) subscriber.next(rest);
          subscriber.complete();
        },
      });
    });
}
