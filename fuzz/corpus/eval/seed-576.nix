# `<nix/fetchurl.nix>` is Nix's own fetcher, always on the search path (and not in nixPath).
let
  fetchurl = import <nix/fetchurl.nix>;
  plain = fetchurl {
    url = "http://example.org/files/hello-1.0.tar.gz";
    sha256 = "0y1m9kfxk9y2q1ij8l6b5s7x1dpm2y9l3l0yqnx5a7p0vq7l6wph";
  };
  unpacked = fetchurl {
    url = "http://example.org/files/tool";
    hash = "sha256-47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=";
    executable = true;
    name = "tool-bin";
  };
in
{
  args = builtins.functionArgs fetchurl;
  nixPath = builtins.nixPath;
  plain = { inherit (plain) drvPath outPath name; };
  unpacked = { inherit (unpacked) drvPath outPath; };
  sha512 = (fetchurl { url = "http://x/y"; sha512 = "cf83e1357eefb8bdf1542850d66d8007d620e4050b5715dc83f4a921d36ce9ce47d0d13c5d85f2b0ff8318d2877eec2f63b931bd47417a81a538327af927da3e"; }).outPath;
}
