let
  lib = {
    addSuffix = s: s + "-suffix";
    process = items: map lib.addSuffix items;
    pair = a: b: a + b;
  };
  names = lib.process [ "a" 1 ];
in
builtins.deepSeq names (lib.pair 1 "b")
