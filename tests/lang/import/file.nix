import ./fixtures/value.nix
