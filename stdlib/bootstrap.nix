# Bootstraps: the pinned CentOS Stream 9 container base, and AlmaLinux 9 root filesystems built
# in it from locked RPMs.
kiln:
let
  # The CentOS Stream 9 container base compose kiln pins, per architecture (the published
  # sha256 of each tarball). The tarball is in `docker save` layout: the files are in
  # `<sha256-hex>/layer.tar` next to `manifest.json`; `member = "layer.tar"` finds it (unpack
  # takes the one entry ending in `/layer.tar` when none is named exactly so).
  centosStream9Images = {
    x86_64 = {
      url = "https://cloud.centos.org/centos/9-stream/x86_64/images/CentOS-Stream-Container-Base-9-20240715.0.x86_64.tar.xz";
      sha256 = "c2a4f505ffa543fa46f9a077d201d54d8d94f431079b5e776c15cb200c03bb73";
    };
    aarch64 = {
      url = "https://cloud.centos.org/centos/9-stream/aarch64/images/CentOS-Stream-Container-Base-9-20240715.0.aarch64.tar.xz";
      sha256 = "af064c53839e2b54c7a42f7c6d1f4c4ed597e4ba6981ea90a1e6914278dfe855";
    };
  };
in
{
  inherit centosStream9Images;

  # centosStream9 { arch ? <host>, url ? <pinned>, sha256 ? <pinned> }
  #
  # A root filesystem in which dnf runs: the pinned CentOS Stream 9 container base for `arch`
  # (`x86_64` or `aarch64`), fetched by hash, its `layer.tar` unpacked, then copied by a step
  # running inside it that removes `/etc/yum.repos.d/*` (so that only repositories kiln names
  # are used), and creates `/etc/resolv.conf` and dnf's `/var/cache/dnf` and `/var/lib/dnf`.
  # `url` and `sha256` exist to point the bootstrap at another compose (or a test fixture);
  # to use a mirror of the same file, prefer a `[[rewrite]]` rule, which changes no hash.
  #
  # The unpacked base and the root are content-addressed (see `runInRoot`): a new compose or
  # script that yields the same root rebuilds the root but nothing built in it.
  centosStream9 =
    { arch ? kiln.hostArch
    , url ? null
    , sha256 ? null
    }:
    let
      checked = kiln.checkArch arch;
      system = kiln.systemOf checked;
      image = centosStream9Images.${checked};
      tarball = kiln.fetchurl {
        inherit system;
        url = if url != null then url else image.url;
        sha256 = if sha256 != null then sha256 else image.sha256;
      };
      base = kiln.unpack {
        inherit system;
        name = "centos-stream-9-container-base-${checked}";
        src = tarball;
        member = "layer.tar";
        contentAddressed = true;
      };
    in
    kiln.runInRoot {
      inherit system;
      name = "centos-stream-9-${checked}";
      rootfs = base;
      contentAddressed = true;
      script = ''
        set -eu
        mkdir -p "$out"
        # The root as the build sees it, staying on its file system: /proc, /dev, /tmp, the
        # build directory and the store are other mounts and are not copied.
        cp -a -x /. "$out"/
        rm -rf "$out"/etc/yum.repos.d/*
        mkdir -p "$out"/etc/yum.repos.d "$out"/var/cache/dnf "$out"/var/lib/dnf
        rm -f "$out"/etc/resolv.conf
        : > "$out"/etc/resolv.conf
        # Mount points the sandbox made in the scratch layer, now empty directories.
        dir="$out${builtins.storeDir}"
        while [ "$dir" != "$out" ] && rmdir "$dir" 2>/dev/null; do dir=$(dirname "$dir"); done
        rmdir "$out"/build 2>/dev/null || true
      '';
    };

  # alma9 { arch ? <host>, packages, lock, release ? "9.4", base ? centosStream9 { inherit arch; },
  #         repos ? rpm.repositories { inherit release arch; } }
  #
  # An AlmaLinux 9 root filesystem holding `packages` and their dependencies, exactly as pinned
  # by `lock` (a lock file path or its parsed contents, see `rpm.lockFile`): every RPM is a
  # fixed-output fetch, then dnf inside `base` installs them into the output, offline. A lock
  # that is missing or was made for another package set, release or architecture is refused,
  # naming the fix.
  #
  # The result is the install derivation plus one attribute, `kilnLock`, which `kiln lock`
  # and `kiln realise` read: `file` (the lock file's path as a string, null for a lock given
  # as a value), `drv` (the lock step, `rpm.lock`, resolving `packages` against `repos` in
  # `base`) and `problem` (null, or why the lock cannot be used: `rpm.lockProblem`). Adding an
  # attribute to a derivation's attribute set changes neither its .drv nor its output path.
  alma9 =
    { arch ? kiln.hostArch
    , packages
    , lock
    , release ? "9.4"
    , base ? null
    , repos ? null
    }:
    let
      checked = kiln.checkArch arch;
      baseRoot = if base != null then base else kiln.bootstrap.centosStream9 { arch = checked; };
      root = kiln.rpm.install {
        name = "almalinux-${release}-${checked}";
        arch = checked;
        lock = kiln.rpm.checkLock { inherit packages lock release; arch = checked; };
        base = baseRoot;
      };
    in
    root // {
      kilnLock = {
        file = if builtins.isAttrs lock then null else toString lock;
        drv = kiln.rpm.lock ({ inherit packages release; arch = checked; base = baseRoot; }
          // (if repos != null then { inherit repos; } else { }));
        problem = kiln.rpm.lockProblem { inherit packages lock release; arch = checked; };
      };
    };
}
