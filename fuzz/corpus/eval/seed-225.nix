# replaceStrings works on bytes, also half characters.
[
  (builtins.replaceStrings [ (builtins.substring 1 1 "é") ] [ "X" ] "héllo")
  (builtins.replaceStrings [ "é" ] [ (builtins.substring 0 1 "é") ] "éé")
  (builtins.replaceStrings [ "abc" ] [ "é" ] (builtins.readFile ./fixtures/binary.dat))
]
