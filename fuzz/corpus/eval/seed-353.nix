# Current Nix forces a replacement only when its pattern occurs; 2.8 forced them all.
builtins.replaceStrings [ "oo" "XX" ] [ "u" (throw "unreachable") ] "foobar"
