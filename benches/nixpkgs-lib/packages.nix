# A nixpkgs-style package set: 5,000 `callPackage`-style entries (`lib.callPackageWith`,
# `makeOverridable`, `override`) in a fixed point built with `lib.fix` and `lib.extends`
# from a base set and five overlays, every package a `derivation` depending on up to three
# others, every `.drv` path computed.
let
  lib = import <nixpkgs-lib/lib>;
  n = 5000;
  system = "x86_64-linux";
  pname = i: "pkg${toString i}";

  # What a package file would hold: a function of its dependencies.
  mkPackageFunction = i:
    let deps = lib.filter (j: j >= 0) [ (i - 1) (i / 2 - 1) (i / 3 - 1) ];
    in lib.setFunctionArgs
      (args: derivation {
        name = "${pname i}-${args.version or "1.0"}";
        inherit system;
        builder = "/bin/sh";
        args = [ "-c" "echo ${pname i} > $out" ];
        buildInputs = map (j: args.${pname j}) deps;
        patches = args.patches or [ ];
        enableFeature = lib.boolToString (args.enableFeature or false);
      })
      (lib.genAttrs (map pname deps) (_: false) // { version = true; patches = true; enableFeature = true; });

  base = self:
    let callPackage = lib.callPackageWith self;
    in lib.listToAttrs (map (i: {
      name = pname i;
      value = callPackage (mkPackageFunction i) { };
    }) (lib.range 0 (n - 1)));

  overlays = [
    (final: prev: { pkg10 = prev.pkg10.override { version = "2.0"; }; })
    (final: prev: lib.mapAttrs (name: p: if lib.hasSuffix "7" name then p.override { patches = [ "fix.patch" ]; } else p)
      (lib.filterAttrs (name: _: lib.hasPrefix "pkg1" name) prev))
    (final: prev: { pkg0 = prev.pkg0.override { enableFeature = true; }; })
    (final: prev: lib.genAttrs (map pname (lib.range 2000 2100)) (name: prev.${name}.override { version = "3.0"; }))
    (final: prev: { extra = lib.callPackageWith final (mkPackageFunction 50) { }; })
  ];

  packages = lib.fix (lib.foldl' (f: overlay: lib.extends overlay f) base overlays);
  drvPaths = lib.mapAttrsToList (_: p: p.drvPath) (lib.filterAttrs (_: lib.isDerivation) packages);
in
{
  count = builtins.length drvPaths;
  digest = builtins.hashString "sha256" (lib.concatStringsSep "\n" drvPaths);
  pkg0 = packages.pkg0.drvPath;
}
