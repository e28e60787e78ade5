#!/usr/bin/env bash
# Builds oathdesk's Debian package into target/debian/.
#
#   bash packaging/build-deb.sh                       # release build (what ships)
#   OATHDESK_DEB_PROFILE=dev bash packaging/build-deb.sh   # CI: reuse the test build
#
# The completions and man pages are generated from the built binary's clap
# definitions (never written by hand), then `cargo deb` (crates.io's
# cargo-deb) packs the binary, the systemd unit, the config file and them.
set -euo pipefail
cd "$(dirname "$0")/.."

profile=${OATHDESK_DEB_PROFILE:-release}
case $profile in
    dev) dir=debug ;;
    *) dir=$profile ;;
esac
target_dir=${CARGO_TARGET_DIR:-target}

if ! cargo deb --version >/dev/null 2>&1; then
    echo "installing cargo-deb (crates.io) ..."
    cargo install cargo-deb --locked --version 3.8.0
fi

deb_target=()
if [ "$profile" = release ]; then
    # The shipped binary (packaging/build-release.sh says how it differs).
    bin=$(bash packaging/build-release.sh)
    host=$(rustc -vV | sed -n 's/^host: //p')
    # Built for an explicit target (target/<host>/release/): cargo-deb is told so.
    if [ "$(basename "$(dirname "$(dirname "$bin")")")" = "$host" ]; then
        dir=$host/release
        deb_target=(--target "$host")
    fi
else
    cargo build --locked --profile "$profile" -p oathdesk
    bin=$target_dir/$dir/oathdesk
fi

assets=$target_dir/$dir/package-assets
rm -rf "$assets"
mkdir -p "$assets/completions" "$assets/man"
"$bin" completions bash >"$assets/completions/oathdesk.bash"
"$bin" completions zsh >"$assets/completions/_oathdesk"
"$bin" completions fish >"$assets/completions/oathdesk.fish"
"$bin" man --out "$assets/man" >/dev/null
[ -s "$assets/man/oathdesk.1" ] || { echo "no man page was made" >&2; exit 1; }

# cargo-deb warns that the dev profile is not for releases: CI packs the
# test build only to check the package, never to ship it.
cargo deb --no-build --locked --profile "$profile" -p oathdesk "${deb_target[@]}" \
    --output target/debian/
ls -l target/debian/*.deb
