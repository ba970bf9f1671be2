#!/usr/bin/env bash
# The README works for a newcomer who is root on a fresh machine without
# sudo (issue 12 item 6): it opens with exactly the two commands, no script
# it names calls sudo, and every file and build output it points to exists.
#   SOURCE_DIR the checkout; BUILD_DIR a built tree (for the build/ paths)
set -euo pipefail
: "${SOURCE_DIR:?}" "${BUILD_DIR:?}"
fail() { echo "FAIL: $*" >&2; exit 1; }
readme=$SOURCE_DIR/README.md

first_block=$(awk '/^```/ { if (open) exit; open = 1; next } open' "$readme")
[[ $first_block == $'scripts/demo.sh\nscripts/test.sh' ]] || fail "the README's first commands are:"$'\n'"$first_block"
grep -q "as root" <(sed -n 1,5p "$readme") || fail "the README does not say \"as root\" before the commands"

for f in README.md scripts/demo.sh scripts/test.sh scripts/install-deps.sh tests/packaging/deb_test.sh; do
  if grep -nE '(^|[;&|(`[:space:]])sudo[[:space:]]' "$SOURCE_DIR/$f" | grep -v 'no sudo'; then
    fail "$f runs or tells the reader to run sudo (lines above)"
  fi
done
grep -q 'setpriv' "$SOURCE_DIR/scripts/demo.sh" || fail "demo.sh does not drop to nobody with setpriv"

# Every path the README names in backquotes exists: build/ ones in BUILD_DIR.
paths=$(grep -oE '`(build|docs|examples|programs|scripts|systemd)/[^` ]*`' "$readme" | tr -d '`' | sort -u)
[[ -n $paths ]] || fail "no paths found in the README"
for p in $paths; do
  p=${p%%NAME*}
  case $p in
    build/*) [[ -e $BUILD_DIR/${p#build/} ]] || fail "the README names $p, which the build does not make" ;;
    *) [[ -e $SOURCE_DIR/$p ]] || fail "the README names $p, which is not in the tree" ;;
  esac
done
for p in $(grep -oE '(build|programs\.d)/[a-z_]+/manifest\.json' "$readme" | sort -u); do
  [[ $p == build/* && -e $BUILD_DIR/${p#build/} ]] || fail "the README names $p, which does not exist"
done
echo "PASS"
