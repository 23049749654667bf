'use strict';
// A wsh client in Node with @grpc/grpc-js: the send / await idle / read loop
// on a server directly and through a hub, a RaceIdle stream across the hub
// and its backend, and the ErrorInfo reason of a failed call.
//
//   node client.js HUB_ADDR BACKEND_ADDR     (host:port each)
//
// Exits 0 when every check passed, 1 (with the reason) otherwise.
const assert = require('node:assert/strict');
const path = require('node:path');
const grpc = require('@grpc/grpc-js');
const protoLoader = require('@grpc/proto-loader');
const protobuf = require('protobufjs');
const googleProtos = require('google-proto-files');

// The contract is read from the repository's protos/ at start-up: proto-loader
// builds the stubs from the .proto files, nothing is generated ahead.
const PROTOS = process.env.WSH_PROTOS || path.join(__dirname, '..', '..', 'protos');
const definition = protoLoader.loadSync('wsh/v1/hub.proto', {
  includeDirs: [PROTOS],
  keepCase: true, // field names as in the proto: last_generation
  longs: String, // uint64 generations as decimal strings, passed back unchanged
  enums: String,
  defaults: true,
  oneofs: true,
});
const { HubService } = grpc.loadPackageDefinition(definition).wsh.v1;

// google.rpc.Status and ErrorInfo, which grpc-js leaves undecoded in the
// grpc-status-details-bin trailer.
const rpc = new protobuf.Root().loadSync(
  [googleProtos.getProtoPath('rpc', 'status.proto'), googleProtos.getProtoPath('rpc', 'error_details.proto')],
  { keepCase: true },
);
const Status = rpc.lookupType('google.rpc.Status');
const ErrorInfo = rpc.lookupType('google.rpc.ErrorInfo');

const RPC_DEADLINE_MS = 30000;
const PREFIX = `node-${process.pid}`;

function unary(client, method, request) {
  return new Promise((resolve, reject) => {
    client[method](request, { deadline: Date.now() + RPC_DEADLINE_MS }, (err, response) =>
      err ? reject(err) : resolve(response),
    );
  });
}

// The ErrorInfo reason a failed call carries ('' if none).
function errorReason(err) {
  const [bin] = err.metadata ? err.metadata.get('grpc-status-details-bin') : [];
  if (!bin) return '';
  for (const any of Status.decode(bin).details) {
    if (any.type_url === 'type.googleapis.com/google.rpc.ErrorInfo') {
      return ErrorInfo.decode(any.value).reason;
    }
  }
  return '';
}

// Create a shell, type a command, wait until its output has settled, read it.
async function sendWaitRead(client, server, name, owner) {
  const created = await unary(client, 'CreateSession', { server, name, command: 'sh' });
  assert.equal(created.session.server, owner, 'session created on the wrong server');
  const sent = await unary(client, 'SendInput', { server, name, text: 'echo wsh-$((6*7))\n' });
  // The idiom: wait from the generation the input produced, so the wait
  // cannot end on the quiet before the shell has even read the line.
  const { idle } = await unary(client, 'AwaitIdle', {
    server,
    name,
    timeout_ms: 500,
    last_generation: sent.generation,
  });
  assert.ok(BigInt(idle.generation) > BigInt(sent.generation), 'idle before the output');
  const { screen } = await unary(client, 'GetScreen', { server, name });
  // The typed line shows `wsh-$((6*7))`; only the shell's output has wsh-42.
  assert.ok(
    screen.lines.some((line) => line.includes('wsh-42')),
    `output not on the screen: ${JSON.stringify(screen.lines)}`,
  );
}

// Race every session tagged `tag` in the cluster until `count` have settled
// (READY: each shell waits at its prompt), as "server/session" strings.
function raceIdle(hub, tag, count) {
  return new Promise((resolve, reject) => {
    const settled = [];
    const call = hub.RaceIdle(
      { tags: [tag], mode: 'IDLE_MODE_READY', timeout_ms: 300, max_wait_ms: 20000, max_results: count },
      { deadline: Date.now() + RPC_DEADLINE_MS },
    );
    call.on('data', ({ idle }) => settled.push(`${idle.server}/${idle.session}`));
    call.on('error', reject);
    // With max_results the stream ends OK after the last result.
    call.on('end', () => resolve(settled.sort()));
  });
}

async function expectNotFound(client, label) {
  try {
    await unary(client, 'GetScreen', { name: `${PREFIX}-missing` });
  } catch (err) {
    assert.equal(err.code, grpc.status.NOT_FOUND, `${label}: ${err.message}`);
    const reason = errorReason(err);
    assert.equal(reason, 'SESSION_NOT_FOUND', `${label}: reason ${reason}`);
    return;
  }
  assert.fail(`${label}: GetScreen of a missing session succeeded`);
}

async function main(hubAddr, backendAddr) {
  const hub = new HubService(hubAddr, grpc.credentials.createInsecure());
  const backend = new HubService(backendAddr, grpc.credentials.createInsecure());
  const hubName = (await unary(hub, 'GetServerInfo', {})).hostname;
  const backendName = (await unary(backend, 'GetServerInfo', {})).hostname;
  const made = []; // [client, server, name] to kill at the end
  const step = async (label, body) => {
    const started = process.hrtime.bigint();
    await body();
    console.log(`ok ${label} (${(Number(process.hrtime.bigint() - started) / 1e6).toFixed(0)} ms)`);
  };
  try {
    await step('loop on the backend directly', async () => {
      made.push([backend, '', `${PREFIX}-direct`]);
      await sendWaitRead(backend, '', `${PREFIX}-direct`, backendName);
    });
    await step('loop through the hub', async () => {
      made.push([hub, backendName, `${PREFIX}-via-hub`]);
      await sendWaitRead(hub, backendName, `${PREFIX}-via-hub`, backendName);
    });
    await step('RaceIdle across hub and backend', async () => {
      const tag = `${PREFIX}-race`;
      const want = [];
      for (const server of [hubName, backendName]) {
        const name = `${PREFIX}-race-${server}`;
        made.push([hub, server, name]);
        await unary(hub, 'CreateSession', { server, name, command: 'sh', tags: [tag] });
        want.push(`${server}/${name}`);
      }
      assert.deepEqual(await raceIdle(hub, tag, want.length), want.sort());
    });
    await step('ErrorInfo reason of a failed call', async () => {
      await expectNotFound(backend, 'backend');
      await expectNotFound(hub, 'hub');
    });
  } finally {
    for (const [client, server, name] of made) {
      await unary(client, 'KillSession', { server, name }).catch(() => {});
    }
    hub.close();
    backend.close();
  }
}

if (process.argv.length !== 4) {
  console.error('usage: node client.js HUB_ADDR BACKEND_ADDR');
  process.exit(2);
}
main(process.argv[2], process.argv[3]).then(
  () => console.log('all checks passed'),
  (err) => {
    console.error(`FAILED: ${err.stack || err}`);
    process.exit(1);
  },
);
