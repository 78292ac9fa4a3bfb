# Nix keeps lists of up to two elements inside the value cell, so a self-containing small
# list shows one more level before «repeated» than a longer one.
[
  (let x = [ x ]; in x)
  (let y = [ y 1 2 ]; in y)
  (let z = [ z z ]; in z)
  (let w = [ 1 ]; in [ w w (builtins.head [ w ]) ])
]
