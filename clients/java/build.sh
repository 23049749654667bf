#!/usr/bin/env bash
# Builds build/wsh-client.jar offline from Debian's grpc-java packages:
# generates the Java code of protos/wsh/v1 into build/gen, compiles it with
# the client against the jars in /usr/share/java, and names those jars in the
# manifest's Class-Path so that `java -jar` finds them.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
protos="$here/../../protos"
out="$here/build"
jars=(
  grpc-api grpc-context grpc-core grpc-netty grpc-protobuf grpc-protobuf-lite grpc-stub
  protobuf proto-google-common-protos guava perfmark-api gson geronimo-annotation-1.3-spec
  netty-buffer netty-codec netty-codec-http netty-codec-http2 netty-codec-socks netty-common
  netty-handler netty-handler-proxy netty-resolver netty-transport
)
classpath=""
manifest_path=""
for jar in "${jars[@]}"; do
  classpath+="/usr/share/java/$jar.jar:"
  manifest_path+=" /usr/share/java/$jar.jar"
done
rm -rf "$out"
mkdir -p "$out/gen" "$out/classes"
protoc -I "$protos" --java_out="$out/gen" \
  --plugin=protoc-gen-grpc-java=/usr/bin/grpc_java_plugin --grpc-java_out="$out/gen" \
  "$protos"/wsh/v1/*.proto
find "$out/gen" "$here/src" -name '*.java' >"$out/sources"
javac -nowarn -encoding UTF-8 -cp "$classpath" -d "$out/classes" @"$out/sources"
# Manifest lines are at most 72 bytes; a continuation line starts with a space.
printf 'Class-Path:%s\n' "$manifest_path" | fold -w 70 | sed '2,$s/^/ /' >"$out/manifest"
jar --create --file "$out/wsh-client.jar" --main-class WshClient --manifest "$out/manifest" \
  -C "$out/classes" .
