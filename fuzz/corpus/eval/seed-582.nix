{ leaf = "leaf value"; path = ./.; up = import ../../value.nix; }
