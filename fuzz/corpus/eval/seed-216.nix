# `substring` counts bytes: a cut inside a multi-byte character keeps the bytes on each side.
[
  (builtins.substring 0 2 "héllo")
  (builtins.substring 2 3 "héllo")
  (builtins.substring 1 2 "€uro")
  (builtins.substring 3 1 "😀!")
]
