#!/usr/bin/env bash
# Builds build/wsh-client offline from Debian's Go packages (GOPATH mode):
# generates the Go code of protos/wsh/v1 into build/gopath, then compiles.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
protos="$here/../../protos"
out="$here/build"
export GO111MODULE=off
export GOPATH="$out/gopath:/usr/share/gocode"
rm -rf "$out/gopath"
mkdir -p "$out/gopath/src"
# The protos name no Go package yet: map each file to the import path wsh/v1.
maps=()
for file in "$protos"/wsh/v1/*.proto; do
  rel="wsh/v1/$(basename "$file")"
  maps+=("--go_opt=M$rel=wsh/v1;wshv1" "--go-grpc_opt=M$rel=wsh/v1;wshv1")
done
protoc -I "$protos" --go_out="$out/gopath/src" --go-grpc_out="$out/gopath/src" \
  "${maps[@]}" "$protos"/wsh/v1/*.proto
cd "$here"
go build -o "$out/wsh-client" .
