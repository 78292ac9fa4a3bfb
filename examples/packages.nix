# A tiny package set: three derivations, one depending on the other two. Their `.drv` files
# and output paths are exactly the ones `nix-instantiate` computes for the same expression.
#
#   kiln instantiate examples/packages.nix      # writes the .drv files, prints their paths
let
  mkPackage = { pname, version, deps ? [ ] }: derivation {
    name = "${pname}-${version}";
    inherit version deps;
    system = "x86_64-linux";
    builder = "/bin/sh";
    args = [ "-c" "echo ${pname} > $out" ];
  };
in rec {
  zlib = mkPackage { pname = "zlib"; version = "1.3.1"; };
  openssl = mkPackage { pname = "openssl"; version = "3.0.13"; deps = [ zlib ]; };
  curl = mkPackage { pname = "curl"; version = "8.6.0"; deps = [ zlib openssl ]; };
}
