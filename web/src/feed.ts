// A live terminal's output. ScreenFeed follows a session with AwaitIdle
// (wait for activity newer than the last screen, 5 ms of quiet, then the
// styled screen) and writes each new screen as a repaint; on a flood that
// never quiets it reads the screen once a second. An Attach feed (snapshot
// repaint, then raw output as a server stream) implements the same interface.

import { Code } from "@connectrpc/connect";
import { repaint } from "./ansi";
import type { Hub } from "./api";
import { errorCode } from "./errors";
import { ScreenFormat, type Screen } from "./gen/wsh/v1/types_pb";

export interface FeedSink {
  /** Bytes for the terminal. */
  write(data: string | Uint8Array): void;
  /** The screen just shown (size, text for copy). */
  screen(screen: Screen): void;
  /** The process exited with `code` (negative: signal). */
  exited(code: number): void;
}

export interface TerminalFeed {
  run(sink: FeedSink, signal: AbortSignal): Promise<void>;
}

/** Quiet time before a screen is sent: long enough to take a keystroke's
 * echo with it (the echo follows the input by well under a millisecond). */
export const QUIET_MS = 5;
/** Bound of one wait: a session that never quiets is read this often. */
export const LONG_POLL_MS = 1000;

export class ScreenFeed implements TerminalFeed {
  constructor(
    private readonly hub: Hub,
    private readonly server: string,
    private readonly name: string,
  ) {}

  async run(sink: FeedSink, signal: AbortSignal): Promise<void> {
    const target = { server: this.server, name: this.name };
    const first = await this.hub.getScreen(
      { ...target, format: ScreenFormat.STYLED },
      { signal },
    );
    let generation = this.show(sink, first.screen, -1n);
    while (!signal.aborted) {
      try {
        const { idle } = await this.hub.awaitIdle(
          {
            ...target,
            lastGeneration: generation,
            timeoutMs: QUIET_MS,
            maxWaitMs: LONG_POLL_MS,
            format: ScreenFormat.STYLED,
          },
          { signal },
        );
        if (!idle) continue;
        generation = this.show(sink, idle.screen, generation);
        if (idle.exitCode !== undefined) {
          sink.exited(idle.exitCode);
          return;
        }
      } catch (err) {
        if (errorCode(err) !== Code.DeadlineExceeded) throw err;
        // Nothing settled within the bound: new output may still be on screen.
        const { screen } = await this.hub.getScreen(
          { ...target, format: ScreenFormat.STYLED },
          { signal },
        );
        generation = this.show(sink, screen, generation);
      }
    }
  }

  private show(sink: FeedSink, screen: Screen | undefined, shown: bigint): bigint {
    if (!screen || screen.generation === shown) return shown;
    sink.screen(screen);
    sink.write(repaint(screen));
    return screen.generation;
  }
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
