{ top = import ./sub/leaf.nix; here = ./.; }
