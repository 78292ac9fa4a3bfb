import ./fixtures/fun.nix { x = 2; }
