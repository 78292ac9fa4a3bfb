# toJSON copies bytes that are not UTF-8 and escapes only what JSON requires.
[
  (builtins.toJSON (builtins.substring 0 3 "aé"))
  (builtins.toJSON (builtins.readFile ./fixtures/binary.dat))
  (builtins.toJSON { a = [ (builtins.substring 0 1 "é") ]; })
]
