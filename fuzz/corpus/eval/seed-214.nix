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
  # The pattern is bytes too: a character in brackets stands for each of its bytes, and a
  # repetition applies to the last byte only.
  (builtins.match "[é]" (builtins.substring 0 1 "é"))
  (builtins.match "[é]" "é")
  (builtins.match "(é+)" "é${builtins.substring 1 1 "é"}")
  (builtins.match "(é+)" "éé")
]
