# String-heavy generators over nested configuration: `generators.toINI`, `toKeyValue`,
# `toJSON`, `toPretty`, `concatMapStringsSep`, with the sets built by `recursiveUpdate`,
# `zipAttrsWith` and `mapAttrs'`.
let
  lib = import <nixpkgs-lib/lib>;
  inherit (lib) generators;
  n = 2000;
  keys = 12;
  section = i: lib.listToAttrs (map (k: {
    name = "key${toString k}";
    value =
      if lib.mod k 4 == 0 then k * i
      else if lib.mod k 4 == 1 then "value ${toString i}/${toString k} with \"quotes\" and = signs"
      else if lib.mod k 4 == 2 then lib.mod (i + k) 2 == 0
      else [ "a${toString k}" "b${toString i}" ];
  }) (lib.range 0 (keys - 1)));
  baseConfig = lib.listToAttrs (map (i: { name = "section${toString i}"; value = section i; }) (lib.range 0 (n - 1)));
  patch = lib.listToAttrs (map (i: {
    name = "section${toString (i * 3)}";
    value = { key1 = "patched ${toString i}"; added = i; };
  }) (lib.range 0 (n / 3 - 1)));
  config = lib.recursiveUpdate baseConfig patch;
  zipped = lib.zipAttrsWith (name: values: lib.concatStringsSep "," (map toString (lib.flatten values)))
    (lib.attrValues config);
  renamed = lib.mapAttrs' (name: value: lib.nameValuePair "renamed-${name}" (builtins.length (builtins.attrNames value))) config;
  ini = generators.toINI { listsAsDuplicateKeys = true; } config;
  keyValue = lib.concatMapStringsSep "\n" (name: generators.toKeyValue { } (lib.filterAttrs (_: v: !builtins.isList v) config.${name}))
    (builtins.attrNames config);
  json = builtins.toJSON { inherit config zipped renamed; };
  pretty = generators.toPretty { } (lib.mapAttrs (_: s: removeAttrs s [ "key3" ]) (lib.filterAttrs (name: _: lib.hasSuffix "0" name) config));
  csv = lib.concatMapStringsSep "\n" (name: lib.concatMapStringsSep ";" (k: lib.escapeShellArg (toString config.${name}.${k}))
    (builtins.attrNames config.${name})) (builtins.attrNames config);
in
builtins.mapAttrs (_: text: { length = builtins.stringLength text; sha256 = builtins.hashString "sha256" text; }) {
  inherit ini keyValue json pretty csv;
}
