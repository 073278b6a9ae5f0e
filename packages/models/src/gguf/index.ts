export { GgmlType, GgufValueType } from './constants.js';
export { isGgufPath } from './detect.js';
export { GgufError } from './errors.js';
export {
  type ExportGgufOptions,
  type ExportGgufResult,
  exportGguf,
  GGUF_EXPORT_TYPES,
  type GgufExportType,
} from './export.js';
export { ggufHfConfig, ggufTensorReader, loadGgufModel, loadGgufTokenizer } from './load.js';
export type { GgufArray, GgufEntry, GgufMetadata, GgufScalar } from './metadata.js';
export { dequantize, quantizeQ4_0, quantizeQ8_0 } from './quant.js';
export {
  GGUF_LIMITS,
  type GgufFile,
  type GgufHeader,
  type GgufTensorInfo,
  openGguf,
  readGgufHeader,
} from './reader.js';
export { type GgufTensorToWrite, writeGguf } from './writer.js';
