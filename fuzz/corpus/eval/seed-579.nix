let h = import ./helper.nix; in { fromDir = true; helper = h; }
