#!/bin/sh
# Builds the fixtures of kiln's end-to-end test, offline afterwards. They mirror the real
# servers' layouts, so that the test's expression is the real one redirected by [[rewrite]]
# rules:
#
#   vault/                  stands for https://vault.almalinux.org/
#     9.4/BaseOS/<arch>/os/     a createrepo_c RPM repository (RPMs under Packages/) with
#       almalinux-release       /etc/os-release of a pretend AlmaLinux 9.4
#       busybox-kiln            a static busybox as /usr/bin/busybox with /bin -> usr/bin and
#                               applet links (sh, ls, cat, …), so the result is a usable root
#     9.4/AppStream/<arch>/os/  a second repository with
#       greeter                 requires busybox-kiln; its %post writes /var/lib/greeter/post-ran
#     RPM-GPG-KEY-AlmaLinux-9   the public key of a key made here (gpg), with which every RPM
#                               is signed (rpmsign): the default repositories have gpgcheck on
#   base.tar.xz             a stand-in container base in the real CentOS tarball's `docker
#                           save` layout (`<sha256-hex>/layer.tar`, `<sha256-hex>/json`,
#                           `<sha256-hex>/VERSION`, `manifest.json`) whose root has a working
#                           dnf and rpm: a Debian bookworm debootstrap with /etc/rpm/macros
#                           setting %_dbpath, and /dev/console, /dev/null (character devices)
#                           and /run/initctl (a fifo) in its layer, as real bases have
#   fixtures.env            shell assignments: FIXTURES, VAULT, BASE_TARBALL, BASE_SHA256, ARCH
#
# Usage: make-fixtures.sh [CACHE_DIR]   (default ${KILN_E2E_CACHE:-$HOME/.cache/kiln-e2e})
# Prints the fixture directory. Fixtures are cached by content: the directory is named after
# the sha256 of this script and of the busybox binary, so a rerun with nothing changed only
# prints the directory. Needs (Debian): rpm (rpmbuild, rpmsign), gpg, gpg-agent, createrepo-c,
# debootstrap, busybox-static, xz-utils, file, root (debootstrap), and the Debian mirror for
# the base (DEBIAN_MIRROR overrides it).
set -eu

