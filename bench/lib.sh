# Shared by the bench scripts (sourced from the repository's root).

# The oathdesk binary to measure, as an absolute path: OATHDESK_BIN (another
# build, to compare), else the release build, built now.
bench_oathdesk() {
    if [ -n "${OATHDESK_BIN:-}" ]; then
        echo "$OATHDESK_BIN"
        return
    fi
    cargo build --release -q -p oathdesk >&2
    local target=${CARGO_TARGET_DIR:-target}
    case $target in /*) ;; *) target=$PWD/$target ;; esac
    echo "$target/release/oathdesk"
}
