export {
  checkStreamingEncoderConfig,
  STREAMING_ENCODER_10M,
  STREAMING_ENCODER_BLANK_ID,
  STREAMING_ENCODER_SUBSAMPLING,
  STREAMING_ENCODER_TINY,
  type StreamingEncoderConfig,
  streamingEncoderOutputFrames,
  streamingEncoderParameterCount,
} from './config.js';
export { createStreamingEncoder, type StreamingEncoder, type StreamingEncoderState } from './encoder.js';
export { ensembleStreamingEncoder } from './ensemble.js';
export {
  disposeStreamingEncoderWeights,
  randomStreamingEncoderWeights,
  type StreamingConvWeights,
  type StreamingEncoderLayerWeights,
  type StreamingEncoderWeights,
} from './weights.js';
