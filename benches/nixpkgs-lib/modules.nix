# The module system at scale: `lib.evalModules` over ~3,000 options of several types
# (int, str, bool, enum, nullOr, listOf, attrsOf, submodule, attrsOf (submodule …)), defined
# by several modules with priorities (mkDefault, mkForce, mkOverride), mkIf, mkMerge and
# list ordering (mkBefore, mkAfter); every value of the final configuration is forced.
let
  lib = import <nixpkgs-lib/lib>;
  inherit (lib) mkOption types mkDefault mkForce mkIf mkMerge mkOverride mkBefore mkAfter;
  n = 1000;
  ids = builtins.genList (i: i) n;
  name = prefix: i: "${prefix}${toString i}";

  serviceModule = { name, config, ... }: {
    options = {
      enable = mkOption { type = types.bool; default = false; };
      port = mkOption { type = types.port; default = 8000; };
      user = mkOption { type = types.str; default = name; };
      flags = mkOption { type = types.listOf types.str; default = [ ]; };
      env = mkOption { type = types.attrsOf types.str; default = { }; };
      level = mkOption { type = types.enum [ "debug" "info" "warn" "error" ]; default = "info"; };
      description = mkOption { type = types.nullOr types.str; default = null; };
      commandLine = mkOption { type = types.str; readOnly = true; };
    };
    config.commandLine = "${config.user}:${toString config.port}:${lib.concatStringsSep " " config.flags}";
  };

  declarations = { ... }: {
    options.settings = lib.listToAttrs (map (i: {
      name = name "opt" i;
      value = {
        count = mkOption { type = types.int; default = i; };
        label = mkOption { type = types.str; default = "label-${toString i}"; };
        enabled = mkOption { type = types.bool; default = false; };
        tags = mkOption { type = types.listOf types.str; default = [ ]; };
        limits = mkOption { type = types.attrsOf types.int; default = { }; };
        mode = mkOption { type = types.enum [ "a" "b" "c" ]; default = "a"; };
        extra = mkOption { type = types.nullOr types.int; default = null; };
      };
    }) ids);
    options.services = mkOption {
      type = types.attrsOf (types.submodule serviceModule);
      default = { };
    };
    options.main = mkOption { type = types.submodule serviceModule; default = { }; };
  };

  defaults = { ... }: {
    settings = lib.listToAttrs (map (i: {
      name = name "opt" i;
      value = {
        count = mkDefault (i * 2);
        tags = [ "base" ];
        limits.soft = mkDefault i;
      };
    }) ids);
    services = lib.listToAttrs (map (i: {
      name = name "svc" i;
      value = { port = mkDefault (9000 + i); flags = [ "--base" ]; };
    }) ids);
  };

  overrides = { config, ... }: {
    settings = mkMerge [
      (lib.listToAttrs (map (i: {
        name = name "opt" i;
        value = {
          enabled = mkIf (lib.mod i 3 == 0) true;
          label = mkIf (lib.mod i 5 == 0) (mkForce "forced-${toString i}");
          tags = mkMerge [ (mkBefore [ "first" ]) (mkAfter [ "last-${toString i}" ]) ];
          limits.hard = i + 100;
          mode = mkOverride 900 (if lib.mod i 2 == 0 then "b" else "c");
          extra = mkIf config.settings.${name "opt" i}.enabled (i + config.settings.${name "opt" i}.count);
        };
      }) ids))
    ];
    services = lib.mapAttrs (svcName: _: {
      enable = mkDefault config.settings.${"opt" + lib.removePrefix "svc" svcName}.enabled;
      flags = [ "--name=${svcName}" ];
      env.NAME = svcName;
      level = mkIf (lib.hasSuffix "7" svcName) "debug";
      description = "service ${svcName}";
    }) (lib.genAttrs (map (name "svc") ids) (x: x));
    main = { enable = true; flags = [ "--main" ]; port = mkForce 80; };
  };

  evaluated = lib.evalModules { modules = [ declarations defaults overrides ]; };
  config = evaluated.config;
in
{
  digest = builtins.hashString "sha256" (builtins.toJSON config);
  enabledServices = lib.length (lib.filter (s: s.enable) (lib.attrValues config.services));
  sumCounts = lib.foldl' (acc: s: acc + s.count) 0 (lib.attrValues config.settings);
  main = config.main.commandLine;
}
