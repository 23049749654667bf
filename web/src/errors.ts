// What a failed call says to a person: the gRPC code and the wsh reason
// (google.rpc.ErrorInfo, carried in grpc-status-details-bin), never a stack.

import { Code, ConnectError } from "@connectrpc/connect";
import { BinaryReader } from "@bufbuild/protobuf/wire";

const ERROR_INFO = "google.rpc.ErrorInfo";

/** The ErrorInfo reason of an error detail's bytes (field 1), or "". */
export function decodeReason(bytes: Uint8Array): string {
  const reader = new BinaryReader(bytes);
  while (reader.pos < reader.len) {
    const [field, wireType] = reader.tag();
    if (field === 1) return reader.string();
    reader.skip(wireType);
  }
  return "";
}

export function errorReason(err: unknown): string {
  if (!(err instanceof ConnectError)) return "";
  for (const detail of err.details) {
    if ("type" in detail && detail.type === ERROR_INFO) return decodeReason(detail.value);
  }
  return "";
}

export function errorCode(err: unknown): Code | undefined {
  return err instanceof ConnectError ? err.code : undefined;
}

/** The token was missing or wrong: the page asks for it again. */
export function needsToken(err: unknown): boolean {
  const code = errorCode(err);
  return code === Code.Unauthenticated || code === Code.PermissionDenied;
}

/** One line for the page's status area. */
export function describeError(err: unknown): string {
  if (err instanceof ConnectError) {
    const reason = errorReason(err);
    const text = err.rawMessage || Code[err.code];
    return reason ? `${reason}: ${text}` : text;
  }
  if (err instanceof Error) return err.message;
  return String(err);
}

export function isAbort(err: unknown): boolean {
  return (
    (err instanceof ConnectError && err.code === Code.Canceled) ||
    (err instanceof Error && err.name === "AbortError")
  );
}
