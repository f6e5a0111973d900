import type { Env } from '../config/key';

/** What a command gets from the process; main.ts is the only place that reads process.*. */
export interface CliIo {
  readonly env: Env;
  readonly argv: readonly string[];
  readonly stdout: NodeJS.WritableStream;
  readonly stderr: NodeJS.WritableStream;
  /** Registers a handler for SIGTERM/SIGINT; returns an unregister function. */
  onSignal(fn: (signal: 'SIGTERM' | 'SIGINT') => void): () => void;
}

export interface Command {
  readonly name: string;
  readonly summary: string;
  /** Full --help text: usage, flags and env vars. */
  help(): string;
  /** Resolves with the process exit code. */
  run(io: CliIo): Promise<number>;
}
