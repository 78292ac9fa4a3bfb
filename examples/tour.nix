# A short tour of what kiln evaluates: functions with formals and defaults, recursive sets,
# string interpolation, higher-order builtins, and derivations whose store paths match Nix's.
#
#   kiln eval --strict examples/tour.nix
let
  greet = { name, punctuation ? "!" }: "hello, ${name}${punctuation}";
  packages = import ./packages.nix;
in {
  greeting = greet { name = "kiln"; };
  squares = map (n: n * n) (builtins.genList (i: i + 1) 5);
  versions = builtins.mapAttrs (_: p: p.version) packages;
  curl = { inherit (packages.curl) drvPath outPath; };
}
