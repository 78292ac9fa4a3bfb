import ./fixtures/rel/top.nix
