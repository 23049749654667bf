import com.google.protobuf.Any;
import com.google.protobuf.InvalidProtocolBufferException;
import com.google.protobuf.UnknownFieldSet;
import dev.wsh.api.v1.AwaitIdleRequest;
import dev.wsh.api.v1.CreateSessionRequest;
import dev.wsh.api.v1.CreateSessionResponse;
import dev.wsh.api.v1.ErrorReason;
import dev.wsh.api.v1.GetScreenRequest;
import dev.wsh.api.v1.GetServerInfoRequest;
import dev.wsh.api.v1.HubServiceGrpc;
import dev.wsh.api.v1.HubServiceGrpc.HubServiceBlockingStub;
import dev.wsh.api.v1.Idle;
import dev.wsh.api.v1.IdleMode;
import dev.wsh.api.v1.KillSessionRequest;
import dev.wsh.api.v1.RaceIdleRequest;
import dev.wsh.api.v1.RaceIdleResponse;
import dev.wsh.api.v1.Screen;
import dev.wsh.api.v1.SendInputRequest;
import dev.wsh.api.v1.SendInputResponse;
import io.grpc.ManagedChannel;
import io.grpc.ManagedChannelBuilder;
import io.grpc.Status;
import io.grpc.StatusRuntimeException;
import io.grpc.protobuf.StatusProto;
import java.util.ArrayList;
import java.util.Iterator;
import java.util.List;
import java.util.concurrent.TimeUnit;

/**
 * A wsh client in Java with grpc-java: the send / await idle / read loop on a server directly and
 * through a hub, a RaceIdle stream across the hub and its backend, and the ErrorInfo reason of a
 * failed call.
 *
 * <p>{@code java WshClient HUB_ADDR BACKEND_ADDR} (host:port each). Exits 0 when every check
 * passed, 1 (with the reason) otherwise.
 */
public final class WshClient {
  private static final long RPC_DEADLINE_SECONDS = 30;
  private static final String PREFIX = "java-" + ProcessHandle.current().pid();

  /** A session made by this program, killed at the end whatever happened. */
  private record Made(HubServiceBlockingStub client, String server, String name) {}

  private final List<Made> made = new ArrayList<>();

  private static HubServiceBlockingStub call(HubServiceBlockingStub client) {
    return client.withDeadlineAfter(RPC_DEADLINE_SECONDS, TimeUnit.SECONDS);
  }

  private static void check(boolean ok, String message) {
    if (!ok) {
      throw new AssertionError(message);
    }
  }

  /**
   * The ErrorInfo reason a failed call carries, from grpc-status-details-bin:
   * ERROR_REASON_UNSPECIFIED for none, UNRECOGNIZED for one newer than this build.
   */
  static ErrorReason errorReason(StatusRuntimeException error)
      throws InvalidProtocolBufferException {
    com.google.rpc.Status status = StatusProto.fromThrowable(error);
    if (status != null) {
      for (Any detail : status.getDetailsList()) {
        if (detail.getTypeUrl().equals("type.googleapis.com/google.rpc.ErrorInfo")) {
          // Debian's proto-google-common-protos (1.16) predates google.rpc.ErrorInfo
          // (1.18+ has it: detail.unpack(ErrorInfo.class).getReason()), so its
          // `string reason = 1` is read from the wire format.
          UnknownFieldSet info = UnknownFieldSet.parseFrom(detail.getValue());
          String reason = info.getField(1).getLengthDelimitedList().get(0).toStringUtf8();
          try {
            return ErrorReason.valueOf(reason);
          } catch (IllegalArgumentException newer) {
            return ErrorReason.UNRECOGNIZED;
          }
        }
      }
    }
    return ErrorReason.ERROR_REASON_UNSPECIFIED;
  }

  /** Creates a shell, types a command, waits until its output has settled and reads it. */
  void sendWaitRead(HubServiceBlockingStub client, String server, String name, String owner) {
    made.add(new Made(client, server, name));
    CreateSessionResponse created =
        call(client)
            .createSession(
                CreateSessionRequest.newBuilder()
                    .setServer(server)
                    .setName(name)
                    .setCommand("sh")
                    .build());
    check(created.getSession().getServer().equals(owner), "session created on the wrong server");
    SendInputResponse sent =
        call(client)
            .sendInput(
                SendInputRequest.newBuilder()
                    .setServer(server)
                    .setName(name)
                    .setText("echo wsh-$((6*7))\n")
                    .build());
    // The idiom: wait from the generation the input produced, so the wait cannot end on the quiet
    // before the shell has even read the line.
    Idle idle =
        call(client)
            .awaitIdle(
                AwaitIdleRequest.newBuilder()
                    .setServer(server)
                    .setName(name)
                    .setTimeoutMs(500)
                    .setLastGeneration(sent.getGeneration())
                    .build())
            .getIdle();
    check(
        Long.compareUnsigned(idle.getGeneration(), sent.getGeneration()) > 0,
        "idle before the output");
    Screen screen =
        call(client)
            .getScreen(GetScreenRequest.newBuilder().setServer(server).setName(name).build())
            .getScreen();
    // The typed line shows `wsh-$((6*7))`; only the shell's output has wsh-42.
    check(
        screen.getLinesList().stream().anyMatch(line -> line.contains("wsh-42")),
        "output not on the screen: " + screen.getLinesList());
  }

