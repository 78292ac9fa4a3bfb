{ greeting ? "hello" }:
derivation { name = greeting; system = "x86_64-linux"; builder = "/bin/sh"; }
