# `lib.systems.elaborate` over every system of `lib.systems.flakeExposed` and every example
# platform of `lib.systems.examples`, ten times over, each elaborated set walked to its
# non-function leaves (parsed triple, platform predicates, linux-kernel and gcc settings).
let
  lib = import <nixpkgs-lib/lib>;
  inherit (lib) systems;
  # Every attribute that is neither a function nor a derivation-like object, as a string.
  # Attributes that throw (a CPU type the table does not know) count as "<error>".
  leaves = prefix: value:
    let
      tried = builtins.tryEval value;
      v = tried.value;
    in
    if !tried.success then [ "${prefix}=<error>" ]
    else if builtins.isAttrs v then
      lib.concatLists (lib.mapAttrsToList (k: leaves "${prefix}.${k}") v)
    else if builtins.isList v then
      lib.concatLists (lib.imap0 (i: leaves "${prefix}.${toString i}") v)
    else if builtins.isFunction v then [ ]
    else
      let json = builtins.tryEval (builtins.toJSON v);
      in [ "${prefix}=${if json.success then json.value else "<error>"}" ];
  # Each round elaborates every platform afresh (nothing is shared between rounds).
  rounds = 10;
  elaborateAll = round:
    map (system: systems.elaborate { inherit system; }) systems.flakeExposed
    # Examples this revision's CPU table cannot parse are left out.
    ++ lib.filter (p: (builtins.tryEval (builtins.attrNames p)).success)
      (lib.mapAttrsToList (_: systems.elaborate) systems.examples);
  elaborated = lib.concatMap elaborateAll (lib.range 1 rounds);
  describe = platform: leaves platform.config (builtins.removeAttrs platform [ "emulator" "emulatorAvailable" ]);
  all = lib.concatMap describe elaborated;
in
{
  count = builtins.length elaborated;
  leaves = builtins.length all;
  digest = builtins.hashString "sha256" (lib.concatStringsSep "\n" all);
  canExecute = lib.length (lib.filter (p: (systems.elaborate "x86_64-linux").canExecute p) elaborated);
}
