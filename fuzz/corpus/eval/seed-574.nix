import ./fixtures/bad_syntax.nix
