/** Every user-facing mistake gets its own error class so surfaces can print one clear line. */
export class SondeError extends Error {
  constructor(message: string) {
    super(message);
    this.name = new.target.name;
  }
}

/** A malformed or unreadable safetensors file, index or tensor. */
export class SafetensorsError extends SondeError {}
/** A config.json the loader cannot use (unknown architecture, missing fields). */
export class ConfigError extends SondeError {}
/** A weight missing, of the wrong shape, or unexpected. */
export class WeightError extends SondeError {}
/** A tokenizer file missing or malformed. */
export class TokenizerError extends SondeError {}
/** Tensor shapes or dtypes that an op cannot take. */
export class ShapeError extends SondeError {}
/** A hook name that does not exist, or a hook that returned a bad value. */
export class HookError extends SondeError {}
/** A malformed SAE config, a weight of the wrong shape, or an SAE (a splice) that does not fit its hook. */
export class SaeError extends SondeError {}
/** A bad command-line flag or value. */
export class UsageError extends SondeError {}
/** The requested compute device (SONDE_DEVICE) cannot be used. */
export class DeviceError extends SondeError {}
/** A model that will not fit in the memory available (or the limit set), or a tensor too big for one array. */
export class MemoryError extends SondeError {}
