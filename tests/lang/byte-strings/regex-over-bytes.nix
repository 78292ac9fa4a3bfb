# Regular expressions match bytes: `.` is one byte, so a two-byte character needs two.
let
  contents = builtins.readFile ./fixtures/binary.dat;
in
[
  (builtins.match "h.llo" "héllo")
  (builtins.match "h(..)llo" "héllo")
  (builtins.match "(.)(.).*" contents)
  (builtins.split "c" contents)
  (builtins.split "(é)" "aébéc")
]
