# The expression behind the `-bytes.drv` golden: strings that are not UTF-8 (a binary file, a
# character cut in two by `substring`) in the builder, the arguments, an environment value and
# an environment variable's name. Run by Nix 2.8 with `nix-instantiate bytes.nix` for the
# store directory /nix/store; `nix show-derivation` of the result is `show-derivation-bytes.json`.
let
  binary = builtins.readFile ./bytes.dat;
  half = builtins.substring 0 1 "é";
in
derivation {
  name = "bytes";
  system = "x86_64-linux";
  builder = "/bin/sh${half}";
  args = [ "-c" (builtins.substring 0 2 "aé") binary ];
  value = binary;
  "name${half}" = "x${half}";
}
