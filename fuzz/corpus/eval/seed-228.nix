# Strings compare by unsigned bytes.
let
  lead = builtins.substring 0 1 "é";
  trail = builtins.substring 1 1 "é";
in
[
  ("a" < "é")
  (trail < "a")
  (lead < trail)
  (lead == builtins.substring 0 1 "è")
  (builtins.sort builtins.lessThan [ "é" "z" trail "a" lead ])
]
