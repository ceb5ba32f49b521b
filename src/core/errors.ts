/** Base class of every error Portcullis throws on purpose. */
export class PortcullisError extends Error {
  constructor(
    message: string,
    readonly code: string,
  ) {
    super(message);
    this.name = new.target.name;
  }
}

/** A parameter or argument is out of its domain. `param` names it (for example `burst` or `cost`). */
export class InvalidArgumentError extends PortcullisError {
  constructor(
    readonly param: string,
    message: string,
  ) {
    super(`${param}: ${message}`, "invalid_argument");
  }
}

/** A queued acquisition was cancelled (AbortSignal) or its limiter was disposed. */
export class AcquireAbortedError extends PortcullisError {
  constructor(message: string, code = "aborted") {
    super(message, code);
  }
}
