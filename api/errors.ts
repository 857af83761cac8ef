// The base of the project's error classes: its name is its class's name, so a log line or a
// message says which error it was (StorageFullError, HostKeyMismatchError, ...).

export class NamedError extends Error {
  constructor(message: string, options?: { cause?: unknown }) {
    super(message, options);
    this.name = new.target.name;
  }
}
