// The page's gRPC-Web client of the hub, through `wsh web`'s bridge on the
// page's own origin. The token is typed once and kept in sessionStorage (this
// tab only, gone when it closes); it travels only as the authorization header.

import { createClient, type Client, type Interceptor, type Transport } from "@connectrpc/connect";
import { createGrpcWebTransport } from "@connectrpc/connect-web";
import { HubService } from "./gen/wsh/v1/hub_pb";

const TOKEN_KEY = "wsh.token";

export type Hub = Client<typeof HubService>;

export function storedToken(): string {
  try {
    return sessionStorage.getItem(TOKEN_KEY) ?? "";
  } catch {
    return "";
  }
}

export function storeToken(token: string): void {
  try {
    if (token) sessionStorage.setItem(TOKEN_KEY, token);
    else sessionStorage.removeItem(TOKEN_KEY);
  } catch {
    // Storage refused (a private window's policy): the token lives in memory only.
  }
  currentToken = token;
}

let currentToken = storedToken();

const authorization: Interceptor = (next) => (request) => {
  if (currentToken) request.header.set("authorization", `Bearer ${currentToken}`);
  return next(request);
};

export function hubTransport(baseUrl: string): Transport {
  return createGrpcWebTransport({ baseUrl, interceptors: [authorization] });
}

export function hubClient(transport: Transport): Hub {
  return createClient(HubService, transport);
}
