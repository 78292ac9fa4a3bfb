let a = import ./fixtures/value.nix; b = import ./fixtures/value.nix; in a == b
