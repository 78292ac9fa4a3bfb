# toXML writes an attribute name that is not UTF-8 as its bytes.
let
  half = builtins.substring 0 1 "é";
in
builtins.toXML { ${half} = builtins.substring 1 1 "é"; "é" = 1; }
