let secret = 1; in import ./fixtures/uses_free_var.nix