  /**
   * Races every session tagged {@code tag} until {@code count} have settled (READY: each shell
   * waits at its prompt); "server/session", sorted.
   */
  static List<String> raceIdle(HubServiceBlockingStub hub, String tag, int count) {
    Iterator<RaceIdleResponse> stream =
        call(hub)
            .raceIdle(
                RaceIdleRequest.newBuilder()
                    .addTags(tag)
                    .setMode(IdleMode.IDLE_MODE_READY)
                    .setTimeoutMs(300)
                    .setMaxWaitMs(20000)
                    .setMaxResults(count)
                    .build());
    List<String> settled = new ArrayList<>();
    // With max_results the stream ends OK after the last result; an error throws.
    while (stream.hasNext()) {
      Idle idle = stream.next().getIdle();
      settled.add(idle.getServer() + "/" + idle.getSession());
    }
    settled.sort(null);
    return settled;
  }

  static void expectNotFound(HubServiceBlockingStub client, String label) throws Exception {
    try {
      call(client).getScreen(GetScreenRequest.newBuilder().setName(PREFIX + "-missing").build());
    } catch (StatusRuntimeException error) {
      check(
          error.getStatus().getCode() == Status.Code.NOT_FOUND,
          label + ": " + error.getStatus());
      ErrorReason reason = errorReason(error);
      check(reason == ErrorReason.SESSION_NOT_FOUND, label + ": reason " + reason);
      return;
    }
    throw new AssertionError(label + ": GetScreen of a missing session succeeded");
  }

  static String hostname(HubServiceBlockingStub client) {
    return call(client).getServerInfo(GetServerInfoRequest.getDefaultInstance()).getHostname();
  }

  interface Step {
    void run() throws Exception;
  }

  static void step(String label, Step body) throws Exception {
    long started = System.nanoTime();
    body.run();
    System.out.printf("ok %s (%d ms)%n", label, (System.nanoTime() - started) / 1_000_000);
  }

  void run(HubServiceBlockingStub hub, HubServiceBlockingStub backend) throws Exception {
    String hubName = hostname(hub);
    String backendName = hostname(backend);
    step("loop on the backend directly",
        () -> sendWaitRead(backend, "", PREFIX + "-direct", backendName));
    step("loop through the hub",
        () -> sendWaitRead(hub, backendName, PREFIX + "-via-hub", backendName));
    step(
        "RaceIdle across hub and backend",
        () -> {
          String tag = PREFIX + "-race";
          List<String> want = new ArrayList<>();
          for (String server : List.of(hubName, backendName)) {
            String name = PREFIX + "-race-" + server;
            made.add(new Made(hub, server, name));
            call(hub)
                .createSession(
                    CreateSessionRequest.newBuilder()
                        .setServer(server)
                        .setName(name)
                        .setCommand("sh")
                        .addTags(tag)
                        .build());
            want.add(server + "/" + name);
          }
          want.sort(null);
          List<String> got = raceIdle(hub, tag, want.size());
          check(got.equals(want), "RaceIdle delivered " + got + ", want " + want);
        });
    step(
        "ErrorInfo reason of a failed call",
        () -> {
          expectNotFound(backend, "backend");
          expectNotFound(hub, "hub");
        });
  }

  void killAll() {
    for (Made session : made) {
      try {
        call(session.client())
            .killSession(
                KillSessionRequest.newBuilder()
                    .setServer(session.server())
                    .setName(session.name())
                    .build());
      } catch (StatusRuntimeException ignored) {
        // Already gone: nothing to clean up.
      }
    }
  }

  public static void main(String[] args) throws InterruptedException {
    if (args.length != 2) {
      System.err.println("usage: java WshClient HUB_ADDR BACKEND_ADDR");
      System.exit(2);
    }
    ManagedChannel hubChannel = ManagedChannelBuilder.forTarget(args[0]).usePlaintext().build();
    ManagedChannel backendChannel = ManagedChannelBuilder.forTarget(args[1]).usePlaintext().build();
    WshClient client = new WshClient();
    int code = 0;
    try {
      client.run(
          HubServiceGrpc.newBlockingStub(hubChannel),
          HubServiceGrpc.newBlockingStub(backendChannel));
      System.out.println("all checks passed");
    } catch (Throwable failure) {
      System.err.println("FAILED: " + failure);
      failure.printStackTrace();
      code = 1;
    } finally {
      client.killAll();
      hubChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
      backendChannel.shutdownNow().awaitTermination(5, TimeUnit.SECONDS);
    }
    System.exit(code);
  }
}
