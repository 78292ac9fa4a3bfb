# Attribute names made of bytes that are not UTF-8 are found again by the same bytes, are
# sorted by bytes and are printed as they are.
let
  half = builtins.substring 0 1 "é";
  set = { ${half} = 1; "é" = 2; };
  listed = builtins.listToAttrs [ { name = half; value = 3; } ];
in
[
  set.${half}
  set."é"
  (set ? ${half})
  (set ? ${builtins.substring 1 1 "é"})
  (builtins.getAttr half set)
  (builtins.hasAttr half listed)
  listed.${half}
  (builtins.attrNames set)
  set
  (builtins.toJSON set)
  (builtins.mapAttrs (name: value: name) { ${builtins.substring 1 1 "é"} = 0; a = 1; })
]
