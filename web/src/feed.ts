// A live terminal's output comes from a TerminalFeed (AttachFeed in
// attach.ts); its keystrokes go through an InputQueue.

import type { Screen } from "./gen/wsh/v1/types_pb";

export interface FeedSink {
  /** Bytes for the terminal. */
  write(data: string | Uint8Array): void;
  /** A snapshot's screen: the terminal takes its size. */
  screen(screen: Screen): void;
  /** The process exited with `code` (negative: signal). */
  exited(code: number): void;
}

export interface TerminalFeed {
  run(sink: FeedSink, signal: AbortSignal): Promise<void>;
}

/** Keystrokes to a session in order, merged while one send is in flight (a
 * fast typist's keys go together rather than queue one round trip each). */
export class InputQueue {
  private pending = "";
  private sending = false;

  constructor(
    private readonly send: (data: string) => Promise<unknown>,
    private readonly failed: (err: unknown) => void,
  ) {}

  push(data: string): void {
    this.pending += data;
    if (!this.sending) void this.flush();
  }

  private async flush(): Promise<void> {
    this.sending = true;
    try {
      while (this.pending) {
        const data = this.pending;
        this.pending = "";
        try {
          await this.send(data);
        } catch (err) {
          this.pending = "";
          this.failed(err);
        }
      }
    } finally {
      this.sending = false;
    }
  }
}
