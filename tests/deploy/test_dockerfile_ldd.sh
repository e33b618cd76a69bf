#!/usr/bin/env bash
# The image's guard (no container engine builds it in CI): every shared
# library the built binary loads must come from a Debian package that the
# runtime stage of deploy/Dockerfile installs.
#
# Usage: test_dockerfile_ldd.sh BINARY DOCKERFILE
#        test_dockerfile_ldd.sh --self-test BINARY DOCKERFILE
#   (the second form checks that the test catches a package removed from the
#   runtime stage: it must fail and name that package)
#
# For each library `ldd BINARY` resolves, dpkg -S names its package here (the
# build machine is Debian 12, like the image). Then:
#  - a library the binary itself links (DT_NEEDED) must have its package named
#    on the runtime stage's `apt-get install` line;
#  - a library pulled in by another library may also come in through the
#    Depends of a named package (apt installs those), computed from dpkg's
#    database here;
#  - libc6 is in every Debian image and is accepted as given.
# A failure names the missing package and the library that needs it.
set -euo pipefail

if [ "${1:-}" = --self-test ]; then
  bin=${2:?}; dockerfile=${3:?}
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  # libyaml-0-2: linked directly by the binary, pulled in by nothing else.
  sed 's/ libyaml-0-2 / /' "$dockerfile" >"$tmp/Dockerfile"
  if grep -q 'libyaml-0-2' "$tmp/Dockerfile"; then
    echo "FAIL: could not remove libyaml-0-2 from a copy of $dockerfile"; exit 1
  fi
  if out=$("$0" "$bin" "$tmp/Dockerfile" 2>&1); then
    echo "$out"; echo "FAIL: the check passed without libyaml-0-2 in the runtime stage"; exit 1
  fi
  if ! grep -q '^FAIL: .*libyaml-0-2' <<<"$out"; then
    echo "$out"; echo "FAIL: the check failed without naming libyaml-0-2"; exit 1
  fi
  echo "PASS: removing libyaml-0-2 fails the check with: $(grep '^FAIL' <<<"$out" | head -n1)"
  exit 0
fi

bin=${1:?usage: $0 BINARY DOCKERFILE}
dockerfile=${2:?usage: $0 BINARY DOCKERFILE}
[ -x "$bin" ] || { echo "FAIL: $bin is not an executable"; exit 1; }
[ -r "$dockerfile" ] || { echo "FAIL: cannot read $dockerfile"; exit 1; }

# --- the runtime stage's apt-get install packages -------------------------
# The last FROM starts the runtime stage. Join continuation lines, keep the
# RUN instructions, and take the words after `apt-get install` up to the end
# of that command (&&, ;, |), without options.
runtime_pkgs=$(awk '
  /^[[:space:]]*#/ { next }
  { if (sub(/\\[[:space:]]*$/, "")) { buf = buf $0 " "; next } line = buf $0; buf = "" }
  toupper(line) ~ /^[[:space:]]*FROM[[:space:]]/ { stage++; delete runs; n = 0 }
  toupper(line) ~ /^[[:space:]]*RUN[[:space:]]/ { runs[++n] = line }
  END { for (i = 1; i <= n; i++) print runs[i] }
' "$dockerfile" | awk '
  {
    for (i = 1; i <= NF; i++) {
      if ($i == "apt-get" && $(i + 1) == "install") {
        for (j = i + 2; j <= NF; j++) {
          if ($j == "&&" || $j == ";" || $j == "|" || $j == "||") break
          if ($j ~ /^-/) continue
          print $j
        }
      }
    }
  }' | sort -u)
if [ -z "$runtime_pkgs" ]; then
  echo "FAIL: no apt-get install line found in the last stage of $dockerfile"
  exit 1
fi
mapfile -t runtime_list <<<"$runtime_pkgs"
echo "runtime stage installs: ${runtime_list[*]}"

# --- what apt would pull in: the Depends/Pre-Depends closure ---------------
# One dpkg-query over every installed package (dpkg is slow per call).
declare -A depends_of=()
while IFS=$'\t' read -r p deps; do
  depends_of[$p]=$deps
done < <(dpkg-query -W -f='${db:Status-Abbrev}\t${Package}\t${Depends}, ${Pre-Depends}\n' \
         | awk -F'\t' '$1 ~ /^ii/ { print $2 "\t" $3 }')
declare -A closure=()
queue=("${runtime_list[@]}")
while [ ${#queue[@]} -gt 0 ]; do
  p=${queue[0]}
  queue=("${queue[@]:1}")
  [ -n "${closure[$p]:-}" ] && continue
  closure[$p]=1
  # "a (>= 1) | b, c:any" -> a b c ; only packages installed here count.
  for d in $(echo "${depends_of[$p]:-}" | tr ',|' '\n' | sed -e 's/(.*)//' -e 's/:any//' -e 's/[[:space:]]//g' | sort -u); do
    [ -n "${closure[$d]:-}" ] || [ -z "${depends_of[$d]+x}" ] || queue+=("$d")
  done
done

# --- map each resolved library to its package -------------------------------
# "soname path" for every library ldd resolves (the loader is its own path).
libs=$(ldd "$bin" | awk '$2 == "=>" { print $1, $3; next } $1 ~ /^\// { print $1, $1 }')
if grep -q ' not$' <<<"$libs"; then
  echo "FAIL: ldd cannot resolve: $(grep ' not$' <<<"$libs" | cut -d' ' -f1 | tr '\n' ' ')"
  exit 1
fi
# One dpkg -S for all of them, under both the path ldd gives and the real
# path (merged /usr: dpkg knows a file under one of the two names).
declare -A pkg_of=()
cands=$(while read -r _ path; do echo "$path"; readlink -f "$path"; done <<<"$libs" | sort -u)
while IFS= read -r line; do
  pkg=${line%%: *}
  pkg=${pkg%%:*}
  pkg=${pkg%%,*}
  pkg_of[${line#*: }]=$pkg
done < <(mapfile -t c <<<"$cands"; dpkg -S "${c[@]}" 2>/dev/null || true)

needed=$(readelf -d "$bin" | sed -n 's/.*(NEEDED).*\[\(.*\)\].*/\1/p')
named=" ${runtime_list[*]} "
fail=0
checked=0
while read -r soname path; do
  pkg=${pkg_of[$path]:-${pkg_of[$(readlink -f "$path")]:-}}
  if [ -z "$pkg" ]; then
    echo "FAIL: no Debian package owns $path ($soname)"
    fail=1
    continue
  fi
  checked=$((checked + 1))
  direct=no
  grep -qxF "$(basename "$soname")" <<<"$needed" && direct=yes
  if [ "$pkg" = libc6 ]; then
    echo "ok   $soname -> $pkg (in every Debian image)"
  elif [[ "$named" == *" $pkg "* ]]; then
    echo "ok   $soname -> $pkg (named)"
  elif [ "$direct" = yes ]; then
    echo "FAIL: the binary links $soname directly; its package $pkg is not on the runtime stage's apt-get install line of $dockerfile"
    fail=1
  elif [ -n "${closure[$pkg]:-}" ]; then
    echo "ok   $soname -> $pkg (a dependency of the named packages)"
  else
    echo "FAIL: $soname comes from $pkg, which the runtime stage of $dockerfile does not install (add $pkg to its apt-get install line)"
    fail=1
  fi
done <<<"$libs"

if [ "$checked" -eq 0 ]; then
  echo "FAIL: ldd resolved no library for $bin"
  exit 1
fi
[ "$fail" -eq 0 ] && echo "PASS: $checked libraries, all installed by the runtime stage"
exit "$fail"