cache=${1:-${KILN_E2E_CACHE:-$HOME/.cache/kiln-e2e}}
case $cache in /*) ;; *) cache="$PWD/$cache" ;; esac # rpmbuild needs absolute paths
arch=$(uname -m)
busybox=${BUSYBOX:-$(command -v busybox)}
# The Debian mirror for the base: DEBIAN_MIRROR, else the bookworm mirror apt uses on this
# machine (deb822 `.sources` or one-line `sources.list`), else debootstrap's own default.
apt_mirror() {
  for f in /etc/apt/sources.list.d/*.sources; do
    [ -f "$f" ] || continue
    awk 'BEGIN { RS = "" } /Suites:[^\n]*bookworm/ && !/security/ {
           for (i = 1; i <= NF; i++) if ($i == "URIs:") { print $(i + 1); exit } }' "$f"
  done
  for f in /etc/apt/sources.list /etc/apt/sources.list.d/*.list; do
    [ -f "$f" ] || continue
    awk '$1 == "deb" && / bookworm / && !/security/ {
           for (i = 2; i <= NF; i++) if ($i ~ /^https?:/) { print $i; exit } }' "$f"
  done
}
mirror=${DEBIAN_MIRROR:-$(apt_mirror | head -n 1)}
for tool in rpmbuild rpmsign gpg createrepo_c debootstrap xz sha256sum; do
  command -v "$tool" >/dev/null || { echo "make-fixtures: missing $tool" >&2; exit 1; }
done
case $(file -L "$busybox" 2>/dev/null || echo unknown) in
  *statically*) ;;
  *) echo "make-fixtures: $busybox is not a static busybox (install busybox-static)" >&2; exit 1 ;;
esac

key=$(cat "$0" "$busybox" | sha256sum | cut -c1-32)
out="$cache/$key"
if [ -f "$out/fixtures.env" ]; then
  echo "$out"
  exit 0
fi
# From here on the tools' chatter goes to stderr: standard output carries only the directory.
exec 3>&1 1>&2
mkdir -p "$cache"
work=$(mktemp -d "$cache/.work-XXXXXX")
# The gpg-agent that signing starts belongs to the fixtures' own GNUPGHOME: stop it on exit.
trap '[ ! -d "$work/gnupg" ] || GNUPGHOME="$work/gnupg" gpgconf --kill gpg-agent; rm -rf "$work"' EXIT

# --- RPMs ---------------------------------------------------------------------------------
top="$work/rpmbuild"
mkdir -p "$top/SPECS" "$top/SOURCES"
cp "$busybox" "$top/SOURCES/busybox"
common='
AutoReqProv: no
License: MIT
'
cat > "$top/SPECS/almalinux-release.spec" <<SPEC
Name: almalinux-release
Version: 9.4
Release: 1.el9
Summary: Pretend AlmaLinux release files (kiln e2e fixture)
BuildArch: noarch
$common
%description
/etc/os-release of a pretend AlmaLinux 9.4.
%install
mkdir -p %{buildroot}/etc
cat > %{buildroot}/etc/os-release <<'OS'
NAME="AlmaLinux"
VERSION="9.4 (kiln e2e)"
ID="almalinux"
VERSION_ID="9.4"
PRETTY_NAME="AlmaLinux 9.4 (kiln e2e)"
OS
echo 'AlmaLinux release 9.4 (kiln e2e)' > %{buildroot}/etc/almalinux-release
%files
/etc/os-release
/etc/almalinux-release
SPEC

applets="sh ls cat echo mkdir cp rm mv ln test grep sed uname id"
cat > "$top/SPECS/busybox-kiln.spec" <<SPEC
Name: busybox-kiln
Version: 1.0
Release: 1.el9
Summary: A static busybox as the root's shell and tools (kiln e2e fixture)
Source0: busybox
Provides: /bin/sh
$common
%description
A static busybox with /bin pointing at /usr/bin.
%install
mkdir -p %{buildroot}/usr/bin %{buildroot}/tmp %{buildroot}/var/lib
install -m 0755 %{SOURCE0} %{buildroot}/usr/bin/busybox
for a in $applets; do ln -s busybox %{buildroot}/usr/bin/\$a; done
ln -s usr/bin %{buildroot}/bin
%files
/bin
/usr/bin/*
%dir /var/lib
%attr(1777,root,root) %dir /tmp
SPEC

cat > "$top/SPECS/greeter.spec" <<SPEC
Name: greeter
Version: 2.0
Release: 3.el9
Summary: A package with a dependency and a post scriptlet (kiln e2e fixture)
BuildArch: noarch
Requires: busybox-kiln
$common
%description
Prints a greeting; its %%post records that it ran.
%install
mkdir -p %{buildroot}/usr/bin
printf '#!/bin/sh\necho hello from greeter\n' > %{buildroot}/usr/bin/greet
chmod 0755 %{buildroot}/usr/bin/greet
%post
mkdir -p /var/lib/greeter
echo "post ran" > /var/lib/greeter/post-ran
%files
/usr/bin/greet
SPEC

for spec in almalinux-release busybox-kiln greeter; do
  rpmbuild --quiet -bb \
    --define "_topdir $top" \
    --define "__os_install_post %{nil}" \
    --define "_build_id_links none" \
    --define "debug_package %{nil}" \
    --target "$arch" \
    "$top/SPECS/$spec.spec"
done

# Sign every RPM with a key made for the fixtures; its public half is served where the
# default repositories' gpgkey points. rpm's %__gpg names gpg2, which Debian does not ship.
export GNUPGHOME="$work/gnupg"
mkdir -m 700 "$GNUPGHOME"
signer='kiln e2e fixtures <e2e@kiln.invalid>'
gpg --batch --quiet --pinentry-mode loopback --passphrase '' \
  --quick-gen-key "$signer" rsa3072 sign never
vault="$work/vault"
release_dir="$vault/9.4"
mkdir -p "$release_dir"
gpg --batch --armor --export "$signer" > "$vault/RPM-GPG-KEY-AlmaLinux-9"
for rpmfile in $(find "$top/RPMS" -name '*.rpm'); do
  rpmsign --define "__gpg $(command -v gpg)" --define "_gpg_name $signer" \
    --addsign "$rpmfile" < /dev/null
  case $(basename "$rpmfile") in
    greeter-*) repo=AppStream ;;
    *) repo=BaseOS ;;
  esac
  mkdir -p "$release_dir/$repo/$arch/os/Packages"
  cp "$rpmfile" "$release_dir/$repo/$arch/os/Packages/"
done
gpgconf --kill gpg-agent
for repo in BaseOS AppStream; do
  createrepo_c --quiet "$release_dir/$repo/$arch/os"
done

# --- stand-in container base ---------------------------------------------------------------
# The debootstrap itself is the slow part (minutes); its raw root is cached separately, keyed
# by what it depends on, so that changing the rest of this script stays fast.
root="$work/root"
bootstrap_args="--variant=minbase --include=dnf,rpm bookworm"
raw="$cache/debootstrap-$(echo "$bootstrap_args $arch $mirror" | sha256sum | cut -c1-32).tar"
if [ ! -f "$raw" ]; then
  debootstrap $bootstrap_args "$root" ${mirror:+"$mirror"} > "$work/debootstrap.log" 2>&1 \
    || { tail -n 20 "$work/debootstrap.log" >&2; exit 1; }
  tar -C "$root" --numeric-owner --xattrs -cf "$raw.tmp" . && mv "$raw.tmp" "$raw"
  rm -rf "$root"
fi
mkdir -p "$root"
tar -C "$root" --numeric-owner --xattrs -xf "$raw"
rm -rf "$root"/dev/* "$root"/proc/* "$root"/sys/*
# Real bases ship device nodes in their layer (CentOS Stream's has /dev/console) and fifos;
# a store path cannot hold them, so the unpack must skip them (with a warning) and bootstrap.
mknod -m 600 "$root/dev/console" c 5 1
mknod -m 666 "$root/dev/null" c 1 3
mkdir -p "$root/run"
mkfifo -m 600 "$root/run/initctl"
mkdir -p "$root/etc/rpm" "$root/etc/yum.repos.d"
echo '%_dbpath /var/lib/rpm' > "$root/etc/rpm/macros"
# A repository file like the ones the bootstrap removes.
printf '[stale]\nname=stale\nbaseurl=http://127.0.0.1:1/\n' > "$root/etc/yum.repos.d/stale.repo"
rm -rf "$root"/var/cache/apt/* "$root"/var/lib/apt/lists/*
image="$work/image"
mkdir -p "$image"
tar -C "$root" --numeric-owner --xattrs -cf "$image/layer.tar" .
# `docker save` layout, as in the real tarball: the layer in a directory named by its hash.
layer_id=$(sha256sum "$image/layer.tar" | cut -d' ' -f1)
mkdir -p "$image/$layer_id"
mv "$image/layer.tar" "$image/$layer_id/layer.tar"
echo '1.0' > "$image/$layer_id/VERSION"
printf '{"id":"%s","os":"linux"}\n' "$layer_id" > "$image/$layer_id/json"
printf '{"architecture":"%s","os":"linux"}\n' "$arch" > "$image/config.json"
printf '[{"Config":"config.json","RepoTags":["kiln-e2e-base:latest"],"Layers":["%s/layer.tar"]}]\n' \
  "$layer_id" > "$image/manifest.json"
tar -C "$image" --numeric-owner --sort=name --mtime=@1 -cf - \
  manifest.json config.json "$layer_id" \
  | xz -T0 -6 > "$work/base.tar.xz"
rm -rf "$root" "$image" "$top" "$GNUPGHOME"

sha=$(sha256sum "$work/base.tar.xz" | cut -d' ' -f1)
cat > "$work/fixtures.env" <<ENV
FIXTURES='$out'
VAULT='$out/vault'
BASE_TARBALL='$out/base.tar.xz'
BASE_SHA256='$sha'
ARCH='$arch'
ENV
trap - EXIT
rm -f "$work/debootstrap.log"
mv "$work" "$out" 2>/dev/null || rm -rf "$work"
echo "$out" >&3
