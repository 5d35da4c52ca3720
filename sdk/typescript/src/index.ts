export {
  ErrorType,
  StepHandlerResult,
  StepContext,
  StepHandler,
  stepHandler,
  asHandler,
  createCursorConfigs,
  TaskerError,
  PermanentError,
  RetryableError,
  type Handler,
  type HandlerReturn,
  type FailureOptions,
  type CursorConfig,
  type BatchInputs,
  type Checkpoint,
} from "./handler.js";
export { Worker, stderrLogger, type WorkerOptions, type WorkerStats, type Logger } from "./worker.js";
export { loadHandlers } from "./loader.js";
export { WireClient, HttpError, ConnectionError, type Json, type WireEvent, type WireCompletion, type ChannelMetrics } from "./wire.js";
