import ./fixtures/missing.nix
