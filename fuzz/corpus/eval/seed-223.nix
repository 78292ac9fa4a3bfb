# A NUL byte cannot be part of a Nix string.
builtins.readFile ./fixtures/nul.dat
