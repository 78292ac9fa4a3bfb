# <nix/fetchurl.nix>: the fetcher Nix itself ships, for expressions written for Nix (nixpkgs'
# bootstrap tools among them). A fixed-output derivation built by `builtin:fetchurl`; its
# attributes are exactly Nix 2.8's, so the .drv and output path are the same as Nix's.
#
# Arguments: `url`; the hash as `hash` (SRI) or one of `sha256`, `sha512`, `sha1`, `md5`
# (or `outputHash` with `outputHashAlgo`); `name` (default: the URL's last component);
# `executable` (the file is made executable, hashed as a NAR); `unpack` (the download is an
# archive unpacked into the output, hashed as a NAR); `system` is accepted and ignored.
{ system ? ""
, url
, hash ? ""
, md5 ? ""
, sha1 ? ""
, sha256 ? ""
, sha512 ? ""
, outputHash ?
    if hash != "" then hash
    else if sha512 != "" then sha512
    else if sha1 != "" then sha1
    else if md5 != "" then md5
    else sha256
, outputHashAlgo ?
    if hash != "" then ""
    else if sha512 != "" then "sha512"
    else if sha1 != "" then "sha1"
    else if md5 != "" then "md5"
    else "sha256"
, executable ? false
, unpack ? false
, name ? baseNameOf (toString url)
}:

derivation {
  builder = "builtin:fetchurl";
  system = "builtin";
  outputHashMode = if unpack || executable then "recursive" else "flat";
  inherit name url executable unpack outputHash outputHashAlgo;
  # Nix downloads on the local machine rather than a remote builder.
  preferLocalBuild = true;
  # Listed by Nix for the proxy variables; kiln's fetcher reads them from its own environment.
  impureEnvVars = [ "http_proxy" "https_proxy" "ftp_proxy" "all_proxy" "no_proxy" ];
  # Mirrors tried in order (here just the one URL), as `nix-prefetch-url` expects.
  urls = [ url ];
}
