import { InvalidArgumentError, type RopeScaling } from '@specstream/core';

/** A config.json as transformers writes it: only the fields we read are typed. */
export type HfConfig = Record<string, unknown> & { model_type?: string };

export function field<T>(config: HfConfig, name: string, fallback?: T): T {
  const value = config[name];
  if (value === undefined || value === null) {
    if (fallback !== undefined) return fallback;
    throw new InvalidArgumentError(`config.json of a ${config.model_type} model lacks "${name}"`);
  }
  return value as T;
}

/**
 * Rope settings in either form: transformers v4 (`rope_theta` + optional
 * `rope_scaling`) or v5 (`rope_parameters` holding theta and the scaling).
 */
export function ropeSettings(config: HfConfig): { theta: number; scaling: RopeScaling } {
  const params = (config.rope_parameters ?? config.rope_scaling ?? {}) as Record<string, unknown>;
  const theta = (params.rope_theta ?? config.rope_theta ?? 10000) as number;
  const type = (params.rope_type ?? params.type ?? 'default') as string;
  switch (type) {
    case 'default':
      return { theta, scaling: { type: 'default' } };
    case 'linear':
      return { theta, scaling: { type: 'linear', factor: params.factor as number } };
    case 'llama3':
      return {
        theta,
        scaling: {
          type: 'llama3',
          factor: params.factor as number,
          lowFreqFactor: params.low_freq_factor as number,
          highFreqFactor: params.high_freq_factor as number,
          originalMaxPositions: params.original_max_position_embeddings as number,
        },
      };
    default:
      throw new InvalidArgumentError(
        `rope type "${type}" is not supported; supported: default, linear, llama3`,
      );
  }
}
