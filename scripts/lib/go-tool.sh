# Shared by the scripts that build one pinned Go tool, once, into .tools/ from its Go module
# (build-helm-docs.sh, build-promtool.sh): the cache check, the Go environment and the progress lines, so
# both behave alike. Sourced, not run; the caller has `set -euo pipefail` and sets its version.

# go_tool_start NAME BIN: defines `say` (progress on stderr, prefixed "[NAME HH:MM:SS]"); when BIN is
# already built, prints its path and exits the calling script; else checks for Go, sets a reproducible,
# module-proxy-only build environment and notes the start time for go_tool_built.
go_tool_start() {
    go_tool_name=$1
    go_tool_bin=$2
    say() { printf '[%s %s] %s\n' "$go_tool_name" "$(date +%H:%M:%S)" "$*" >&2; }
    if [ -x "$go_tool_bin" ]; then
        echo "$go_tool_bin"
        exit 0
    fi
    command -v go >/dev/null || { say "Go is needed (go.dev): none on PATH"; exit 1; }
    export CGO_ENABLED=0 GOFLAGS=-mod=mod GOTOOLCHAIN=local
    go_tool_started=$(date +%s)
}

# go_tool_built: reports the build's time and the binary's size. The caller then prints the binary's path as
# the last line of stdout, which scripts/chart-docs.sh reads.
go_tool_built() {
    say "built in $(( $(date +%s) - go_tool_started )) s: $(du -sh "$go_tool_bin" | cut -f1) at $go_tool_bin"
}
