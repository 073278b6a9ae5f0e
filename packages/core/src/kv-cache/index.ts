import { createBlockCache } from './blocks.js';
import { createConcatCache } from './concat.js';
import { createInplaceCache, inplaceSupported } from './inplace.js';

export { hostFloats } from './inplace.js';

import type { KvCache, KvCacheKind, KvCacheShape } from './kv-cache.js';
import { createStaticCache } from './static.js';

export type { KvCache, KvCacheKind, KvCacheShape } from './kv-cache.js';
export { scatterSteps } from './scatter.js';

/** The fastest strategy the current backend supports (see the core benchmark's cache table). */
export function defaultKvCacheKind(): KvCacheKind {
  return inplaceSupported() ? 'inplace' : 'blocks';
}

export function createKvCache(shape: KvCacheShape, kind: KvCacheKind = defaultKvCacheKind()): KvCache {
  switch (kind) {
    case 'inplace':
      return createInplaceCache(shape);
    case 'blocks':
      return createBlockCache(shape);
    case 'concat':
      return createConcatCache(shape);
    case 'static':
      return createStaticCache(shape);
  }
}
