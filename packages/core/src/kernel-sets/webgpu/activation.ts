import * as tf from '@tensorflow/tfjs-core';
import type { Activation } from '../../transformer/mlp.js';
import { ACTIVATION_WGSL } from './webgpu-activation.js';
import { MAIN, requireWebGpuPrograms, type WebGpuProgram, webGpuPrograms } from './webgpu-program.js';

/**
 * An MLP's activation in one kernel (webgpu): act(x), or for a gated MLP
 * act(gate)·up with the gate in the first half of each row and up in the
 * second. tfjs composes GPT-2's gelu_tanh of six kernels, and a gated
 * activation needs a split (two slices) and a product on top.
 */
export const ACTIVATION = 'SpecstreamActivation';

/** Whether activateRows runs as one kernel on the current backend. */
export function activationSupported(): boolean {
  return webGpuPrograms() !== undefined;
}

/** x: [rows, cols] → [rows, cols], or gated [rows, 2·ff] → [rows, ff]. */
export function activateRows(kind: Activation, x: tf.Tensor2D, gated: boolean): tf.Tensor2D {
  return tf.engine().runKernel(ACTIVATION, { x }, { kind, gated }) as tf.Tensor2D;
}

function activationProgram(kind: Activation, gated: boolean, rows: number, cols: number): WebGpuProgram {
  const outCols = gated ? cols / 2 : cols;
  const threads = 64;
  const size = rows * outCols;
  return {
    variableNames: ['x'],
    outputShape: [rows, outCols],
    shaderKey: `specstreamActivation_${kind}_${gated}`,
    dispatchLayout: { x: [0, 1] },
    dispatch: [Math.ceil(size / threads), 1, 1],
    workgroupSize: [threads, 1, 1],
    size: true,
    getUserCode: () => `
    ${ACTIVATION_WGSL[kind].helpers}
    fn activate(v : f32) -> f32 { return ${ACTIVATION_WGSL[kind].formula}; }

    ${MAIN} {
      if (index >= uniforms.size) { return; }
      ${
        gated
          ? `let ff = uniforms.outShape.y;
      let row = index / ff;
      let col = index - row * ff;
      result[index] = activate(x[row * 2 * ff + col]) * x[row * 2 * ff + ff + col];`
          : 'result[index] = activate(x[index]);'
      }
    }
  `,
  };
}

tf.registerKernel({
  kernelName: ACTIVATION,
  backendName: 'webgpu',
  kernelFunc: ({ inputs, attrs }) => {
    const x = inputs.x as tf.TensorInfo;
    const [rows, cols] = x.shape;
    const kind = attrs!.kind as Activation;
    const gated = attrs!.gated === true;
    if (x.shape.length !== 2 || (gated && cols % 2 !== 0) || !(kind in ACTIVATION_WGSL)) {
      throw new Error(`activateRows: cannot apply ${gated ? 'gated ' : ''}${kind} to [${x.shape}]`);
    }
    return requireWebGpuPrograms().runWebGPUProgram(
      activationProgram(kind, gated, rows, cols),
      [x],
      'float32',
    );
  },
});
