import { InvalidArgumentError } from '@specstream/core';
import { Observable } from 'rxjs';

const where = 'asyncIterableSource';

/**
 * An AsyncIterable of mono Float32Array chunks (an async generator, a Web
 * ReadableStream, a microphone library's iterator) → an Observable of them.
 * The sample rate is whatever the producer says it is; pair it with the
 * Observable yourself, e.g. `{ sampleRate: 16000, samples: asyncIterableSource(mic) }`.
 *
 * Each subscription starts a new iteration. Unsubscribing calls the
 * iterator's `return()` at once, so it can release its device or file; an
 * async generator runs its `finally` as soon as its current `await` settles.
 * (RxJS's own `from(asyncIterable)` calls `return()` only after the next value
 * arrives, which a silent microphone may never produce.) A value already
 * being awaited when unsubscribing is dropped.
 */
export function asyncIterableSource(iterable: AsyncIterable<Float32Array>): Observable<Float32Array> {
  if (typeof iterable?.[Symbol.asyncIterator] !== 'function') {
    throw new InvalidArgumentError(`${where}: expected an AsyncIterable, got ${typeof iterable}`);
  }
  return new Observable<Float32Array>((subscriber) => {
    const iterator = iterable[Symbol.asyncIterator]();
    // True once the iterator is done or threw: then it must not be return()ed.
    let exhausted = false;

    const pull = async () => {
      try {
        while (!subscriber.closed) {
          const result = await iterator.next();
          if (result.done) {
            exhausted = true;
            subscriber.complete();
            return;
          }
          if (subscriber.closed) return;
          const chunk: unknown = result.value;
          if (!(chunk instanceof Float32Array)) {
            const got = chunk?.constructor?.name ?? typeof chunk;
            subscriber.error(new InvalidArgumentError(`${where}: chunks must be Float32Array, got ${got}`));
            return;
          }
          subscriber.next(chunk);
        }
      } catch (error) {
        exhausted = true;
        subscriber.error(error);
      }
    };
    void pull();

    return () => {
      if (exhausted || typeof iterator.return !== 'function') return;
      // A failure while cleaning up has nobody left to report to.
      try {
        Promise.resolve(iterator.return()).catch(() => undefined);
      } catch {
        // return() threw synchronously: same, nothing to report to.
      }
    };
  });
}
