export { type Checkpoint, INDEX_FILE_NAME, openCheckpoint, SINGLE_FILE_NAME } from './checkpoint.js';
export type { TensorValues } from './decode.js';
export { DTYPE_BYTES, type SafetensorsDtype, type TensorDtype } from './dtypes.js';
export { SafetensorsError } from './errors.js';
export { openSafetensors, type SafetensorsFile, type TensorReader } from './file.js';
export {
  bfloat16BitsToFloat32,
  float32ToBfloat16Bits,
  float32ToHalfBits,
  floatToBfloat16Bits,
  floatToHalfBits,
  halfBitsToFloat,
  halfBitsToFloat32,
} from './half.js';
export { MAX_HEADER_BYTES, type TensorInfo } from './header.js';
export { type LoadTensorsOptions, loadTensors } from './load.js';
export { type TensorToWrite, writeSafetensors } from './write.js';
