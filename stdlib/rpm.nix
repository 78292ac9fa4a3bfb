# RPM helpers: repositories pinned to frozen AlmaLinux releases, the lock file, the lock step
# (resolve with dnf, with network) and the install step (fetch every locked RPM by hash,
# install offline).
#
# GPG: the install step runs dnf with `--nogpgcheck`, because every RPM it sees is a
# fixed-output fetch whose sha256 the lock pins; the lock step is where trust is established:
# it resolves against the repositories below with `gpgcheck=1` and the AlmaLinux key
# (`gpgkey`, imported by dnf from the vault), so a lock only ever records RPMs whose signatures
# dnf verified.
kiln:
let
  inherit (builtins) isAttrs fromJSON readFile sort lessThan concatStringsSep map toJSON;
  sortedNames = packages: sort lessThan packages;
in
rec {
  # repositories { release ? "9.4", arch }: the AlmaLinux vault repositories (BaseOS and
  # AppStream) of a frozen release, as attribute sets { name, baseurl, gpgcheck, gpgkey }.
  # A repository of your own (a mirror, a test fixture) is an attribute set of the same shape;
  # with `gpgcheck = false` its RPMs' signatures are not checked when locking.
  repositories = { release ? "9.4", arch }:
    let
      checked = kiln.checkArch arch;
      repo = name: {
        name = "almalinux-${release}-${name}";
        baseurl = "https://vault.almalinux.org/${release}/${name}/${checked}/os/";
        gpgcheck = true;
        gpgkey = "https://vault.almalinux.org/RPM-GPG-KEY-AlmaLinux-9";
      };
    in
    [ (repo "BaseOS") (repo "AppStream") ];

  # lockFile LOCK: a lock's contents, from a path to its JSON or from the parsed value.
  #
  # The format (JSON, keys sorted, packages sorted by RPM file name):
  #   { "arch": "x86_64", "release": "9.4", "request": [ requested package names, sorted ],
  #     "repositories": [ { "baseurl", "gpgcheck", "gpgkey", "name" } … ],
  #     "packages": [ { "arch", "epoch", "name", "release", "sha256", "url", "version" } … ] }
  lockFile = lock: if isAttrs lock then lock else fromJSON (readFile lock);

  # lockProblem { packages, lock, release, arch }: null when `lock` (a path to the lock file,
  # or its parsed contents) was made for this package set, release and architecture; else a
  # sentence saying what is wrong: the file does not exist yet, or what it pins instead.
  # `bootstrap.alma9` exposes it as `kilnLock.problem`, which `kiln realise` reads to name the
  # exact `kiln lock` command that fixes it.
  lockProblem = { packages, lock, release, arch }:
    if !(isAttrs lock) && !(builtins.pathExists lock) then
      "the RPM lock ${toString lock} does not exist yet"
    else
      let
        data = lockFile lock;
        wanted = sortedNames packages;
        where = if isAttrs lock then "the RPM lock" else "the RPM lock ${toString lock}";
      in
      if (data.request or null) != wanted then
        "${where} is stale: it pins [${concatStringsSep " " (data.request or [ ])}], the expression asks for [${concatStringsSep " " wanted}]"
      else if (data.release or null) != release then
        "${where} is stale: it is for release ${toString (data.release or "none")}, the expression asks for ${release}"
      else if (data.arch or null) != arch then
        "${where} is stale: it is for ${toString (data.arch or "no architecture")}, the expression asks for ${arch}"
      else
        null;

  # checkLock { packages, lock, release, arch }: the lock's contents if it was made for this
  # package set, release and architecture (see `lockProblem`), else an error naming the
  # command that writes it.
  checkLock = args@{ lock, ... }:
    let
      problem = lockProblem args;
    in
    if problem == null then
      lockFile lock
    else
      throw "kiln: ${problem}; write it with `kiln lock FILE -A ATTR` (FILE and ATTR selecting the bootstrap.alma9 root that uses it)";

  # fetchLocked LOCK: the locked RPMs, each a fixed-output fetch named as its file.
  fetchLocked = lock:
    map
      (p: kiln.fetchurl {
        url = p.url;
        sha256 = p.sha256;
        name = builtins.baseNameOf p.url;
        system = kiln.systemOf (lockFile lock).arch;
      })
      (lockFile lock).packages;

  # install { name, arch, lock, base }: a root filesystem holding exactly the locked RPMs,
  # installed by dnf running inside `base` (a root with dnf, e.g. `bootstrap.centosStream9`),
  # from local files only: no repository, no network.
  #
  # Reproducibility: kiln clamps every mtime; this step also removes what differs between two
  # identical installs: dnf's caches, logs and history database, rpm's lock and sqlite
  # journal/WAL files, `/etc/machine-id` contents and random seeds. rpm (4.16 to 4.18) stamps
  # each installed header with the install time (INSTALLTIME, INSTALLTID) and has no setting
  # to fix it, so the rpmdb is exported, those two numbers are set to 1 in every header
  # (`normaliseRpmdb`, run by the base root's python3), and the headers are imported into a
  # fresh database, which is then the same file for the same locked RPMs.
  # normaliseRpmdb: a python3 filter over `rpmdb --exportdb` output (a stream of RPM
  # headers: magic, index length and data length, 16-byte index entries, data) that sets every
  # INSTALLTIME (tag 1008) and INSTALLTID (tag 1128) value to 1.
  normaliseRpmdb = builtins.toFile "kiln-normalise-rpmdb.py" ''
    import struct, sys
    data = bytearray(sys.stdin.buffer.read())
    pos = 0
    while pos < len(data):
        if data[pos:pos + 4] != b"\x8e\xad\xe8\x01":
            sys.exit("kiln-normalise-rpmdb: no header magic at byte %d" % pos)
        entries, data_length = struct.unpack(">II", data[pos + 8:pos + 16])
        store = pos + 16 + 16 * entries
        for i in range(entries):
            start = pos + 16 + 16 * i
            tag, kind, offset, count = struct.unpack(">IIII", data[start:start + 16])
            if tag in (1008, 1128) and kind == 4:
                for k in range(count):
                    at = store + offset + 4 * k
                    data[at:at + 4] = struct.pack(">I", 1)
        pos = store + data_length
    sys.stdout.buffer.write(data)
  '';

  install = { name, arch, lock, base }:
    kiln.runInRoot {
      inherit name;
      system = kiln.systemOf arch;
      rootfs = base;
      # Content-addressed: a base that changed but installs the same root stops the rebuild
      # here (see `runInRoot`).
      contentAddressed = true;
      env.rpms = fetchLocked lock;
      script = ''
        set -eu
        mkdir -p "$out"
        dnf --installroot="$out" --releasever=9 --disablerepo='*' --noplugins \
          --nogpgcheck --setopt=install_weak_deps=False --setopt=keepcache=False \
          --setopt=cachedir=/tmp/dnf-cache --setopt=reposdir=/nonexistent \
          -y install $rpms
        rpmdb --root "$out" --exportdb | python3 ${normaliseRpmdb} > /tmp/rpmdb-headers
        rm -f "$out"/var/lib/rpm/rpmdb.sqlite*
        rpmdb --root "$out" --initdb
        rpmdb --root "$out" --importdb < /tmp/rpmdb-headers
        rm -rf "$out"/var/cache/dnf/* "$out"/var/log/dnf* "$out"/var/log/hawkey.log \
          "$out"/var/lib/dnf/history* "$out"/var/lib/rpm/.rpm.lock \
          "$out"/var/lib/rpm/__db.* "$out"/var/lib/rpm/*-shm "$out"/var/lib/rpm/*-wal \
          "$out"/var/lib/systemd/random-seed "$out"/var/lib/random-seed
        if [ -e "$out"/etc/machine-id ]; then : > "$out"/etc/machine-id; fi
      '';
    };

  # lock { arch ? <host>, packages, release ? "9.4", base ? bootstrap.centosStream9 { arch },
  #        repos ? repositories { inherit release arch; } }
  #
  # The lock step: with network, dnf inside `base` resolves `packages` against `repos`,
  # downloads the resolved RPMs (verifying their signatures where `gpgcheck` is on), and the
  # output is the lock file (see `lockFile`) naming each RPM's URL and sha256. `kiln lock`
  # realises it (with the network allowed) and writes the lock file; by hand: realise it with
  # `--allow-network` and copy its output. It is the only non-fixed-output step that uses the
  # network.
  #
  # Mirrors: dnf downloads inside the sandbox, not through kiln's fetcher, so `kiln realise`
  # hands the configuration's `[[rewrite]]` rules to builds that have the network in the
  # environment variable KILN_URL_REWRITES (one `FROM TO` pair per line, first match wins).
  # It is not a derivation attribute, so no hash depends on it. The script sends dnf to the
  # rewritten baseurl and gpgkey URLs and records each RPM's ORIGINAL URL (the repository's
  # `baseurl` followed by the package's location in it) in the lock; the install step fetches
  # those with kiln's fetcher, where the same rules apply again.
  lock =
    { arch ? kiln.hostArch
    , packages
    , release ? "9.4"
    , base ? null
    , repos ? repositories { inherit release arch; }
    }:
    let
      checked = kiln.checkArch arch;
      quote = s: "'" + builtins.replaceStrings [ "'" ] [ "'\\''" ] s + "'";
      # dnf's options for one repository, its URLs passed through `rewrite` at build time.
      repoArgs = concatStringsSep " " (map
        (r: "--repofrompath=${r.name},$(rewrite ${quote r.baseurl}) " + (
          if r.gpgcheck or true then
            "--setopt=${r.name}.gpgcheck=1 --setopt=${r.name}.gpgkey=$(rewrite ${quote r.gpgkey})"
          else
            "--setopt=${r.name}.gpgcheck=0"))
        repos);
      # `original URL`: the un-rewritten URL of a download dnf reports, from the repository
      # whose (rewritten) baseurl it starts with.
      originalArms = concatStringsSep "\n" (map
        (r: ''
          b=$(rewrite ${quote r.baseurl})
          case $1 in "$b"*) printf '%s%s\n' ${quote r.baseurl} "''${1#"$b"}"; return ;; esac'')
        repos);
      # The lock's keys in sorted order: `arch`, then `packages` (written by the script), then
      # the rest.
      archJson = toJSON { arch = checked; };
      jsonBefore = builtins.substring 0 (builtins.stringLength archJson - 1) archJson;
      restJson = toJSON { inherit release; request = sortedNames packages; repositories = repos; };
      jsonAfter = builtins.substring 1 (builtins.stringLength restJson) restJson;
    in
    kiln.runInRoot {
      name = "rpm-lock-${release}-${checked}";
      system = kiln.systemOf checked;
      rootfs = if base != null then base else kiln.bootstrap.centosStream9 { arch = checked; };
      network = true;
      env.packages = sortedNames packages;
      script = ''
        set -euf # no globbing: `--disablerepo=*` goes to dnf as written
        newline='
        '
        # rewrite URL: URL after the first KILN_URL_REWRITES rule whose FROM prefixes it.
        rewrite() {
          saved_ifs=$IFS
          IFS=$newline
          for rule in ''${KILN_URL_REWRITES:-}; do
            from=''${rule%% *}
            to=''${rule#* }
            case $1 in
              "$from"*) IFS=$saved_ifs; printf '%s%s\n' "$to" "''${1#"$from"}"; return ;;
            esac
          done
          IFS=$saved_ifs
          printf '%s\n' "$1"
        }
        original() {
        ${originalArms}
          printf '%s\n' "$1"
        }
        dnfargs="--releasever=9 --disablerepo=* --noplugins --setopt=reposdir=/nonexistent --setopt=cachedir=/tmp/dnf-cache ${repoArgs}"
        mkdir -p /tmp/rpms /tmp/root
        dnf $dnfargs --installroot=/tmp/root -y --downloadonly --setopt=install_weak_deps=False \
          --downloaddir=/tmp/rpms install $packages
        entries=""
        for f in $(ls /tmp/rpms | sort); do
          rpmfile="/tmp/rpms/$f"
          nevra=$(rpm -qp --nosignature --qf '%{NAME}-%{EPOCHNUM}:%{VERSION}-%{RELEASE}.%{ARCH}' "$rpmfile")
          url=$(dnf $dnfargs --installroot=/tmp/root -q repoquery --location "$nevra" | grep "/$f\$" | head -n 1)
          [ -n "$url" ] || { echo "no repository URL found for $f" >&2; exit 1; }
          url=$(original "$url")
          sum=$(sha256sum "$rpmfile" | cut -d' ' -f1)
          fields=$(rpm -qp --nosignature --qf '"arch":"%{ARCH}","epoch":"%{EPOCHNUM}","name":"%{NAME}","release":"%{RELEASE}",' "$rpmfile")
          version=$(rpm -qp --nosignature --qf '%{VERSION}' "$rpmfile")
          entries="$entries''${entries:+,}{$fields\"sha256\":\"$sum\",\"url\":\"$url\",\"version\":\"$version\"}"
        done
        printf '%s,"packages":[%s],%s\n' '${jsonBefore}' "$entries" '${jsonAfter}' > "$out"
      '';
    };
}
