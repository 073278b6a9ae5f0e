import { getLogger } from '../../log.js';
import { RELAXED_SIMD_PROBE_BASE64 } from './wasm-binary.js';

/**
 * Whether core's kernels use relaxed SIMD's fused multiply-add
 * (f32x4.relaxed_madd; see fuseMultiplyAdds in scripts/wasm-kernels.ts).
 * V8 ships relaxed SIMD from 11.4 (Node 22); Node 20's V8 11.3 has it
 * behind --experimental-wasm-relaxed-simd, which is turned on here when a
 * probe module does not validate without it: a wasm feature flag that only
 * decides which instructions later compilations accept.
 * SPECSTREAM_RELAXED_SIMD=off keeps the plain kernels (and the flags as they
 * are).
 */
let decided: boolean | undefined;

// core's lib settings leave out the DOM's WebAssembly types.
const wasmApi = (globalThis as unknown as { WebAssembly: { validate(bytes: Uint8Array): boolean } })
  .WebAssembly;

export function fusedMultiplyAdd(): boolean {
  decided ??= chooseFusedMultiplyAdd(globalThis.process?.env?.SPECSTREAM_RELAXED_SIMD);
  return decided;
}

function probeValidates(): boolean {
  try {
    return wasmApi.validate(Buffer.from(RELAXED_SIMD_PROBE_BASE64, 'base64'));
  } catch {
    return false;
  }
}

/** The decision for a value of SPECSTREAM_RELAXED_SIMD: 'off', or 'on' / unset (use it where the engine can). */
export function chooseFusedMultiplyAdd(setting: string | undefined): boolean {
  const log = getLogger('core');
  if (setting === 'off') {
    log.info('relaxed SIMD off (SPECSTREAM_RELAXED_SIMD=off): plain multiply and add');
    return false;
  }
  if (setting !== undefined && setting !== '' && setting !== 'on') {
    throw new Error(`SPECSTREAM_RELAXED_SIMD must be "on" or "off", got "${setting}"`);
  }
  if (probeValidates()) return true;
  const v8 = globalThis.process?.getBuiltinModule?.('node:v8') as
    | { setFlagsFromString(flags: string): void }
    | undefined;
  v8?.setFlagsFromString('--experimental-wasm-relaxed-simd');
  const enabled = probeValidates();
  log.info(
    { enabled },
    enabled
      ? 'relaxed SIMD enabled (--experimental-wasm-relaxed-simd): fused multiply-add kernels'
      : 'relaxed SIMD unavailable: plain multiply and add',
  );
  return enabled;
}
