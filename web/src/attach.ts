// A live terminal from Attach: the snapshot's repaint, then the program's raw
// output as it comes, and the exit at the end. gRPC-Web cannot stream from the
// browser, so the call is made as a server stream: its one request is the
// `start` (read-only: the page sends keys with SendInput and resizes with
// ResizeSession); its request side is closed after it, and an Attach client
// that closes its side still receives.

import { create, type DescMethodServerStreaming } from "@bufbuild/protobuf";
import type { Transport } from "@connectrpc/connect";
import { createAsyncIterable } from "@connectrpc/connect/protocol";
import type { FeedSink, TerminalFeed } from "./feed";
import {
  AttachMode,
  type AttachRequest,
  AttachRequestSchema,
  type AttachResponse,
  HubService,
} from "./gen/wsh/v1/hub_pb";
import { ScreenFormat } from "./gen/wsh/v1/types_pb";

// The same method, as the browser's transport can call it.
const ATTACH = {
  ...HubService.method.attach,
  methodKind: "server_streaming",
} as unknown as DescMethodServerStreaming<typeof AttachRequestSchema, typeof HubService.method.attach.output>;

export class AttachFeed implements TerminalFeed {
  constructor(
    private readonly transport: Transport,
    private readonly server: string,
    private readonly name: string,
  ) {}

  async run(sink: FeedSink, signal: AbortSignal): Promise<void> {
    const start: AttachRequest = create(AttachRequestSchema, {
      request: {
        case: "start",
        value: {
          server: this.server,
          name: this.name,
          mode: AttachMode.READ_ONLY,
          format: ScreenFormat.STYLED,
        },
      },
    });
    const call = await this.transport.stream(
      ATTACH,
      signal,
      undefined,
      undefined,
      createAsyncIterable([start]),
      undefined,
    );
    for await (const answer of call.message as AsyncIterable<AttachResponse>) {
      const response = answer.response;
      if (response.case === "snapshot") {
        if (response.value.screen) sink.screen(response.value.screen);
        sink.write(response.value.repaint);
      } else if (response.case === "output") {
        sink.write(response.value);
      } else if (response.case === "end") {
        sink.exited(response.value.exitCode);
        return;
      }
    }
  }
}
