# Fetching, unpacking, small files and commands run inside a root filesystem.
kiln:
let
  inherit (builtins) head tail length match elemAt baseNameOf;
  optionalAttrs = cond: attrs: if cond then attrs else { };
in
{
  # fetchurl { url | urls, sha256 | hash, name ? <last component of the first URL>,
  #            executable ? false }
  #
  # A fixed-output derivation built by kiln's `builtin:fetchurl`. `urls` are mirrors, tried in
  # order after `url`; URL rewrite rules from the configuration apply at fetch time and change
  # no hash. `sha256` is a bare hash (hex or nixbase32); `hash` is an SRI hash (`sha256-…`).
  # With `executable = true` the file is made executable and, as in Nix, the hash is that of
  # its NAR serialisation (outputHashMode "recursive").
  fetchurl =
    { url ? null
    , urls ? [ ]
    , sha256 ? null
    , hash ? null
    , name ? null
    , executable ? false
    , system ? kiln.system
    }:
    let
      allUrls = (if url == null then [ ] else [ url ]) ++ urls;
      firstUrl =
        if allUrls == [ ] then throw "kiln.fetchurl: give `url` or `urls`" else head allUrls;
      hashAttrs =
        if hash != null && sha256 != null then
          throw "kiln.fetchurl: give `sha256` or `hash`, not both"
        else if hash != null then
          { outputHash = hash; }
        else if sha256 != null then
          { outputHash = sha256; outputHashAlgo = "sha256"; }
        else
          throw "kiln.fetchurl: `${firstUrl}` needs a `sha256` or `hash` (kiln only fetches pinned files)";
    in
    derivation (
      {
        name = if name != null then name else baseNameOf firstUrl;
        inherit system;
        builder = "builtin:fetchurl";
        url = firstUrl;
        outputHashMode = if executable then "recursive" else "flat";
        preferLocalBuild = true;
      }
      // optionalAttrs (length allUrls > 1) { urls = tail allUrls; }
      // optionalAttrs executable { executable = true; }
      // hashAttrs
    );

  # unpack { src, member ? null, stripComponents ? 0, name ? <src's name without .tar…>,
  #          contentAddressed ? false }
  #
  # A directory holding the tar archive `src` unpacked by kiln's `builtin:unpack` (gzip, xz,
  # zstd, bzip2 or none, found from the contents). `member` names an archive inside `src` to
  # unpack instead, e.g. the `layer.tar` of a `docker save` tarball. `stripComponents` drops
  # leading path components. Links, modes (without setuid, setgid and group/other write bits)
  # and mtimes are kept; owners and xattrs are not, and device nodes and fifos are skipped with
  # a warning: store paths cannot hold them. `src` must be in the store.
  unpack =
    { src
    , member ? null
    , stripComponents ? 0
    , name ? null
    , system ? kiln.system
    , contentAddressed ? false
    }:
    let
      baseName = baseNameOf (toString src);
      # A store path's name without its hash part.
      storeName = match "[0-9a-df-np-sv-z]{32}-(.*)" baseName;
      srcName = src.name or (if storeName == null then baseName else elemAt storeName 0);
      stripped = match "(.*)\\.(tar\\.(xz|gz|zst|bz2)|tgz|txz|tar)" srcName;
      defaultName = if stripped == null then "${srcName}-unpacked" else elemAt stripped 0;
    in
    derivation (
      {
        name = if name != null then name else defaultName;
        inherit system src;
        builder = "builtin:unpack";
        stripComponents = toString stripComponents;
      }
      // optionalAttrs (member != null) { inherit member; }
      // optionalAttrs contentAddressed { __contentAddressed = true; }
    );

  # writeText NAME TEXT: a store file named NAME holding TEXT, written at evaluation time
  # (`builtins.toFile`, no build needed). TEXT may refer to source paths in the store but not
  # to derivation outputs (Nix forbids that in `toFile`).
  writeText = name: text: builtins.toFile name text;

  # runInRoot { name, rootfs, script, env ? { }, network ? false, contentAddressed ? false }
  #
  # Runs `/bin/sh -c script` with `rootfs` (one root-filesystem directory or a list of them,
  # first on top) as the build's root, overlaid with a scratch layer that is thrown away. The
  # script writes its result to `$out`. `env` adds environment variables (they are hashed like
  # every derivation attribute); PATH defaults to the usual directories of a Linux root. `network = true` sets `__network`: the build shares the host
  # network, which `kiln realise` refuses unless given `--allow-network` (an impure build).
  #
  # `contentAddressed = true` (also on `unpack`) makes the output content-addressed
  # (`__contentAddressed`): its path comes from its bytes once built, and what is built on it
  # is resolved against that path before it builds, so a change above that yields the same
  # bytes stops there (early cutoff). The trade-off: the step's own path is unknown until it
  # has been built once for its current recipe, so it cannot be skipped or fetched by path
  # before then — after a change to its inputs it always runs, and only what is above it is
  # saved. Worth it for expensive steps whose bytes rarely change (the bootstrap's roots).
  runInRoot =
    { name
    , rootfs
    , script
    , env ? { }
    , network ? false
    , system ? kiln.system
    , contentAddressed ? false
    }:
    derivation (
      {
        # A build's environment is clean (Nix's `/path-not-set`); inside a root filesystem
        # the usual PATH is what scripts expect. `env.PATH` overrides it.
        PATH = "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";
      }
      // env
      // {
        inherit name system rootfs;
        builder = "/bin/sh";
        args = [ "-c" script ];
      }
      // optionalAttrs network { __network = true; }
      // optionalAttrs contentAddressed { __contentAddressed = true; }
    );
}
